"""Copy attention (See et al. 2017's pointer-generator) over a vocabulary extended by the source positions.

At each target step the decoder generates from the target vocabulary with probability ``p_gen`` (a sigmoid of
a dense layer over the attention's context, the attentional hidden state and the step's input embedding) or
copies a source word with probability ``1 - p_gen``, the word at position ``s`` with the attention's weight
``a[s]``. The output has ``V + S`` entries: id ``v < V`` is a target word, id ``V + s`` copies the source word
at encoder position ``s``. The final distribution is the concatenation ``[p_gen * softmax(logits),
(1 - p_gen) * a]`` (no scatter: each source position has its own id), returned as log-probabilities.

See et al. give each example's out-of-vocabulary source words their own ids; ids by position are the same idea
with nothing computed per example outside the model, so the exported graphs take the same inputs as any other
model's. A word that is in the target vocabulary is generated; copying is for the words the vocabulary lacks
(training labels point at a source position only for a target word that is ``<unk>`` in the target vocabulary).

Only source words can be copied: the final ``</s>`` and padding get probability 0 (an impossible log
probability), and the copy weights are the attention's renormalised over the words; a source without words
(an empty text) generates with ``p_gen = 1``.
"""

from __future__ import annotations

import keras
from keras import ops

from tfs2s.core import features as F

IMPOSSIBLE_LOG_PROB = -1e9  # log-probability of an id that cannot be produced (finite: no NaN in 0 * it)
_TINY = 1e-30  # floor of a copy weight before its log (an attention weight can underflow to 0)


def word_positions(mask):
    """``[B, S]`` bool: the positions of a token encoder's memory that hold source words.

    The encoder reads the words, then ``</s>``, then padding (``mask`` False): the words are the unmasked
    positions but the last.
    """
    mask = ops.cast(mask, "int32")
    lengths = ops.sum(mask, axis=-1, keepdims=True)
    positions = ops.expand_dims(ops.arange(ops.shape(mask)[1], dtype="int32"), 0)
    return ops.less(positions, lengths - 1)


@keras.saving.register_keras_serializable(package="tfs2s")
class ExtendedIdsToUnk(keras.layers.Layer):
    """Maps extended ids (``>= vocab_size``: copies of source positions) to ``<unk>``, so a copied word feeds the
    next step as the ``<unk>`` embedding.

    Args:
        vocab_size: The target vocabulary's size ``V``.
    """

    def __init__(self, vocab_size: int, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size

    def call(self, ids):
        return ops.where(ops.greater_equal(ids, self.vocab_size), ops.cast(F.UNK_ID, ids.dtype), ids)

    def compute_output_shape(self, ids_shape):
        return ids_shape

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size}


@keras.saving.register_keras_serializable(package="tfs2s")
class CopyGenerator(keras.layers.Layer):
    """The pointer-generator's output: ``log [p_gen * softmax(logits), (1 - p_gen) * copy weights]``.

    Computed in float32 whatever the model's policy (log-probabilities of -1e9 must stay finite).
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.gate = None

    def build(self, logits_shape, hidden_shape=None, context_shape=None, embedded_shape=None,
              alignment_shape=None, mask_shape=None):
        # Created here, not in __init__: its initialisers draw their seeds when created, and the decoder's
        # other layers must draw the same ones with and without copy attention.
        self.gate = keras.layers.Dense(1, name="generation_gate", dtype="float32")
        features = hidden_shape[-1] + context_shape[-1] + embedded_shape[-1]
        self.gate.build((None, None, features))

    def generation_logit(self, hidden, context, embedded):
        """``[B, T, 1]``: the logit of ``p_gen`` from the attentional hidden state, the context and the input."""
        parts = [ops.cast(x, "float32") for x in (hidden, context, embedded)]
        # axis=2, not -1: inside a while loop tf2onnx may not know the rank a negative concat axis needs.
        return self.gate(ops.concatenate(parts, axis=2))

    def call(self, logits, hidden, context, embedded, alignment, mask):
        """Log final distribution ``[B, T, V + S]``.

        Args:
            logits: ``[B, T, V]`` output-layer logits.
            hidden: ``[B, T, H]`` attentional hidden states.
            context: ``[B, T, C]`` attention contexts.
            embedded: ``[B, T, E]`` the steps' input embeddings.
            alignment: ``[B, T, S]`` attention weights.
            mask: ``[B, S]`` the encoder's mask.
        """
        gate = self.generation_logit(hidden, context, embedded)
        words = ops.expand_dims(word_positions(mask), 1)  # [B, 1, S]
        has_words = ops.any(words, axis=-1, keepdims=True)  # [B, 1, 1]
        log_generate = ops.where(has_words, ops.log_sigmoid(gate), 0.0)  # p_gen = 1 without source words
        log_copy = ops.log_sigmoid(-gate)
        vocab = ops.log_softmax(ops.cast(logits, "float32"), axis=-1) + log_generate
        weights = ops.cast(alignment, "float32") * ops.cast(words, "float32")
        weights = weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1e-9)
        copy = ops.where(words, log_copy + ops.log(ops.maximum(weights, _TINY)), IMPOSSIBLE_LOG_PROB)
        return ops.concatenate([vocab, copy], axis=2)

    def compute_output_shape(self, logits_shape, hidden_shape=None, context_shape=None, embedded_shape=None,
                             alignment_shape=None, mask_shape=None):
        source = alignment_shape[-1]
        width = None if source is None or logits_shape[-1] is None else logits_shape[-1] + source
        return tuple(logits_shape[:-1]) + (width,)
