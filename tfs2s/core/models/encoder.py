"""The recurrent encoder: (bi)GRU/LSTM layers over the source sequence, the decoder's initial states, and what
the decoder reads of the source (attention keys, or a summary vector without attention).

Its final states are bridged (``tanh`` dense) to the decoder's initial states when the encoder is
bidirectional; a unidirectional encoder hands its states over unchanged (Sutskever et al. 2014).
"""

from __future__ import annotations

from keras import layers as L

from tfs2s.core.config import ModelConfig
from tfs2s.core.layers import (BahdanauAttention, DropConnectRNN, LastStep, LevelShift, LockedDropout, LuongAttention,
                               WindowLinear)
from tfs2s.core.models.contract import (ATTENTION, ATTENTION_KEYS, BASELINE, BRIDGE, CONTEXT, CONTEXT_PROJECTION,
                                        ENCODER_BIRNN, ENCODER_RNN, KEYS, LAST_VALUES, LINEAR_SKIP, MASK, MEMORY,
                                        RNN_CELL, state_names)


def rnn_layer(cfg: ModelConfig, name: str):
    """A GRU or LSTM layer named ``name`` returning its sequence and final states (encoder and decoder).

    With ``model.weight_dropout`` it is a ``DropConnectRNN`` over a DropConnect cell (the same weights under the
    same names, dropped in training only).
    """
    if cfg.weight_dropout:
        layer = DropConnectRNN(cfg.hidden, cfg.cell, weight_dropout=cfg.weight_dropout, return_sequences=True,
                               return_state=True, name=name)
    else:
        cls = L.GRU if cfg.cell == "gru" else L.LSTM
        layer = cls(cfg.hidden, return_sequences=True, return_state=True, name=name)
    # The one-step decoder calls cells directly; distinct names keep a multi-layer step model valid.
    layer.cell.name = RNN_CELL.format(rnn=name)
    return layer


def dropout_layer(cfg: ModelConfig, name: str):
    """The dropout named ``name`` on embeddings and recurrent outputs: locked (one mask per sequence) with
    ``model.variational_dropout``, else ``model.dropout``'s ordinary dropout."""
    if cfg.variational_dropout:
        return LockedDropout(cfg.variational_dropout, name=name)
    return L.Dropout(cfg.dropout, name=name)


def _recurrent_layers(cfg: ModelConfig, x):
    """The stacked recurrent layers over ``x``; returns the top layer's outputs and, per layer, its final states
    (forward and backward concatenated)."""
    per_state = 2 if cfg.cell == "lstm" else 1
    final_states = []  # per layer: list of per-direction state lists
    for i in range(cfg.layers):
        rnn = rnn_layer(cfg, ENCODER_RNN.format(i=i))
        if cfg.bidirectional:
            outputs = L.Bidirectional(rnn, name=ENCODER_BIRNN.format(i=i))(x)
            x, states = outputs[0], outputs[1:]
            forward, backward = states[:per_state], states[per_state:]
            final_states.append([L.Concatenate(name=f"encoder_state_{i}_{j}")([f, b])
                                 for j, (f, b) in enumerate(zip(forward, backward))])
        else:
            outputs = rnn(x)
            x, states = outputs[0], list(outputs[1:])
            final_states.append(states)
        if i < cfg.layers - 1:
            x = dropout_layer(cfg, f"encoder_dropout_{i}")(x)
    return x, final_states


def _attention(cfg: ModelConfig, memory, final_states) -> tuple:
    """The attention layer (``None`` without attention) and what the decoder reads of the source: ``{keys}``
    for the attention, or the ``{context}`` summary of Cho et al. (the top layer's final state)."""
    if cfg.attention == "bahdanau":
        attention = BahdanauAttention(cfg.attention_units, name=ATTENTION)
        return attention, {KEYS: L.Dense(cfg.attention_units, use_bias=False, name=ATTENTION_KEYS)(memory)}
    if cfg.attention == "luong":
        attention = LuongAttention(scale=cfg.hidden ** -0.5, name=ATTENTION)
        return attention, {KEYS: L.Dense(cfg.hidden, use_bias=False, name=ATTENTION_KEYS)(memory)}
    return None, {CONTEXT: L.Dense(cfg.hidden, activation="tanh", name=CONTEXT_PROJECTION)(final_states[-1][0])}


def encode_sequence(cfg: ModelConfig, source, x, mask, horizon: int | None) -> tuple:
    """The recurrent encoder over the source sequence ``x [B, S, D]`` of ``source`` (masked by ``mask``).

    Returns:
        ``(outputs, initial_states, attention)``: the encoder model's output dict (``memory``, ``mask``,
        ``keys`` or ``context``, the decoder's initial states by state name and, for a regression head,
        ``last_values`` and with ``linear_skip`` the ``baseline`` forecast), the decoder's initial states in
        layer order, and the attention layer the decoder shares (``None`` without attention).
    """
    x = dropout_layer(cfg, "source_dropout")(x)
    memory, final_states = _recurrent_layers(cfg, x)
    names = state_names(cfg)
    if cfg.bidirectional:
        initial_states = [L.Dense(cfg.hidden, activation="tanh", name=BRIDGE.format(state=name))(s)
                          for name, s in zip(names, (s for layer in final_states for s in layer))]
    else:
        initial_states = [s for layer in final_states for s in layer]

    outputs = {MEMORY: memory, MASK: mask}
    attention, read = _attention(cfg, memory, final_states)
    outputs.update(read)
    outputs.update(zip(names, initial_states))
    if cfg.output_head == "regression":
        level = outputs[LAST_VALUES] = LastStep(name=LAST_VALUES)(source)
        if cfg.linear_skip:
            window = LevelShift(-1.0, name="skip_relative")(source, level) if cfg.subtract_last else source
            outputs[BASELINE] = WindowLinear(horizon, name=LINEAR_SKIP)(window)
    return outputs, initial_states, attention
