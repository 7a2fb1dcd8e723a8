"""The token encoder as an ONNX graph with ONNX's own ``GRU`` / ``LSTM`` operators.

tf2onnx turns a Keras 3 recurrent layer into a generic ONNX ``Loop`` that runs some 45 small nodes per source
token and direction (its GRU/LSTM rewriters match the Keras 2 graphs only). onnxruntime's fused recurrent
kernels run the same recurrence several times faster (measured on the Multi30k model: 3.2 ms -> about 1 ms per
sentence at batch 1). This module writes the encoder directly from the trained weights: embedding lookup,
padding mask, (bi)GRU/LSTM layers, bridges and attention keys, with the Keras encoder's output names
(``memory``, ``mask``, ``keys`` or ``context``, ``state_*``), so it can stand in for the converted encoder in
the ONNX decoding graphs (``compose``). Parity with the SavedModel is checked by the export tests.

Semantics match ``models.build_models`` for right-padded ids (what every tokenizer of tfs2s produces): a row's
length is its number of non-padding ids. A row of padding only encodes to zero final states, as in Keras.
Outputs at padding positions are zero here (Keras repeats the last state there); the attention never reads
them (their weights are exactly 0). An empty batch gives empty outputs (one row of padding is run in its place:
ONNX Runtime's recurrent kernels crash on zero rows). With ``quantize="int8"`` the recurrent layers are written out
step by step instead (``tfs2s.export.onnx.encoder_loop``: the fused nodes take float32 weights only), with the same
semantics.
"""

from __future__ import annotations

import numpy as np

from tfs2s.core import features as F
from tfs2s.core.models import (ATTENTION_KEYS, BRIDGE, CONTEXT, CONTEXT_PROJECTION, ENCODER_BIRNN, ENCODER_RNN, KEYS,
                               MASK, MEMORY, SOURCE_EMBEDDING)
from tfs2s.export.onnx.encoder_loop import looped_recurrent_layers
from tfs2s.export.onnx.graph import GraphBuilder, make_model, merged_opsets, min_ir_version, portable, weight_array

PREFIX = "tfs2s_encoder/"


class UnsupportedEncoder(ValueError):
    """The model's encoder is not one this module writes (only ``input_encoder: tokens``)."""


def build_encoder(models, quantize: str | None = None, looped: bool | None = None) -> "onnx.ModelProto":  # noqa: F821
    """The encoder of ``models`` (a ``Seq2SeqModels`` with token input) as an ONNX model.

    Input ``encoder_token_ids [B, S]`` int32 (right-padded with 0; padded to one column if it has none, as
    ``data.at_least_one_column`` does). Outputs: the Keras encoder's outputs, same names and dtypes.

    Args:
        models: The trained models.
        quantize: ``None`` (float32) or ``"int8"``: the recurrent layers' products, the bridges and the attention
            keys get int8 weights (``tfs2s.export.onnx.quantize``).
        looped: Whether the recurrent layers are written out step by step in a ``Loop``
            (``tfs2s.export.onnx.encoder_loop``) rather than fused ``GRU`` / ``LSTM`` nodes (float weights only).
            Default: looped where quantised.

    Raises:
        UnsupportedEncoder: Image or vector sources, or recurrent layers configured unlike tfs2s' defaults.
        ValueError: ``quantize`` is not one of ``None``, ``"int8"``, or is asked of fused nodes.
    """
    cfg = models.config
    if cfg.input_encoder != "tokens":
        raise UnsupportedEncoder(f"input_encoder {cfg.input_encoder!r} is converted by tf2onnx, not written here")
    looped = quantize is not None if looped is None else looped
    if quantize is not None and not looped:
        raise ValueError("fused GRU / LSTM nodes take float32 weights only: an int8 encoder is looped")
    encoder = models.encoder
    g = GraphBuilder(PREFIX, public=set(encoder.output), unsupported=UnsupportedEncoder, quantize=quantize)

    def dense(x, layer_name):
        return g.dense(x, encoder.get_layer(layer_name), layer_name)

    ids, rows = _padded_ids(g)
    mask, run_lengths, nonempty = _mask_and_lengths(g, ids)
    embedding = encoder.get_layer(SOURCE_EMBEDDING)
    x = g.node("Gather", [g.const(f"{SOURCE_EMBEDDING}/embeddings", weight_array(embedding.embeddings)),
                          ids])  # [B, S, D]
    x = g.node("Transpose", [x], perm=[1, 0, 2])  # time-major [S, B, D]
    layers = looped_recurrent_layers if looped else _recurrent_layers
    memory, final_states = layers(g, models, x, run_lengths, nonempty)

    outputs = {MEMORY: memory, MASK: mask}
    flat_states = [s for layer in final_states for s in layer]
    for name, state in zip(models.state_names, flat_states):
        outputs[name] = dense(state, BRIDGE.format(state=name)) if cfg.bidirectional else state
    if models.has_attention:
        outputs[KEYS] = dense(memory, ATTENTION_KEYS)
    else:
        outputs[CONTEXT] = dense(final_states[-1][0], CONTEXT_PROJECTION)
    return _encoder_model(g, encoder, outputs, rows)


