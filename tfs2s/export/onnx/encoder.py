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
ONNX Runtime's recurrent kernels crash on zero rows).
"""

from __future__ import annotations

import numpy as np

from tfs2s.core import features as F

PREFIX = "tfs2s_encoder/"


class UnsupportedEncoder(ValueError):
    """The model's encoder is not one this module writes (only ``input_encoder: tokens``)."""


def weight_array(variable) -> np.ndarray:
    """A Keras variable (or array) as a float32 numpy array."""
    return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable, np.float32)


def gru_weights(layer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keras GRU (``reset_after``) -> ONNX ``W [3H, D]``, ``R [3H, H]``, ``B [6H]``; both use gate order z, r, h."""
    cell = layer.cell
    if not getattr(cell, "reset_after", False):
        raise UnsupportedEncoder("only GRUs with reset_after=True (the Keras default) are written to ONNX")
    kernel, recurrent = weight_array(cell.kernel), weight_array(cell.recurrent_kernel)
    bias = weight_array(cell.bias) if cell.use_bias else np.zeros((2, kernel.shape[1]), np.float32)
    return kernel.T, recurrent.T, bias.reshape(-1)


def lstm_weights(layer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keras LSTM (gates i, f, c, o) -> ONNX ``W [4H, D]``, ``R [4H, H]``, ``B [8H]`` (gates i, o, f, c)."""
    cell = layer.cell
    kernel, recurrent = weight_array(cell.kernel), weight_array(cell.recurrent_kernel)
    bias = weight_array(cell.bias) if cell.use_bias else np.zeros(kernel.shape[1], np.float32)

    def reorder(w):
        i, f, c, o = np.split(w, 4, axis=-1)
        return np.concatenate([i, o, f, c], axis=-1)

    return reorder(kernel).T, reorder(recurrent).T, np.concatenate([reorder(bias), np.zeros_like(bias)])


def check_activations(layer) -> None:
    """Raises ``UnsupportedEncoder`` unless the recurrent layer uses the activations ONNX's cells assume."""
    cell = layer.cell
    names = (getattr(cell.activation, "__name__", ""), getattr(cell.recurrent_activation, "__name__", ""))
    if names != ("tanh", "sigmoid"):
        raise UnsupportedEncoder(f"{layer.name}: activations {names} are not written to ONNX (tanh, sigmoid only)")


class GraphBuilder:
    """Collects the nodes and initialisers of an ONNX graph written by hand.

    Internal names carry ``prefix``, so the graph merges with a converted one without name clashes; names in
    ``public`` (graph inputs and outputs) are kept as they are. A layer it cannot write raises ``unsupported``.
    """

    def __init__(self, prefix: str, public=(), unsupported: type[ValueError] = UnsupportedEncoder):
        self.prefix, self.public, self.unsupported = prefix, set(public), unsupported
        self.nodes, self.inits = [], []

    def const(self, name: str, value) -> str:
        """An initialiser holding ``value``; returns its name."""
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.asarray(value), self.prefix + name))
        return self.prefix + name

    def node(self, op: str, inputs, outputs=None, **attrs):
        """Adds a node; returns its output name (or the list of them when it has several)."""
        from onnx import helper

        # "" is an optional output left out; it keeps no name.
        outputs = [o if o in self.public or not o else self.prefix + o
                   for o in (outputs or [f"{op.lower()}_{len(self.nodes)}"])]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=f"{self.prefix}{op}_{len(self.nodes)}", **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def dense(self, x: str, layer, name: str, extra_bias=None) -> str:
        """A Keras ``Dense`` layer (linear or tanh) on ``x``; ``extra_bias`` is added to its bias."""
        y = self.node("MatMul", [x, self.const(f"{name}/kernel", weight_array(layer.kernel))])
        bias = weight_array(layer.bias) if layer.use_bias else None
        if extra_bias is not None:
            bias = extra_bias if bias is None else bias + extra_bias
        if bias is not None:
            y = self.node("Add", [y, self.const(f"{name}/bias", bias)])
        act = getattr(layer.activation, "__name__", "linear")
        if act == "tanh":
            y = self.node("Tanh", [y])
        elif act != "linear":
            raise self.unsupported(f"{name}: activation {act!r} is not written to ONNX")
        return y


