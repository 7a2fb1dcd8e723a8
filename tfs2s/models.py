"""Keras functional encoder-decoder models, built from a ``ModelConfig``.

``build_models`` returns three models that share the same named layers (never looked up by index):

* ``training``: ``{encoder_token_ids, decoder_token_ids} -> logits [B, T, V]`` (teacher forcing);
* ``encoder``: ``encoder_token_ids -> {memory, keys, mask, context, states...}``;
* ``decoder_step``: one target token and the decoder state -> ``logits [B, V]``, new state, alignment.

Architecture. Encoder: embedding -> ``layers`` (bi)GRU/LSTM layers. Its final states are bridged (``tanh``
dense) to the decoder's initial states when the encoder is bidirectional; a unidirectional encoder hands its
states over unchanged (Sutskever et al. 2014). Decoder: embedding -> ``layers`` GRU/LSTM layers -> attention
over the encoder states -> ``tanh`` combination of RNN output and context (Luong et al. 2015's attentional
hidden state) -> vocabulary projection. Attention is computed from each decoder RNN output rather than fed back
into the recurrence, so training runs the whole target through fused RNN layers. With ``attention: none``
(Cho et al. 2014) a fixed summary vector of the source feeds every decoder step, as input and to the output layer.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf
from keras import layers as L

from tfs2s import features as F
from tfs2s.config import ModelConfig
from tfs2s.layers import BahdanauAttention, BroadcastOverTime, LuongAttention, PaddingMask

MEMORY, KEYS, MASK, CONTEXT = "memory", "keys", "mask", "context"


@dataclasses.dataclass
class Seq2SeqModels:
    """The three models returned by ``build_models`` (they share layers and so weights).

    Attributes:
        training: Teacher-forced model used by ``fit``.
        encoder: Source ids -> dict of encoder outputs (see ``state_names``).
        decoder_step: One decoding step.
        config: The model config.
        state_names: Names of the recurrent state tensors (``state_0``, or ``state_0_h``/``state_0_c``).
    """

    training: keras.Model
    encoder: keras.Model
    decoder_step: keras.Model
    config: ModelConfig
    state_names: list[str]

    def initial_state(self, source_ids, alignment: bool = True) -> dict:
        """Encodes ``source_ids [B, S]`` into the decoding state dict of the step contract.

        Args:
            source_ids: Padded source ids.
            alignment: Whether decoders should collect the attention weights (models with attention only);
                without them a decoding loop carries and reorders less.
        """
        encoded = self.encoder(source_ids, training=False)
        state = dict(encoded)
        if alignment and MEMORY in encoded and KEYS in encoded:
            # Zero alignment of the right shape, so decoders know to collect attention weights.
            state["alignment"] = tf.zeros_like(tf.cast(encoded[MASK], tf.float32))
        return state

    def step(self, ids, state: dict):
        """The step contract: ``(ids [N], state) -> (logits [N, V], state)`` (see ``tfs2s.decoding``)."""
        inputs = {F.DECODER_TOKEN_IDS: tf.expand_dims(tf.cast(ids, tf.int32), 1)}
        inputs.update({name: value for name, value in state.items() if name != "alignment"})
        outputs = self.decoder_step(inputs, training=False)
        new_state = dict(state)
        new_state.update({name: outputs[name] for name in self.state_names})
        if "alignment" in state:  # collected only when the caller asked for it (see initial_state)
            new_state["alignment"] = outputs["alignment"]
        # <pad> and <s> are never produced.
        logits = outputs["logits"]
        banned = tf.one_hot([F.PAD_ID, F.BOS_ID], tf.shape(logits)[-1], on_value=-1e9, dtype=logits.dtype)
        return logits + tf.reduce_sum(banned, 0), new_state


def _rnn(cfg: ModelConfig, name: str):
    cls = L.GRU if cfg.cell == "gru" else L.LSTM
    layer = cls(cfg.hidden, return_sequences=True, return_state=True, name=name)
    # The one-step decoder calls cells directly; distinct names keep a multi-layer step model valid.
    layer.cell.name = f"{name}_cell"
    return layer


def _state_names(cfg: ModelConfig) -> list[str]:
    suffixes = ["h", "c"] if cfg.cell == "lstm" else [""]
    return [f"state_{i}" + (f"_{s}" if s else "") for i in range(cfg.layers) for s in suffixes]


def build_models(cfg: ModelConfig, source_vocab_size: int, target_vocab_size: int) -> Seq2SeqModels:
    """Builds the training, encoder and one-step decoder models.

    Args:
        cfg: Model configuration.
        source_vocab_size: Source vocabulary size (ids ``[0, size)``, 0 = padding).
        target_vocab_size: Target vocabulary size.

    Returns:
        A ``Seq2SeqModels`` whose three models share every layer.
    """
    per_state = 2 if cfg.cell == "lstm" else 1
    state_names = _state_names(cfg)

    # ---------------------------------------------------------------- encoder
    source = keras.Input(shape=(None,), dtype="int32", name=F.ENCODER_TOKEN_IDS)
    mask = PaddingMask(name="source_mask")(source)
    x = L.Embedding(source_vocab_size, cfg.embedding_dim, mask_zero=True, name="source_embedding")(source)
    x = L.Dropout(cfg.dropout, name="source_dropout")(x)
    final_states = []  # per layer: list of per-direction state lists
    for i in range(cfg.layers):
        rnn = _rnn(cfg, f"encoder_rnn_{i}")
        if cfg.bidirectional:
            outputs = L.Bidirectional(rnn, name=f"encoder_birnn_{i}")(x)
            x, states = outputs[0], outputs[1:]
            forward, backward = states[:per_state], states[per_state:]
            final_states.append([L.Concatenate(name=f"encoder_state_{i}_{j}")([f, b])
                                 for j, (f, b) in enumerate(zip(forward, backward))])
        else:
            outputs = rnn(x)
            x, states = outputs[0], list(outputs[1:])
            final_states.append(states)
        if i < cfg.layers - 1:
            x = L.Dropout(cfg.dropout, name=f"encoder_dropout_{i}")(x)
    memory = x
    if cfg.bidirectional:
        initial_states = [L.Dense(cfg.hidden, activation="tanh", name=f"bridge_{name}")(s)
                          for name, s in zip(state_names, (s for layer in final_states for s in layer))]
    else:
        initial_states = [s for layer in final_states for s in layer]

    encoder_outputs = {MEMORY: memory, MASK: mask}
    attention = None
    if cfg.attention == "bahdanau":
        attention = BahdanauAttention(cfg.attention_units, name="attention")
        encoder_outputs[KEYS] = L.Dense(cfg.attention_units, use_bias=False, name="attention_keys")(memory)
    elif cfg.attention == "luong":
        attention = LuongAttention(scale=cfg.hidden ** -0.5, name="attention")
        encoder_outputs[KEYS] = L.Dense(cfg.hidden, use_bias=False, name="attention_keys")(memory)
    else:
        # Cho et al.: a fixed-size summary c of the whole source (top layer's final state).
        encoder_outputs[CONTEXT] = L.Dense(cfg.hidden, activation="tanh", name="context_projection")(
            final_states[-1][0])
    encoder_outputs.update(zip(state_names, initial_states))
    encoder = keras.Model(source, encoder_outputs, name="encoder")

    # ---------------------------------------------------------------- decoder layers (shared)
    target_embedding = L.Embedding(target_vocab_size, cfg.embedding_dim, name="target_embedding")
    target_dropout = L.Dropout(cfg.dropout, name="target_dropout")
    decoder_rnns = [_rnn(cfg, f"decoder_rnn_{i}") for i in range(cfg.layers)]
    between_dropouts = [L.Dropout(cfg.dropout, name=f"decoder_dropout_{i}") for i in range(cfg.layers - 1)]
    combine = L.Dense(cfg.hidden, activation="tanh", name="attentional_hidden")
    output_dropout = L.Dropout(cfg.dropout, name="output_dropout")
    projection = L.Dense(target_vocab_size, name="output_projection")
    with_context = BroadcastOverTime(name="context_over_time")

    def decode(y, states, enc, single_step: bool = False):
        """Decoder over ``y [B, T]`` ids given encoder outputs; returns logits, new states, alignment.

        With ``single_step`` (``T == 1``) the recurrent layers' cells are called directly: the same weights, but
        no per-call time loop, which makes a decoding step much cheaper (in TF and in the ONNX graphs).
        """
        h = target_dropout(target_embedding(y))
        if attention is None:
            h = L.Concatenate(name="decoder_input_with_context")([h, with_context(enc[CONTEXT], h)])
        new_states = []
        if single_step:
            h = L.Reshape((h.shape[-1],), name="step_input")(h)
        for i, rnn in enumerate(decoder_rnns):
            layer_states = states[i * per_state:(i + 1) * per_state]
            if single_step:
                h, layer_states = rnn.cell(h, layer_states)
                layer_states = list(layer_states)
            else:
                outputs = rnn(h, initial_state=layer_states)
                h, layer_states = outputs[0], list(outputs[1:])
            new_states.extend(layer_states)
            if i < cfg.layers - 1:
                h = between_dropouts[i](h)
        if single_step:
            h = L.Reshape((1, cfg.hidden), name="step_output")(h)
        if attention is not None:
            context, alignment = attention(h, enc[KEYS], enc[MEMORY], key_mask=enc[MASK])
        else:
            context, alignment = with_context(enc[CONTEXT], h), None
        hidden = output_dropout(combine(L.Concatenate(name="rnn_output_with_context")([h, context])))
        return projection(hidden), new_states, alignment

    # ---------------------------------------------------------------- training model
    decoder_ids = keras.Input(shape=(None,), dtype="int32", name=F.DECODER_TOKEN_IDS)
    logits, _, _ = decode(decoder_ids, initial_states, encoder_outputs)
    training = keras.Model({F.ENCODER_TOKEN_IDS: source, F.DECODER_TOKEN_IDS: decoder_ids}, logits,
                           name="seq2seq")

    # ---------------------------------------------------------------- one-step decoder
    step_ids = keras.Input(shape=(1,), dtype="int32", name=F.DECODER_TOKEN_IDS)
    step_states = [keras.Input(shape=(cfg.hidden,), name=name) for name in state_names]
    step_enc = {MEMORY: keras.Input(shape=(None, memory.shape[-1]), name=MEMORY),
                MASK: keras.Input(shape=(None,), dtype="bool", name=MASK)}
    if attention is not None:
        step_enc[KEYS] = keras.Input(shape=(None, encoder_outputs[KEYS].shape[-1]), name=KEYS)
    else:
        step_enc[CONTEXT] = keras.Input(shape=(cfg.hidden,), name=CONTEXT)
    step_logits, step_new_states, step_alignment = decode(step_ids, step_states, step_enc, single_step=True)
    step_outputs = {"logits": L.Reshape((target_vocab_size,), name="step_logits")(step_logits)}
    step_outputs.update(zip(state_names, step_new_states))
    if step_alignment is not None:
        step_outputs["alignment"] = L.Reshape((-1,), name="step_alignment")(step_alignment)
    decoder_step = keras.Model({F.DECODER_TOKEN_IDS: step_ids, **dict(zip(state_names, step_states)), **step_enc},
                               step_outputs, name="decoder_step")
    return Seq2SeqModels(training, encoder, decoder_step, cfg, state_names)
