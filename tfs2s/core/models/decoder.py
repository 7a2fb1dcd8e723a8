"""The decoder's layers, shared by the teacher-forced training model and the one-step decoder.

Decoder: embedding -> ``layers`` GRU/LSTM layers -> attention over the encoder states -> ``tanh`` combination
of RNN output and context (Luong et al. 2015's attentional hidden state) -> output layer. Attention is computed
from each decoder RNN output rather than fed back into the recurrence, so training runs the whole target
through fused RNN layers. With ``attention: none`` (Cho et al. 2014) a fixed summary vector of the source feeds
every decoder step, as input and to the output layer. With ``model.copy`` the output is the pointer-generator's
log distribution over the vocabulary and the source positions (``tfs2s.core.layers.copy``).
"""

from __future__ import annotations

from keras import layers as L

from tfs2s.core.config import ModelConfig
from tfs2s.core.layers import BroadcastOverTime, TiedEmbedding, VocabularyProjection, WordDropout
from tfs2s.core.layers.copy import CopyGenerator, ExtendedIdsToUnk
from tfs2s.core.models.contract import (ATTENTIONAL_HIDDEN, CONTEXT, COPY_GENERATOR, COPY_INPUT_IDS, DECODER_RNN,
                                        KEYS, MASK, MEMORY, OUTPUT_PROJECTION, TARGET_EMBEDDING, TIED_EMBEDDING)
from tfs2s.core.models.encoder import dropout_layer, rnn_layer


def _output_projection(cfg: ModelConfig, tied, target_vocab_size, sampled_softmax: int, target_features):
    """The output layer: real values for a regression head, else the vocabulary's logits."""
    # A sampled softmax reads a few words' rows of the output layer: stored word-major, it gets sparse gradients.
    if cfg.output_head == "regression":
        # Zero-initialised: the model starts as its linear part (or as persistence with subtract_last), and the
        # recurrent part grows from there instead of adding noise to a good forecast.
        return L.Dense(target_features, kernel_initializer="zeros", name=OUTPUT_PROJECTION)
    if tied is not None:
        return tied  # word-major like VocabularyProjection, so a sampled softmax reads it the same way
    if sampled_softmax:
        return VocabularyProjection(target_vocab_size, name=OUTPUT_PROJECTION)
    return L.Dense(target_vocab_size, name=OUTPUT_PROJECTION)


class Decoder:
    """The decoder's layers (created once, so both decoder models share their weights) and its computation.

    Args:
        cfg: Model configuration.
        attention: The attention layer the encoder made (``None`` without attention).
        target_vocab_size: ``softmax`` head: target vocabulary size.
        sampled_softmax: Words sampled per training step (a word-major output layer when > 0).
        target_features: ``regression`` head: values per target step.
    """

    def __init__(self, cfg: ModelConfig, attention, target_vocab_size, sampled_softmax: int, target_features):
        self.cfg, self.attention = cfg, attention
        tied = None
        if cfg.output_head == "regression":
            self.target_embedding = L.Dense(cfg.embedding_dim, name="target_projection")  # previous values -> input
        elif cfg.tie_embeddings:
            tied = TiedEmbedding(target_vocab_size, cfg.embedding_dim, name=TIED_EMBEDDING)
            self.target_embedding = lambda ids: tied(ids, mode="embed")
        else:
            self.target_embedding = L.Embedding(target_vocab_size, cfg.embedding_dim, name=TARGET_EMBEDDING)
        # Word dropout (model.embedding_dropout) of the target vocabulary; none for real-valued targets.
        self.word_dropout = (WordDropout(cfg.embedding_dropout, target_vocab_size, name="target_word_dropout")
                             if cfg.embedding_dropout and cfg.output_head != "regression" else None)
        self.target_dropout = dropout_layer(cfg, "target_dropout")
        self.rnns = [rnn_layer(cfg, DECODER_RNN.format(i=i)) for i in range(cfg.layers)]
        self.between_dropouts = [dropout_layer(cfg, f"decoder_dropout_{i}") for i in range(cfg.layers - 1)]
        self.combine = L.Dense(cfg.hidden, activation="tanh", name=ATTENTIONAL_HIDDEN)
        self.output_dropout = dropout_layer(cfg, "output_dropout")
        self.projection = _output_projection(cfg, tied, target_vocab_size, sampled_softmax, target_features)
        self.with_context = BroadcastOverTime(name="context_over_time")
        # Created last: the other layers draw the same initial weights with and without copy attention.
        self.copy = CopyGenerator(name=COPY_GENERATOR) if cfg.copy else None
        self.copy_input = ExtendedIdsToUnk(target_vocab_size, name=COPY_INPUT_IDS) if cfg.copy else None

    def _recurrent(self, h, states, single_step: bool):
        """The recurrent layers over ``h``, from ``states``; returns the top layer's outputs and the new states."""
        per_state = 2 if self.cfg.cell == "lstm" else 1
        new_states = []
        for i, rnn in enumerate(self.rnns):
            layer_states = states[i * per_state:(i + 1) * per_state]
            if single_step:
                h, layer_states = rnn.cell(h, layer_states)
                layer_states = list(layer_states)
            else:
                outputs = rnn(h, initial_state=layer_states)
                h, layer_states = outputs[0], list(outputs[1:])
            new_states.extend(layer_states)
            if i < self.cfg.layers - 1:
                h = self.between_dropouts[i](h)
        return h, new_states

    def decode(self, y, states, enc, single_step: bool = False):
        """Decoder over ``y [B, T]`` ids given encoder outputs; returns output-layer inputs, states, alignment.

        With ``single_step`` (``T == 1``) the recurrent layers' cells are called directly: the same weights, but
        no per-call time loop, which makes a decoding step much cheaper (in TF and in the ONNX graphs).
        """
        parts = self.decode_parts(y, states, enc, single_step)
        return parts["hidden"], parts["states"], parts["alignment"]

    def decode_parts(self, y, states, enc, single_step: bool = False) -> dict:
        """``decode``'s results as a dict, with the attention ``context`` and the input ``embedded`` too."""
        if self.copy_input is not None:
            y = self.copy_input(y)  # a copied word (id >= V) is read as <unk>
        h = self.target_embedding(y)
        if self.word_dropout is not None:
            h = self.word_dropout(h, y)
        h = self.target_dropout(h)
        embedded = h
        if self.attention is None:
            h = L.Concatenate(name="decoder_input_with_context")([h, self.with_context(enc[CONTEXT], h)])
        if single_step:
            h = L.Reshape((h.shape[-1],), name="step_input")(h)
        h, new_states = self._recurrent(h, states, single_step)
        if single_step:
            h = L.Reshape((1, self.cfg.hidden), name="step_output")(h)
        if self.attention is not None:
            context, alignment = self.attention(h, enc[KEYS], enc[MEMORY], key_mask=enc[MASK])
        else:
            context, alignment = self.with_context(enc[CONTEXT], h), None
        hidden = self.output_dropout(self.combine(L.Concatenate(name="rnn_output_with_context")([h, context])))
        return {"hidden": hidden, "states": new_states, "alignment": alignment, "context": context,
                "embedded": embedded}

    def output(self, parts: dict, enc):
        """The decoder's output from ``decode_parts``: the output layer's, or with copy attention the log final
        distribution ``[B, T, V + S]`` over the vocabulary and the source positions."""
        logits = self.projection(parts["hidden"])
        if self.copy is None:
            return logits
        return self.copy(logits, parts["hidden"], parts["context"], parts["embedded"], parts["alignment"],
                         enc[MASK])