def _padded_ids(g: GraphBuilder) -> tuple[str, str]:
    """The input ids padded to at least one column and one row, and the input's row count ``[1]``.

    ONNX Runtime's recurrent kernels crash on an empty batch (the outputs are cut back to the input's rows at
    the end).
    """
    const, node = g.const, g.node
    ids = F.ENCODER_TOKEN_IDS
    shape = node("Shape", [ids])
    rows = node("Slice", [shape, const("zero_1", np.array([0], np.int64)), const("one_1", np.array([1], np.int64))])
    one, zero = const("one_i64", np.array([1], np.int64)), const("zero_i64", np.array([0], np.int64))
    missing = node("Max", [node("Sub", [one, node("Slice", [shape, one, const("two_1", np.array([2], np.int64))])]),
                           zero])
    missing_rows = node("Max", [node("Sub", [one, rows]), zero])
    # Pad's pads: [begin rows, begin columns, end rows, end columns].
    pads = node("Concat", [const("pads_head", np.zeros(2, np.int64)), missing_rows, missing], axis=0)
    return node("Pad", [ids, pads, const("pad_id", np.array(F.PAD_ID, np.int32))]), rows


def _mask_and_lengths(g: GraphBuilder, ids: str) -> tuple[str, str, str]:
    """The padding mask ``[B, S]``, the lengths the recurrences run (at least 1) and ``[B, 1]`` 1.0 for rows
    that are not padding only (0.0 zeroes those rows' final states)."""
    from onnx import TensorProto  # the onnx extra is optional: needed only when a graph is written

    const, node = g.const, g.node
    mask = node("Not", [node("Equal", [ids, const("pad_id_b", np.array(F.PAD_ID, np.int32))])])
    lengths = node("ReduceSum", [node("Cast", [mask], to=TensorProto.INT32), const("axis_1", np.array([1], np.int64))],
                   keepdims=0)
    # ONNX recurrences want lengths >= 1; a row of padding runs one step and its final states are zeroed below.
    run_lengths = node("Max", [lengths, const("one_i32", np.array([1], np.int32))])
    nonempty = node("Unsqueeze", [node("Cast", [node("Greater", [lengths, const("zero_i32", np.array(0, np.int32))])],
                                       to=TensorProto.FLOAT), const("axis_m1", np.array([-1], np.int64))])
    return mask, run_lengths, nonempty


