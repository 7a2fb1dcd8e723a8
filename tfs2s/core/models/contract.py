"""What the built models promise their users: the names of their layers and tensors, and the step contract.

``build_models`` returns a ``Seq2SeqModels``: three Keras models sharing named layers. Everything outside the
builder that reads a layer (the hand-written ONNX graphs, the forecasting task, the tests) or a tensor of the
encoder's and the one-step decoder's outputs finds it by one of the names here, never by index or by a copy of
the string. Names with ``{i}`` (a layer's index, from 0), ``{state}`` (a state name) or ``{rnn}`` (a recurrent
layer's name) are templates, filled with ``str.format``.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.core.config import ModelConfig
from tfs2s.core.decoding import regress

# ---------------------------------------------------------------- tensors: encoder outputs, decoder step outputs
MEMORY, KEYS, MASK, CONTEXT = "memory", "keys", "mask", "context"
BASELINE, LAST_VALUES = "baseline", "last_values"  # regression head: linear forecast, last observed values
VALUES = "values"  # the regression step's output
LOGITS = "logits"  # the softmax step's output
ALIGNMENT = "alignment"  # the step's attention weights (models with attention only)

# ---------------------------------------------------------------- layers
SOURCE_EMBEDDING = "source_embedding"  # tokens source: ids -> vectors
SOURCE_PROJECTION = "source_projection"  # image and vectors sources: columns / steps -> vectors
ENCODER_RNN = "encoder_rnn_{i}"  # a unidirectional encoder's recurrent layers
ENCODER_BIRNN = "encoder_birnn_{i}"  # a bidirectional encoder's ``Bidirectional`` wrappers
BRIDGE = "bridge_{state}"  # bidirectional encoder: final states -> decoder's initial state ``state``
ATTENTION = "attention"  # the attention layer (Bahdanau or Luong)
ATTENTION_KEYS = "attention_keys"  # memory -> the attention's keys
CONTEXT_PROJECTION = "context_projection"  # attention none: the top layer's final state -> summary vector
LINEAR_SKIP = "linear_skip"  # regression head with model.linear_skip: the ``WindowLinear`` linear forecast
TARGET_EMBEDDING = "target_embedding"  # softmax head without tie_embeddings: ids -> vectors
TIED_EMBEDDING = "tied_embedding"  # model.tie_embeddings: the target embedding that is also the output layer
DECODER_RNN = "decoder_rnn_{i}"  # the decoder's recurrent layers
RNN_CELL = "{rnn}_cell"  # a recurrent layer's cell, which the one-step decoder calls directly
ATTENTIONAL_HIDDEN = "attentional_hidden"  # tanh combination of RNN output and context
OUTPUT_PROJECTION = "output_projection"  # the output layer (unless tied)
COPY_GENERATOR = "copy_generator"  # model.copy: the pointer-generator's gate and final distribution
COPY_INPUT_IDS = "copy_input_ids"  # model.copy: extended (copied) input ids -> <unk>

SOURCE_INPUTS = {"tokens": F.ENCODER_TOKEN_IDS, "image": F.ENCODER_IMAGE, "vectors": F.ENCODER_VALUES}


def state_names(cfg: ModelConfig) -> list[str]:
    """Names of the recurrent state tensors, layer by layer: ``state_0``, or ``state_0_h``/``state_0_c``."""
    suffixes = ["h", "c"] if cfg.cell == "lstm" else [""]
    return [f"state_{i}" + (f"_{s}" if s else "") for i in range(cfg.layers) for s in suffixes]


def banned_token_bias(vocab: int, dtype=np.float32) -> np.ndarray:
    """``[vocab]`` logit bias that rules out ``<pad>`` and ``<s>`` (never produced by a decoder)."""
    bias = np.zeros(vocab, dtype)
    bias[[F.PAD_ID, F.BOS_ID]] = -1e9
    return bias


def _banned_bias(logits):
    """``banned_token_bias`` for ``logits``: a constant when ``V`` is static (always, for our models), so a
    decoding loop adds one vector per step instead of rebuilding it (a one-hot and a sum, in ONNX too)."""
    vocab = logits.shape[-1]
    if vocab is None:
        banned = tf.one_hot([F.PAD_ID, F.BOS_ID], tf.shape(logits)[-1], on_value=-1e9, dtype=logits.dtype)
        return tf.reduce_sum(banned, 0)
    return tf.constant(banned_token_bias(vocab, logits.dtype.as_numpy_dtype))


def as_float32(tensors: dict) -> dict:
    """``tensors`` with every floating tensor in float32 (no op for a float32 model).

    A model built under a 16-bit policy (``training.precision``) outputs 16-bit tensors; the decoders carry
    float32 states and scores, so their "impossible" score (-1e9) stays finite and their loop variables keep
    one dtype (``tfs2s.training.precision``).
    """
    return {name: tf.cast(value, tf.float32) if value.dtype.is_floating else value
            for name, value in tensors.items()}


@dataclasses.dataclass
class Seq2SeqModels:
    """The three models returned by ``build_models`` (they share layers and so weights).

    Attributes:
        training: The model ``fit`` trains (equal to ``teacher_forced`` unless it trains with a sampled softmax).
        encoder: Source ids -> dict of encoder outputs (see ``state_names``).
        decoder_step: One decoding step.
        config: The model config.
        state_names: Names of the recurrent state tensors (``state_0``, or ``state_0_h``/``state_0_c``).
        teacher_forced: ``{encoder_token_ids, decoder_token_ids} -> logits [B, T, V]``.
    """

    training: keras.Model
    encoder: keras.Model
    decoder_step: keras.Model
    config: ModelConfig
    state_names: list[str]
    teacher_forced: keras.Model | None = None

    def __post_init__(self):
        if self.teacher_forced is None:
            self.teacher_forced = self.training

    @property
    def source_name(self) -> str:
        """Name of the encoder's input (``encoder_token_ids``, ``encoder_image`` or ``encoder_values``)."""
        return SOURCE_INPUTS[self.config.input_encoder]

    @property
    def target_name(self) -> str:
        """Name of the decoder's input (``decoder_token_ids`` or ``decoder_values``)."""
        return F.DECODER_VALUES if self.config.output_head == "regression" else F.DECODER_TOKEN_IDS

    @property
    def copies(self) -> bool:
        """Whether the model has copy attention (``model.copy``): its outputs then have ``V + S`` entries, id
        ``V + s`` copying the source word at encoder position ``s`` (``tfs2s.core.layers.copy``)."""
        return bool(getattr(self.config, "copy", False))

    @property
    def has_attention(self) -> bool:
        """Whether the decoder attends over the encoder's memory (``model.attention`` is not ``none``).

        Such a model's encoder outputs ``keys`` and its step outputs ``alignment``; one without attention
        outputs a ``context`` summary instead and has no alignment.
        """
        return self.config.attention != "none"

    def initial_state(self, source_ids, alignment: bool = True) -> dict:
        """Encodes ``source_ids [B, S]`` into the decoding state dict of the step contract.

        Args:
            source_ids: Padded source ids.
            alignment: Whether decoders should collect the attention weights (models with attention only);
                without them a decoding loop carries and reorders less.
        """
        encoded = as_float32(self.encoder(source_ids, training=False))
        state = dict(encoded)
        if alignment and self.has_attention:
            # Zero alignment of the right shape, so decoders know to collect attention weights.
            state[ALIGNMENT] = tf.zeros_like(tf.cast(encoded[MASK], tf.float32))
        return state

    def step(self, ids, state: dict):
        """The step contract: ``(ids [N], state) -> (logits [N, V], state)`` (see ``tfs2s.core.decoding``).

        Logits and state are float32 whatever the model's dtype policy.
        """
        inputs = {F.DECODER_TOKEN_IDS: tf.expand_dims(tf.cast(ids, tf.int32), 1)}
        inputs.update({name: value for name, value in state.items() if name != ALIGNMENT})
        outputs = as_float32(self.decoder_step(inputs, training=False))
        new_state = dict(state)
        new_state.update({name: outputs[name] for name in self.state_names})
        if ALIGNMENT in state:  # collected only when the caller asked for it (see initial_state)
            new_state[ALIGNMENT] = outputs[ALIGNMENT]
        # <pad> and <s> are never produced.
        logits = outputs[LOGITS]
        return logits + _banned_bias(logits), new_state

    def value_step(self, values, state: dict, training: bool = False):
        """The regression step: ``(previous values [N, F], state) -> (predicted values [N, F], state)``.

        ``state`` is ``initial_state``'s dict plus ``time`` (int32 scalar, the step being predicted), which
        picks the step's row of the linear forecast when the model has one (``model.linear_skip``).
        """
        inputs = {F.DECODER_VALUES: tf.expand_dims(values, 1)}
        inputs.update({name: value for name, value in state.items() if name in self.decoder_step.input})
        outputs = as_float32(self.decoder_step(inputs, training=training))
        new_state = dict(state)
        new_state.update({name: outputs[name] for name in self.state_names})
        if ALIGNMENT in state:
            new_state[ALIGNMENT] = outputs[ALIGNMENT]
        predicted = outputs[VALUES]
        if BASELINE in state:
            predicted = predicted + tf.gather(state[BASELINE], state["time"], axis=1)
        new_state["time"] = state["time"] + 1
        return predicted, new_state

    def unrolled(self, inputs: dict, sampling, training: bool = False):
        """Regression decoder run step by step: ``{encoder_values, decoder_values} -> [B, H, F]`` predictions.

        Step ``t`` reads the true values ``decoder_values[:, t]`` or, with probability ``sampling`` (per
        example), the model's own prediction for step ``t - 1`` (the first step always reads the last observed
        values). ``sampling = 1`` is a forecast. Differentiable, also through the fed-back predictions.
        """
        given = tf.convert_to_tensor(inputs[F.DECODER_VALUES])
        encoded = as_float32(self.encoder(inputs[F.ENCODER_VALUES], training=training))
        return regress(lambda values, state: self.value_step(values, state, training=training), dict(encoded),
                       given[:, 0], tf.shape(given)[1], teacher=given, sampling=sampling)