def build_encoder(models) -> "onnx.ModelProto":  # noqa: F821
    """The encoder of ``models`` (a ``Seq2SeqModels`` with token input) as an ONNX model.

    Input ``encoder_token_ids [B, S]`` int32 (right-padded with 0; padded to one column if it has none, as
    ``data.at_least_one_column`` does). Outputs: the Keras encoder's outputs, same names and dtypes.

    Raises:
        UnsupportedEncoder: Image or vector sources, or recurrent layers configured unlike tfs2s' defaults.
    """
    import onnx
    from onnx import TensorProto, helper

    from tfs2s.export.savedmodel import ONNX_OPSET

    cfg = models.config
    if cfg.input_encoder != "tokens":
        raise UnsupportedEncoder(f"input_encoder {cfg.input_encoder!r} is converted by tf2onnx, not written here")
    encoder = models.encoder
    g = GraphBuilder(PREFIX, public=set(encoder.output))
    const, node = g.const, g.node

    def dense(x, layer_name):
        return g.dense(x, encoder.get_layer(layer_name), layer_name)

    # Ids, padded to at least one column and one row: ONNX Runtime's recurrent kernels crash on an empty batch
    # (the outputs are cut back to the input's rows at the end).
    ids = F.ENCODER_TOKEN_IDS
    shape = node("Shape", [ids])
    rows = node("Slice", [shape, const("zero_1", np.array([0], np.int64)), const("one_1", np.array([1], np.int64))])
    one, zero = const("one_i64", np.array([1], np.int64)), const("zero_i64", np.array([0], np.int64))
    missing = node("Max", [node("Sub", [one, node("Slice", [shape, one, const("two_1", np.array([2], np.int64))])]),
                           zero])
    missing_rows = node("Max", [node("Sub", [one, rows]), zero])
    # Pad's pads: [begin rows, begin columns, end rows, end columns].
    pads = node("Concat", [const("pads_head", np.zeros(2, np.int64)), missing_rows, missing], axis=0)
    ids = node("Pad", [ids, pads, const("pad_id", np.array(F.PAD_ID, np.int32))])

    mask = node("Not", [node("Equal", [ids, const("pad_id_b", np.array(F.PAD_ID, np.int32))])])
    lengths = node("ReduceSum", [node("Cast", [mask], to=TensorProto.INT32), const("axis_1", np.array([1], np.int64))],
                   keepdims=0)
    # ONNX recurrences want lengths >= 1; a row of padding runs one step and its final states are zeroed below.
    run_lengths = node("Max", [lengths, const("one_i32", np.array([1], np.int32))])
    nonempty = node("Unsqueeze", [node("Cast", [node("Greater", [lengths, const("zero_i32", np.array(0, np.int32))])],
                                       to=TensorProto.FLOAT), const("axis_m1", np.array([-1], np.int64))])

    embedding = encoder.get_layer("source_embedding")
    x = node("Gather", [const("source_embedding/embeddings", weight_array(embedding.embeddings)), ids])  # [B, S, D]
    x = node("Transpose", [x], perm=[1, 0, 2])  # time-major [S, B, D]

    final_states = []  # per layer: one [B, H * directions] tensor per state (h, then c for LSTMs)
    for i in range(cfg.layers):
        if cfg.bidirectional:
            wrapper = encoder.get_layer(f"encoder_birnn_{i}")
            directions = [wrapper.forward_layer, wrapper.backward_layer]
        else:
            directions = [encoder.get_layer(f"encoder_rnn_{i}")]
        weights = []
        for layer in directions:
            check_activations(layer)
            weights.append(lstm_weights(layer) if cfg.cell == "lstm" else gru_weights(layer))
        w, r, b = (const(f"encoder_rnn_{i}/{n}", np.stack([wt[k] for wt in weights]))
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
    memory = node("Transpose", [x], perm=[1, 0, 2])  # [B, S, dirs * H]

    outputs = {"memory": memory, "mask": mask}
    state_names = list(models.state_names)
    flat_states = [s for layer in final_states for s in layer]
    for name, state in zip(state_names, flat_states):
        outputs[name] = dense(state, f"bridge_{name}") if cfg.bidirectional else state
    if cfg.attention in ("bahdanau", "luong"):
        outputs["keys"] = dense(memory, "attention_keys")
    else:
        outputs["context"] = dense(final_states[-1][0], "context_projection")

    # Every output gets its final name cut back to the input's rows.
    expected = encoder.output
    graph_outputs = []
    for name in sorted(expected):
        node("Slice", [outputs[name], const(f"start_{name}", np.array([0], np.int64)), rows,
                       const(f"axes_{name}", np.array([0], np.int64))], [name])
        dtype = TensorProto.BOOL if name == "mask" else TensorProto.FLOAT
        rank = len(expected[name].shape)
        graph_outputs.append(helper.make_tensor_value_info(name, dtype, [None] * rank))
    graph = helper.make_graph(g.nodes, "tfs2s_encoder",
                              [helper.make_tensor_value_info(F.ENCODER_TOKEN_IDS, TensorProto.INT32, [None, None])],
                              graph_outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              producer_name="tfs2s")
    onnx.checker.check_model(model)
    return model


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
    encoder = onnx.ModelProto.FromString(encoder.SerializeToString())
    encoder.ir_version = decoder.ir_version
    # Opsets must agree domain by domain; the decoder (tf2onnx) may import more domains than the encoder.
    versions = {o.domain: o.version for o in decoder.opset_import}
    del encoder.opset_import[:]
    encoder.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in versions.items())
    merged = onnx_compose.merge_models(encoder, decoder, io_map=io_map,
                                       outputs=[o.name for o in decoder.graph.output])
    onnx.checker.check_model(merged)
    return merged