def _recurrent_layers(g: GraphBuilder, models, x: str, run_lengths: str, nonempty: str) -> tuple[str, list]:
    """The (bi)GRU/LSTM layers over time-major ``x``; returns the memory ``[B, S, dirs * H]`` and, per layer,
    one ``[B, H * dirs]`` tensor per state (h, then c for LSTMs)."""
    cfg, encoder = models.config, models.encoder
    const, node = g.const, g.node
    final_states = []
    for i in range(cfg.layers):
        if cfg.bidirectional:
            wrapper = encoder.get_layer(ENCODER_BIRNN.format(i=i))
            directions = [wrapper.forward_layer, wrapper.backward_layer]
        else:
            directions = [encoder.get_layer(ENCODER_RNN.format(i=i))]
        weights = [g.rnn_weights(layer, cfg.cell) for layer in directions]
        w, r, b = (const(f"{ENCODER_RNN.format(i=i)}/{n}", np.stack([wt[k] for wt in weights]))
                   for k, n in enumerate(("W", "R", "B")))
        direction = "bidirectional" if cfg.bidirectional else "forward"
        count = len(directions)
        if cfg.cell == "lstm":
            y, h, c = node("LSTM", [x, w, r, b, run_lengths], [f"rnn_{i}_y", f"rnn_{i}_h", f"rnn_{i}_c"],
                           hidden_size=cfg.hidden, direction=direction)
            states = [h, c]
        else:
            y, h = node("GRU", [x, w, r, b, run_lengths], [f"rnn_{i}_y", f"rnn_{i}_h"], hidden_size=cfg.hidden,
                        direction=direction, linear_before_reset=1)
            states = [h]
        # Y [S, dirs, B, H] -> [S, B, dirs * H] (forward then backward, as Bidirectional's "concat").
        x = node("Reshape", [node("Transpose", [y], perm=[0, 2, 1, 3]),
                             const(f"shape_y_{i}", np.array([0, 0, count * cfg.hidden], np.int64))])
        # Y_h / Y_c [dirs, B, H] -> [B, dirs * H], zero for rows of padding only.
        final_states.append([
            node("Mul", [node("Reshape", [node("Transpose", [s], perm=[1, 0, 2]),
                                          const(f"shape_s_{i}_{j}", np.array([0, count * cfg.hidden], np.int64))]),
                         nonempty])
            for j, s in enumerate(states)])
    return node("Transpose", [x], perm=[1, 0, 2]), final_states  # memory [B, S, dirs * H]


def _encoder_model(g: GraphBuilder, encoder, outputs: dict, rows: str) -> "onnx.ModelProto":  # noqa: F821
    """The model whose outputs are ``outputs`` under their final names, cut back to the input's ``rows``."""
    from onnx import TensorProto, helper  # the onnx extra is optional: needed only when a graph is written

    expected = encoder.output
    graph_outputs = []
    for name in sorted(expected):
        g.node("Slice", [outputs[name], g.const(f"start_{name}", np.array([0], np.int64)), rows,
                         g.const(f"axes_{name}", np.array([0], np.int64))], [name])
        dtype = TensorProto.BOOL if name == MASK else TensorProto.FLOAT
        rank = len(expected[name].shape)
        graph_outputs.append(helper.make_tensor_value_info(name, dtype, [None] * rank))
    graph = helper.make_graph(g.nodes, "tfs2s_encoder",
                              [helper.make_tensor_value_info(F.ENCODER_TOKEN_IDS, TensorProto.INT32, [None, None])],
                              graph_outputs, g.inits)
    return make_model(graph)


def compose(encoder: "onnx.ModelProto", decoder: "onnx.ModelProto") -> "onnx.ModelProto":  # noqa: F821
    """One graph: ``encoder`` feeding every ``decoder`` input it produces (by name).

    The decoder's remaining inputs (none, for the decoding graphs) stay inputs; the result has the encoder's
    ``encoder_token_ids`` input and the decoder's outputs.
    """
    import onnx
    from onnx import compose as onnx_compose

    produced = {o.name for o in encoder.graph.output}
    io_map = [(i.name, i.name) for i in decoder.graph.input if i.name in produced]
    missing = [i.name for i in decoder.graph.input if i.name not in produced]
    if missing:
        raise ValueError(f"the encoder does not produce the decoder inputs {missing}")
    # merge_models wants one IR version and, domain by domain, one opset version in both models: both get the
    # union of their opsets (the decoder, from tf2onnx, may import more domains than the encoder) and its IR version.
    versions = merged_opsets(encoder.opset_import, decoder.opset_import)
    halves = []
    for model in (encoder, decoder):
        model = onnx.ModelProto.FromString(model.SerializeToString())
        del model.opset_import[:]
        model.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in versions.items())
        model.ir_version = min_ir_version(versions)
        halves.append(model)
    merged = onnx_compose.merge_models(*halves, io_map=io_map, outputs=[o.name for o in decoder.graph.output])
    return portable(merged)  # merge_models lists both models' opset imports: one per domain again, and checked
