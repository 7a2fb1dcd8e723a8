"""int8 greedy decoding (``build_greedy_decoder(..., quantize="int8")``): the written-out cells, the int8 graph's
agreement with TensorFlow's greedy search, its outputs, its portability. Tiny random models: seconds.

The int8 beam graph (``int8_pass.quantize_products`` on tf2onnx's beam graph): the pass on a hand-made graph with
every way weights reach a product (seconds), and on a tiny export against its float beam graph (slow)."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfs2s.core import decoding
from tfs2s.core.config import DecodingConfig
from tfs2s.export.onnx.cells import cell_step
from tfs2s.export.onnx.convert import int8_greedy_model
from tfs2s.export.onnx.encoder import build_encoder, compose
from tfs2s.export.onnx.graph import GraphBuilder, make_model, save_model
from tfs2s.export.onnx.greedy import build_greedy_decoder
from tfs2s.export.onnx.quantize import INT8_LEVELS, quantize_columns

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from test_onnx_decoder import _expected, _models, _run  # noqa: E402
from test_onnx_encoder import CASES, IDS  # noqa: E402
from test_onnx_portable import _check_portable, _node_agrees  # noqa: E402

DC = DecodingConfig(max_length_ratio=1.5, max_length_offset=3, min_length=2)
# More rows than IDS (sources of 1-9 words and one of padding only), so agreement rates mean something.
RNG_IDS = np.random.default_rng(5)
MANY_IDS = np.zeros((24, 9), np.int32)
for _row, _length in enumerate([0] + RNG_IDS.integers(1, 10, 23).tolist()):
    MANY_IDS[_row, :_length] = RNG_IDS.integers(3, 30, _length)


def test_quantize_columns_is_symmetric_per_column():
    w = np.random.default_rng(0).normal(0, 1, (40, 6)).astype(np.float32) * np.array([1e-3, 0.1, 1, 3, 10, 0])
    q, scale = quantize_columns(w)
    assert q.dtype == np.int8 and scale.shape == (6,) and np.abs(q).max() == INT8_LEVELS == 63
    np.testing.assert_array_equal(q[:, 5], 0)  # an all-zero column stays zero (scale 1, no division by 0)
    # Each column's error is at most half its own step: small columns keep their precision beside large ones.
    assert (np.abs(q * scale - w) <= scale / 2 + 1e-9).all()
    np.testing.assert_array_equal(quantize_columns(-w)[0], -q)  # symmetric: no zero point


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_written_out_cell_equals_the_fused_onnx_node(cell):
    """One step of ``cells.cell_step`` in float32 gives what ONNX's GRU (linear_before_reset=1) / LSTM node gives."""
    from onnx import TensorProto, helper

    keras.utils.set_random_seed(3)
    batch, inputs, hidden = 5, 7, 6
    layer = (keras.layers.GRU if cell == "gru" else keras.layers.LSTM)(hidden)
    layer.build((None, None, inputs))
    rng = np.random.default_rng(4)
    layer.set_weights([rng.normal(0, 0.7, w.shape).astype(np.float32) for w in layer.get_weights()])
    names = ["x", "h"] + (["c"] if cell == "lstm" else [])
    feeds = {n: rng.normal(0, 1, (batch, inputs if n == "x" else hidden)).astype(np.float32) for n in names}

    def model(g, outputs):
        graph = helper.make_graph(g.nodes, "cell", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, None])
                                                    for n in names],
                                  [helper.make_tensor_value_info(o, TensorProto.FLOAT, [None, None]) for o in outputs],
                                  g.inits)
        return make_model(graph)

    written = GraphBuilder("w/", public=names + ["h_new", "c_new"], unsupported=ValueError)
    new = cell_step(written, layer, cell, "x", names[1:], "cell")
    for value, name in zip(new, ["h_new", "c_new"]):
        written.node("Identity", [value], [name])
    fused = GraphBuilder("f/", public=names + ["h_new", "c_new"], unsupported=ValueError)
    w, r, b = (fused.const(k, v[None]) for k, v in zip("WRB", fused.rnn_weights(layer, cell)))
    seq = fused.node("Unsqueeze", ["x", fused.const("axis0", np.array([0], np.int64))])
    states = [fused.node("Unsqueeze", [s, fused.const(f"axis0_{s}", np.array([0], np.int64))]) for s in names[1:]]
    out = fused.node(cell.upper(), [seq, w, r, b, "", *states], ["", "h_seq", "c_seq"][:len(names)],
                     hidden_size=hidden, **({"linear_before_reset": 1} if cell == "gru" else {}))
    for value, name in zip(out[1:], ["h_new", "c_new"]):
        fused.node("Squeeze", [value, fused.const(f"axis0_{name}", np.array([0], np.int64))], [name])
    outputs = ["h_new", "c_new"][:len(names) - 1]
    got, expected = ({n: v for n, v in zip(outputs, ort.InferenceSession(
        model(g, outputs).SerializeToString(), providers=["CPUExecutionProvider"]).run(outputs, feeds))}
        for g in (written, fused))
    for name in outputs:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-6, err_msg=name)
    # And Keras' own cell agrees (the fused node's weights are converted; the written cell reads them as they are).
    keras_new = layer.cell(feeds["x"], [feeds[n] for n in names[1:]])[1]
    keras_new = keras_new if isinstance(keras_new, (list, tuple)) else [keras_new]
    np.testing.assert_allclose(got["h_new"], np.asarray(keras_new[0]), atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_written_out_cells_decode_what_tensorflow_decodes(case):
    """The float32 greedy graph with the cells written out (as the int8 graph has them) = TF's greedy search."""
    m = _models(**case)
    expected = _expected(m, IDS, DC)
    got = _run(compose(build_encoder(m), build_greedy_decoder(m, DC, fused_cells=False)), IDS)
    assert sorted(got) == sorted(expected)
    np.testing.assert_array_equal(got["tokens"], expected["tokens"])
    np.testing.assert_array_equal(got["length"], expected["length"])
    np.testing.assert_allclose(got["scores"], expected["scores"], atol=1e-4)
    if "alignment" in expected:
        np.testing.assert_allclose(got["alignment"], expected["alignment"], atol=1e-5)


def _greedy_margins(m, ids, dc) -> tuple[dict, np.ndarray]:
    """TF's greedy outputs and, per row, the smallest gap between the best and second-best logit over the steps
    that chose its tokens (its ``</s>`` included): how far int8's rounding may move logits before an argmax flips."""
    gaps = []

    def recording_step(step_ids, state):
        logits, new_state = m.step(step_ids, state)
        top = tf.math.top_k(logits, 2).values
        gaps.append((top[:, 0] - top[:, 1]).numpy())
        return logits, new_state

    state = m.initial_state(tf.constant(ids), alignment=m.has_attention)
    limits = decoding.length_limits(np.sum(ids != 0, axis=1), dc.max_length_ratio, dc.max_length_offset)
    out = decoding.greedy_search(recording_step, state, limits, dc.min_length)
    lengths = out["lengths"].numpy()[:, 0]
    gaps = np.stack(gaps, axis=1)  # [B, steps]
    steps = np.minimum(lengths + 1, np.asarray(limits))  # the tokens chosen, </s> where it was reached
    margin = np.array([gaps[b, :max(1, s)].min() for b, s in enumerate(steps)])
    expected = {"tokens": out["tokens"].numpy(), "length": out["lengths"].numpy(), "scores": out["scores"].numpy()}
    return expected, margin


# The int8 error budget on these random models (weights N(0, 0.8)), measured over CASES x MANY_IDS. Random models
# choose between near-ties all the time (a row's closest greedy choice leads by a median 0.07-0.28 logits), so
# int8's rounding flips some: every row that came out different had a choice led by < 0.1 logits. Where tokens
# agree, a row's score (sum of log-probabilities) moved by at most 0.04 per token with 8-bit weights on a VNNI CPU
# and 0.14 with today's 7-bit weights (quantize.INT8_LEVELS) on an AVX2 one (2026-12-07; 8-bit weights there
# saturated onnxruntime's kernels and flipped rows whose choices led by > 0.25). The bounds leave about 2x that:
# - a row whose every choice led by more than SEPARATED logits comes out identical;
# - scores of identical rows within SCORE_TOLERANCE_PER_TOKEN per token;
# - greedy choices made on the same prefix (up to a row's first difference) agree >= MIN_CHOICE_AGREEMENT
#   (measured 0.98; 0.97 with 7 bits); positions agree >= MIN_TOKEN_AGREEMENT (measured 0.90; 0.89: after a
#   flip the rest of a row follows another prefix, so this rate counts each flip several times).
SEPARATED = 0.25
SCORE_TOLERANCE_PER_TOKEN = 0.3
MIN_CHOICE_AGREEMENT = 0.95
MIN_TOKEN_AGREEMENT = 0.85


@pytest.fixture(scope="module")
def int8_runs():
    """Per case: TF's greedy outputs and margins, the int8 graph's outputs, the int8 model, the fp32 graph's outputs."""
    runs = {}
    for case in CASES:
        m = _models(**case)
        expected, margin = _greedy_margins(m, MANY_IDS, DC)
        encoder = build_encoder(m)  # float32: these bounds are the decoder's (the int8 encoder's are tested below)
        model = compose(encoder, build_greedy_decoder(m, DC, quantize="int8"))
        fp32 = _run(compose(encoder, build_greedy_decoder(m, DC)), MANY_IDS)
        runs["-".join(str(v) for v in case.values())] = (expected, margin, _run(model, MANY_IDS), model, fp32)
    return runs


@pytest.fixture(scope="module")
def int8_graphs():
    """Per case: the int8 greedy graph as the export writes it (encoder loops included) and its outputs."""
    runs = {}
    for case in CASES:
        m = _models(**case)
        model = int8_greedy_model(m, DC)
        fp32 = _run(compose(build_encoder(m), build_greedy_decoder(m, DC)), MANY_IDS)
        runs["-".join(str(v) for v in case.values())] = (None, None, _run(model, MANY_IDS), model, fp32)
    return runs


def test_int8_encoder_step_does_not_saturate():
    """One int8 GRU step on a word whose quantised products would overflow 16-bit pair sums with 8-bit weights (on
    CPUs without VNNI, where onnxruntime's uint8 x int8 kernels saturate): its output stays within rounding error
    (measured 0.7 off with 8-bit weights on an AVX2 CPU, 0.02 with 7-bit ones)."""
    m = _models(**CASES[4])  # unidirectional GRU: the memory is the step's output
    ids = np.array([[9]], np.int32)
    fp32, int8 = _run(build_encoder(m), ids), _run(build_encoder(m, quantize="int8"), ids)
    np.testing.assert_allclose(int8["memory"], fp32["memory"], atol=0.05)


def test_int8_greedy_agrees_with_tensorflow(int8_runs):
    agree = total = separated = choices = flips = 0
    for name, (expected, margin, got, _, _) in int8_runs.items():
        assert got["tokens"].shape[0] == expected["tokens"].shape[0], name
        width = max(got["tokens"].shape[2], expected["tokens"].shape[2])
        pad = [(0, 0), (0, 0)]
        ours = np.pad(got["tokens"], pad + [(0, width - got["tokens"].shape[2])])[:, 0]
        theirs = np.pad(expected["tokens"], pad + [(0, width - expected["tokens"].shape[2])])[:, 0]
        # Token agreement over the positions either side produced (padding after both ends is not counted).
        used = (ours != 0) | (theirs != 0)
        agree += int(((ours == theirs) & used).sum())
        total += int(used.sum())
        same = (ours == theirs).all(axis=1)
        # Choices on the same prefix: a row's positions up to its first difference (that one included).
        first = np.where(same, used.sum(axis=1), np.argmax(ours != theirs, axis=1) + 1)
        choices += int(first.sum())
        flips += int((~same).sum())
        # Well-separated rows (every choice leads by > SEPARATED logits) are identical, whatever the case.
        wide = margin > SEPARATED
        separated += int(wide.sum())
        assert same[wide].all(), (name, np.flatnonzero(wide & ~same))
        # Rows with the same tokens: scores within the budget, per token decoded.
        lengths = expected["length"][:, 0] + 1
        diff = np.abs(got["scores"][:, 0] - expected["scores"][:, 0])
        assert (diff[same] <= SCORE_TOLERANCE_PER_TOKEN * lengths[same]).all(), (name, diff[same].max())
        np.testing.assert_array_equal(got["length"][same], expected["length"][same])
    assert total > 200 and separated > 20  # enough tokens and well-separated rows for the rates to mean something
    print(f"int8: choices agree {1 - flips / choices:.3f} ({choices}), positions {agree / total:.3f} ({total}), "
          f"{separated} well-separated rows")
    assert 1 - flips / choices >= MIN_CHOICE_AGREEMENT, (flips, choices)
    assert agree / total >= MIN_TOKEN_AGREEMENT, agree / total


def test_int8_graph_has_the_float_graphs_outputs_and_int8_products(int8_graphs):
    for name, (_, _, got, model, fp32) in int8_graphs.items():
        ops = {n.op_type for n in model.graph.node}
        bodies = {a.g.name: a.g for n in model.graph.node if n.op_type == "Loop" for a in n.attribute if a.name == "body"}
        body = bodies.pop("greedy_step")
        body_ops = [n.op_type for n in body.node]
        # Inside the loop: no float products of the weights left but the attention's; no fused recurrent node.
        assert "MatMulInteger" in body_ops and "DynamicQuantizeLinear" in body_ops, name
        assert not {"GRU", "LSTM"} & set(body_ops), name
        int8 = [i for i in body.initializer if i.data_type == onnx.TensorProto.INT8]
        # Two recurrent products per layer, the attentional hidden layer, the output layer.
        layers = 2 if name.split("-")[-1] == "2" else 1
        assert len(int8) == 2 * layers + 2, (name, [i.name for i in int8])
        # The encoder: one loop per layer, each direction's two recurrent products int8; no fused recurrent node.
        assert not {"GRU", "LSTM"} & ops, name
        directions = 2 if "True" in name else 1
        assert sorted(bodies) == [f"encoder_rnn_{i}_step" for i in range(layers)], (name, sorted(bodies))
        for encoder_body in bodies.values():
            int8 = [i for i in encoder_body.initializer if i.data_type == onnx.TensorProto.INT8]
            assert len(int8) == 2 * directions, (name, [i.name for i in int8])
        # The fp32 graph's outputs, names, dtypes and ranks (alignment for attention models).
        assert list(got) == list(fp32) and ("alignment" in got) == (name.split("-")[1] != "none"), name
        for key, value in fp32.items():
            assert got[key].dtype == value.dtype and got[key].shape[:2] == value.shape[:2], key
            assert got[key].ndim == value.ndim, key
        if "alignment" in got:
            assert got["alignment"].shape == got["tokens"].shape + (MANY_IDS.shape[1],)
            sums = got["alignment"][:, 0].sum(axis=-1)  # each decoded step's weights sum to 1, zero after the end
            steps = got["tokens"][:, 0] != 0  # the steps a row decoded (its </s> included): <pad> is never chosen
            words = (MANY_IDS != 0).any(axis=1)[:, None]  # a source of padding only has nothing to attend to
            np.testing.assert_allclose(sums[steps & words], 1.0, atol=1e-5)
            assert not sums[~steps | ~words].any()


def test_int8_graph_edge_batches():
    m = _models(**CASES[0])
    model = int8_greedy_model(m, DecodingConfig(max_length_offset=0, min_length=0))
    assert _run(model, np.zeros((0, 4), np.int32))["tokens"].shape == (0, 1, 0)
    got = _run(model, IDS)
    assert not got["tokens"][2].any() and got["length"][2, 0] == 0  # padding only, offset 0: no room


def test_quantize_refuses_unknown_values():
    m = _models(**CASES[0])
    with pytest.raises(ValueError, match="quantize must be one of"):
        build_greedy_decoder(m, DC, quantize="int4")


def test_int8_graph_is_portable_and_runs_in_node(tmp_path, int8_graphs):
    """IR 8, opset 17, standard operators only (the encoder's loops and ReverseSequence included): loads and decodes
    in onnxruntime-node as in Python."""
    _, _, got, model, _ = int8_graphs["gru-bahdanau-True-1"]
    path = save_model(model, str(tmp_path / "translate_ids_greedy.int8.onnx"))
    saved = _check_portable(path)
    assert {o.domain for o in saved.opset_import} == {""}  # no com.microsoft contrib ops
    python = _run(saved, MANY_IDS)
    np.testing.assert_array_equal(python["tokens"], got["tokens"])
    _node_agrees(str(tmp_path), MANY_IDS, {"translate_ids_greedy.int8.onnx": python})


def test_export_onnx_writes_the_int8_graph_beside_the_float_one(tmp_path, int8_graphs):
    """``export_onnx(quantize="int8")`` adds translate_ids_greedy.int8.onnx; the float32 graphs stay as they were.

    Only the graphs tfs2s writes by hand are asked for: no SavedModel and no tf2onnx conversion are needed.
    """
    from tfs2s.core.errors import ExportError
    from tfs2s.export.onnx.convert import INT8_GREEDY, INT8_GREEDY_FILE, ONNX_GRAPHS, export_onnx

    m = _models(**CASES[0])
    graphs = {k: ONNX_GRAPHS[k] for k in ("encode", "translate_ids_greedy")}
    written = export_onnx(str(tmp_path / "unused"), str(tmp_path / "onnx"), graphs=graphs, models=m, decoding=DC,
                          quantize="int8")
    assert sorted(os.listdir(tmp_path / "onnx")) == sorted(["encoder.onnx", "translate_ids_greedy.onnx",
                                                            INT8_GREEDY_FILE])
    assert written[INT8_GREEDY] == str(tmp_path / "onnx" / INT8_GREEDY_FILE)
    _, _, int8, _, fp32 = int8_graphs["gru-bahdanau-True-1"]
    for path, expected in ((written["translate_ids_greedy"], fp32), (written[INT8_GREEDY], int8)):
        got = _run(_check_portable(path), MANY_IDS)
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{path}: {key}")
    with pytest.raises(ExportError, match="quantize must be"):
        export_onnx(str(tmp_path / "unused"), str(tmp_path / "other"), graphs=graphs, models=m, decoding=DC,
                    quantize="int4")
    with pytest.raises(ExportError, match="text models only"):
        export_onnx(str(tmp_path / "unused"), str(tmp_path / "other"), graphs=graphs, quantize="int8")
    with pytest.raises(ExportError, match="no int8 greedy graph.*repeat"):
        export_onnx(str(tmp_path / "unused"), str(tmp_path / "other"), graphs=graphs, models=m,
                    decoding=DecodingConfig(no_repeat_ngram_size=2), quantize="int8")
    assert not (tmp_path / "other").exists()  # refused before anything was written


def test_quantize_needs_onnx_and_a_text_model(tmp_path):
    """`tfs2s export --quantize int8` without --onnx, or for an image run, is a clear ExportError before writing."""
    import types

    from tfs2s.core.config import load_config
    from tfs2s.core.errors import ExportError
    from tfs2s.tasks import export
    from tfs2s.tasks.image.task import ImageTask

    predictor = types.SimpleNamespace(config=load_config(None, {}))
    with pytest.raises(ExportError, match="--onnx"):
        export(predictor, str(tmp_path), "int8", quantize="int8")
    assert not os.listdir(tmp_path)
    with pytest.raises(ExportError, match="text models only"):
        ImageTask().write_onnx(str(tmp_path), str(tmp_path / "onnx"), None, quantize="int8")


# --- int8_pass.quantize_products: converted graphs (the beam graph), products inside Loop / If bodies ---

def _loop_model(k: int = 64):
    """A hand-made graph with every way ``quantize_products`` finds (or must not find) constant weights.

    ``x [B, k]`` -> a 3-step ``Loop`` carrying ``h``, a weight ``w1`` passed through unchanged (an initialiser, as
    tf2onnx carries the SavedModel's variables) and a weight ``wd`` the body changes (not a constant). The body
    multiplies by ``w1``, by a ``Transpose`` of a ``Constant``, by an outer initialiser inside an ``If`` branch on
    rank-3 activations, by a ``Gemm`` (``transB``, ``alpha``, a constant bias with ``beta``), by a small weight
    (``k x k/2``: under ``MIN_ELEMENTS`` when k is 64) and by ``wd``; after the Loop, one more product.
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)

    def weights(name, *shape):
        return numpy_helper.from_array(rng.normal(0, 1 / np.sqrt(shape[0]), shape).astype(np.float32), name)

    def value(name, elem=TensorProto.FLOAT, shape=(None, None)):
        return helper.make_tensor_value_info(name, elem, list(shape))

    node = helper.make_node
    then_branch = helper.make_graph([node("MatMul", ["b3", "W3"], ["t"])], "then", [], [value("t", shape=[None] * 3)])
    else_branch = helper.make_graph([node("Identity", ["b3"], ["t_else"])], "else", [],
                                    [value("t_else", shape=[None] * 3)])
    body = helper.make_graph([
        node("MatMul", ["h", "w1"], ["a"]),
        node("Constant", [], ["w2t"], value=weights("w2t_value", k, k)),
        node("Transpose", ["w2t"], ["w2"], perm=[1, 0]),
        node("Tanh", ["a"], ["a_tanh"]),
        node("MatMul", ["a_tanh", "w2"], ["b"]),
        node("Unsqueeze", ["b", "axis0"], ["b3"]),
        node("If", ["flag"], ["t3"], then_branch=then_branch, else_branch=else_branch),
        node("Squeeze", ["t3", "axis0"], ["t2"]),
        node("Gemm", ["t2", "Wg", "C"], ["g"], transB=1, alpha=0.5, beta=2.0),
        node("MatMul", ["g", "Wsmall"], ["small"]),
        node("Concat", ["small", "small"], ["small2"], axis=1),
        node("MatMul", ["h", "wd"], ["d"]),
        node("Sum", ["g", "small2", "d"], ["pre"]),
        node("Tanh", ["pre"], ["h_next"]),
        node("Mul", ["wd", "decay"], ["wd_next"]),
        node("Identity", ["cond"], ["cond_next"]),
    ], "body", [value("i", TensorProto.INT64, []), value("cond", TensorProto.BOOL, []), value("h"), value("w1"),
                value("wd")],
        [value("cond_next", TensorProto.BOOL, []), value("h_next"), value("w1"), value("wd_next")])
    graph = helper.make_graph(
        [node("Loop", ["steps", "", "x", "W1", "Wd"], ["h_final", "w1_final", "wd_final"], body=body),
         node("MatMul", ["h_final", "Wout"], ["y"])],
        "int8_pass_case", [value("x", shape=[None, k])], [value("y")],
        [weights("W1", k, k), weights("W3", k, k), weights("Wg", k, k), weights("Wsmall", k, k // 2),
         weights("Wd", k, k), weights("Wout", k, k), numpy_helper.from_array(rng.normal(0, 0.1, k).astype(np.float32), "C"),
         numpy_helper.from_array(np.array(3, np.int64), "steps"), numpy_helper.from_array(np.array(True), "flag"),
         numpy_helper.from_array(np.array([0], np.int64), "axis0"),
         numpy_helper.from_array(np.array(0.9, np.float32), "decay")])
    return make_model(graph)


def _all_nodes(graph):
    """``(graph, node)`` for every node of ``graph`` and its subgraphs."""
    for n in graph.node:
        yield graph, n
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _all_nodes(a.g)


def test_int8_pass_follows_constant_weights_into_loop_and_if_bodies(tmp_path):
    from tfs2s.export.onnx.int8_pass import quantize_products

    model = _loop_model()
    x = np.random.default_rng(8).normal(0, 1, (5, 64)).astype(np.float32)
    expected = _run_x(model, x)
    int8 = quantize_products(model)
    saved = _check_portable(save_model(int8, str(tmp_path / "int8.onnx")))  # checked, IR 8, opset 17
    ops = [(g.name, n.op_type) for g, n in _all_nodes(saved.graph)]
    # w1 (carried through), the Transpose of a Constant, the outer W3 in the If branch, the Gemm: int8.
    assert sorted(g for g, op in ops if op == "MatMulInteger") == ["body", "body", "body", "then"]
    assert {o for _, o in ops} & {"DynamicQuantizeLinear", "Cast"} == {"DynamicQuantizeLinear", "Cast"}
    # Left float32: the small weight, the weight the body changes (wd), and the product outside the Loop.
    assert sorted(g for g, op in ops if op == "MatMul") == ["body", "body", "int8_pass_case"]
    assert not any(op == "Gemm" for _, op in ops)
    # The float weights nothing reads are gone, and so is the Loop-carried w1 (a Transpose of the Constant too).
    assert {t.name for t in saved.graph.initializer} == {"Wsmall", "Wd", "Wout", "steps", "flag", "axis0", "decay"}
    loop = next(n for n in saved.graph.node if n.op_type == "Loop")
    assert list(loop.input) == ["steps", "", "x", "Wd"] and list(loop.output) == ["h_final", "wd_final"]
    assert not any(op in ("Constant", "Transpose") for _, op in ops)
    got = _run_x(saved, x)
    assert np.abs(got - expected).max() <= 0.03 * np.abs(expected).max(), np.abs(got - expected).max()
    assert not np.array_equal(got, expected)  # int8's rounding is there: the products did change
    # Every graph's products, the small one too, where asked for.
    everything = quantize_products(model, min_elements=0, loops_only=False)
    assert sum(n.op_type == "MatMulInteger" for _, n in _all_nodes(everything.graph)) == 6  # all but wd's
    assert np.abs(_run_x(everything, x) - expected).max() <= 0.05 * np.abs(expected).max()
    assert quantize_products(model, min_elements=10 ** 6).graph.initializer  # nothing large enough: float kept
    assert not any(n.op_type == "MatMulInteger"
                   for _, n in _all_nodes(quantize_products(model, min_elements=10 ** 6).graph))


def _run_x(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["y"], {"x": x})[0]


@pytest.fixture(scope="module")
def int8_beam_export(tmp_path_factory, tiny_text_config):
    """``(export folder, written graphs, ids)``: a tiny word model (hidden 64: its decoder's products are over
    ``MIN_ELEMENTS``) with varied weights, exported by ``tasks.export(onnx=True, quantize="int8")`` with only the
    graphs this module checks converted (one tf2onnx conversion), and 96 test sources, "" among them, as ids.

    A 3-step model says "a a a ..."; weights varied by N(0, 0.3) give varied words with choices far enough apart
    for int8 (conftest.vary_weights' 0.8 makes this model's recurrence chaotic: int8's rounding, in the greedy graph
    as in the beam graph, then changes nearly every output somewhere). Outputs are kept short (length limit half
    the source's, plus 2): one changed choice changes a whole output.
    """
    import tensorflow as tf

    from tfs2s.data import corpora
    from tfs2s.export.onnx.convert import ONNX_GRAPHS, export_onnx
    from tfs2s.tasks import export, load, train
    from tfs2s.tasks.text.task import TextTask

    run_dir = str(tmp_path_factory.mktemp("int8_beam") / "run")
    cfg = tiny_text_config("int8_beam", **{"data.limit": 200, "training.steps_per_epoch": 3, "model.hidden": 64,
                                          "model.embedding_dim": 32, "model.attention_units": 32,
                                          "decoding.beam_width": 3, "decoding.max_length_ratio": 0.5,
                                          "decoding.max_length_offset": 2})
    train(cfg, run_dir, verbose=0)
    translator = load(run_dir)
    rng = np.random.default_rng(0)
    translator.models.training.set_weights([w + rng.normal(0, 0.3, w.shape).astype(np.float32)
                                            for w in translator.models.training.get_weights()])
    graphs = {k: ONNX_GRAPHS[k] for k in ("encode", "translate_ids_greedy", "translate_ids")}
    written = {}

    def write_onnx(self, saved_model_dir, output_dir, predictor, quantize=None):
        written.update(export_onnx(saved_model_dir, output_dir, "word", graphs, models=predictor.models,
                                   decoding=predictor.config.decoding, quantize=quantize))
        return written

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TextTask, "write_onnx", write_onnx)
        path = export(translator, str(tmp_path_factory.mktemp("int8_exports")), "int8", onnx=True, quantize="int8")
    sources = [s for s, _ in corpora.load_split(cfg.data, "test")[:95]] + [""]
    # The paths as written were in the export's temporary folder, renamed to its version folder when done.
    written = {k: os.path.join(path, "onnx", os.path.basename(v)) for k, v in written.items()}
    return path, written, translator.encode(tf.constant(sources)).numpy()


# On the tiny export, measured: 73 of 96 outputs identical to the fp32 beam graph's (the int8 greedy graph of the
# same model, once: 78 % of its greedy outputs), score differences of identical outputs <= 0.021 per token.
MIN_BEAM_AGREEMENT = 0.6
BEAM_SCORE_TOLERANCE_PER_TOKEN = 0.06


@pytest.mark.slow  # about 90 s of CPU: a tiny training, its SavedModel, one tf2onnx conversion, Node
def test_int8_beam_graph_agrees_with_the_float_beam_graph(int8_beam_export):
    from tfs2s.core.errors import InputError
    from tfs2s.export.onnx.convert import INT8_BEAM, INT8_BEAM_FILE, INT8_FILES
    from tfs2s.export.onnx.runtime import OnnxTranslator

    path, written, ids = int8_beam_export
    with open(os.path.join(path, "assets.extra", "tfs2s_export.json"), encoding="utf-8") as f:
        assert set(INT8_FILES) <= set(json.load(f)["onnx_graphs"])  # the metadata lists the int8 graphs
    assert written[INT8_BEAM] == os.path.join(path, "onnx", INT8_BEAM_FILE)
    model = _check_portable(written[INT8_BEAM])
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx.ml"}  # no com.microsoft contrib ops
    loop = next(n for n in model.graph.node if n.op_type == "Loop")
    body_ops = [n.op_type for _, n in _all_nodes(next(a.g for a in loop.attribute if a.name == "body"))]
    # The recurrent products, the attention's query, the attentional hidden layer and the output layer.
    assert body_ops.count("MatMulInteger") >= 4, body_ops.count("MatMulInteger")
    # The float weights now read as int8 are gone from the file (the encoder's and the embeddings' stay).
    assert os.path.getsize(written[INT8_BEAM]) < 0.9 * os.path.getsize(written["translate_ids"])

    onnx_translator = OnnxTranslator(path)
    fp32, int8 = (onnx_translator.translate_ids(ids, strategy) for strategy in ("beam", "beam_int8"))
    assert sorted(int8) == sorted(fp32) and int8["tokens"].shape[:2] == fp32["tokens"].shape[:2]
    same = same_rows(int8["tokens"], fp32["tokens"])
    per_token = np.abs(int8["scores"] - fp32["scores"])[same] / (fp32["length"][same] + 1)
    print(f"int8 beam: {same.sum()} of {len(same)} outputs identical to the fp32 beam graph's, score differences "
          f"<= {per_token.max():.4f} per token")
    assert same.mean() >= MIN_BEAM_AGREEMENT, same.mean()
    tokens = fp32["length"][same] + 1
    assert (np.abs(int8["scores"][same] - fp32["scores"][same]) <= BEAM_SCORE_TOLERANCE_PER_TOKEN * tokens).all()
    np.testing.assert_array_equal(int8["length"][same], fp32["length"][same])
    assert fp32["length"][:-1].max() > 2  # varied outputs, not all empty
    # The empty source ("" -> </s> only) and an empty batch are answered as by the float graph.
    np.testing.assert_array_equal(int8["length"][-1], fp32["length"][-1])
    assert onnx_translator.translate_ids(ids[:0], "beam_int8")["tokens"].shape == (0, 1, 0)
    with pytest.raises(InputError, match="beam_int8"):
        onnx_translator.translate_ids(ids, "beam_int4")
    # onnxruntime-node loads it (and every graph of the folder) and decodes Python's tokens.
    expected = {INT8_BEAM_FILE: {k: v for k, v in int8.items()}}
    _node_agrees(os.path.join(path, "onnx"), ids, expected)


def same_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per input, whether ``[B, N, L]`` token arrays of possibly different widths hold the same ids."""
    width = max(a.shape[2], b.shape[2])
    a, b = (np.pad(x, [(0, 0), (0, 0), (0, width - x.shape[2])]) for x in (a, b))
    return (a == b).all(axis=(1, 2))
