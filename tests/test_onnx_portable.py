"""ONNX graphs of an export load in the onnxruntime releases users run, Python's and Node's alike.

Every graph carries the lowest IR version its opsets need (8 for opset 17; onnx's ``make_model`` would stamp its
own newest, which onnxruntime-node 1.30 refuses) and one opset import per domain (``onnx.compose.merge_models``
lists both halves' imports). Where ``node`` and ``clients/js/node_modules`` exist, ``clients/js``'s
``node --test`` runs the ids graphs in onnxruntime-node and must give Python onnxruntime's tokens.
"""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from tfs2s.core.config import DecodingConfig  # noqa: E402
from tfs2s.export.onnx.convert import ONNX_GRAPHS, export_onnx  # noqa: E402
from tfs2s.export.onnx.encoder import build_encoder, compose  # noqa: E402
from tfs2s.export.onnx.graph import ONNX_OPSET, portable, save_model  # noqa: E402
from tfs2s.export.onnx.greedy import build_greedy_decoder  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JS_CLIENT = os.path.join(ROOT, "clients", "js")
IDS_GRAPHS = ("translate_ids_greedy.onnx", "translate_ids_beam.onnx", "translate_ids_greedy.int8.onnx",
              "translate_ids_beam.int8.onnx")  # the int8 pair: export_onnx(quantize="int8")
IR_FOR_OPSET_17 = 8  # onnx.helper.VERSION_TABLE: ONNX 1.12 brought opset 17 with IR version 8


def _check_portable(path: str) -> "onnx.ModelProto":
    model = onnx.load(path)
    domains = [o.domain for o in model.opset_import]
    assert len(domains) == len(set(domains)), f"{path}: opset imports {model.opset_import}"
    versions = {o.domain: o.version for o in model.opset_import}
    assert versions[""] == ONNX_OPSET
    expected_ir = onnx.helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True)
    assert model.ir_version == expected_ir == IR_FOR_OPSET_17, path
    onnx.checker.check_model(model)
    return model


def _run(path: str, ids: np.ndarray) -> dict:
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"encoder_token_ids": ids})))


def _node_agrees(onnx_dir: str, ids: np.ndarray, expected: dict) -> None:
    """Writes the cases ``clients/js/test/portable.test.mjs`` reads and runs it (skips without Node)."""
    node = shutil.which("node")
    if node is None or not os.path.isdir(os.path.join(JS_CLIENT, "node_modules", "onnxruntime-node")):
        pytest.skip("Node check not run: needs `node` on PATH and `npm ci --ignore-scripts` in clients/js")
    cases = {"encoder_token_ids": ids.tolist(),
             "expected": {f: {k: v.tolist() for k, v in out.items()} for f, out in expected.items()}}
    with open(os.path.join(onnx_dir, "portable_cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f)
    proc = subprocess.run([node, "--test", "test/"], cwd=JS_CLIENT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TFS2S_EXPORT_DIR=onnx_dir))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout and "# skipped 0" in proc.stdout, proc.stdout[-2000:]


def test_portable_fixes_ir_version_and_duplicate_opsets(tmp_path):
    """A graph as onnx 1.23 writes it (newest IR) and as merge_models joins it (two default imports) is mended."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15), helper.make_opsetid("", ONNX_OPSET),
                                                    helper.make_opsetid("ai.onnx.ml", 2)])
    assert model.ir_version == onnx.IR_VERSION  # the newest, unless a caller sets it
    path = save_model(model, str(tmp_path / "relu.onnx"))
    saved = _check_portable(path)
    assert [(o.domain, o.version) for o in saved.opset_import] == [("", ONNX_OPSET), ("ai.onnx.ml", 2)]
    np.testing.assert_array_equal(
        ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": np.array([-1.0, 2.0],
                                                                                  np.float32)})[0], [0.0, 2.0])
    with pytest.raises(onnx.checker.ValidationError):  # still checked: a broken graph is not written
        portable(helper.make_model(helper.make_graph([helper.make_node("Relu", ["nothing"], ["y"])], "g", [x], [y])))


def test_written_graphs_are_portable_and_run_in_node(tmp_path):
    """The encoder and greedy decoding tfs2s writes (no tf2onnx: seconds) load in Python and Node alike."""
    from test_onnx_encoder import CASES, IDS, _models

    models = _models(scale=0.8, **CASES[0])
    encoder = build_encoder(models)
    save_model(encoder, str(tmp_path / "encoder.onnx"))
    save_model(compose(encoder, build_greedy_decoder(models, DecodingConfig(max_length_offset=3))),
               str(tmp_path / "translate_ids_greedy.onnx"))
    expected = {}
    for name in ("encoder.onnx", "translate_ids_greedy.onnx"):
        _check_portable(str(tmp_path / name))
        expected[name] = _run(str(tmp_path / name), IDS)
    assert expected["translate_ids_greedy.onnx"]["length"].max() > 0
    _node_agrees(str(tmp_path), IDS, {"translate_ids_greedy.onnx": expected["translate_ids_greedy.onnx"]})


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory, tiny_text_config):
    """A tiny text model exported with the graphs of every path: written, converted, and the two joined."""
    import tensorflow as tf

    from tfs2s.tasks import export, load, train

    path = str(tmp_path_factory.mktemp("portable") / "run")
    cfg = tiny_text_config("portable", **{"data.limit": 64})
    train(cfg, path, verbose=0)
    translator = load(path)
    exported = export(translator, str(tmp_path_factory.mktemp("saved_models")), onnx=False, max_beam_width=4)
    onnx_dir = os.path.join(exported, "onnx")
    # encoder, greedy: written by tfs2s; beam: converted decode_encoded joined to the written encoder;
    # decoder_step: converted as it is (teacher_forced and the text graph go the same way, text with extra ops);
    # int8: the greedy graph written with int8 products, the converted beam graph through int8_pass.
    graphs = {k: ONNX_GRAPHS[k] for k in ("encode", "translate_ids_greedy", "translate_ids", "decode_step")}
    written = export_onnx(exported, onnx_dir, graphs=graphs, models=translator.models,
                          decoding=translator.config.decoding, quantize="int8")
    ids = translator.encode(tf.constant(["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Kinder."]))
    return exported, written, ids.numpy()


@pytest.mark.slow  # about 70 s on 2 cores: a tiny training, its SavedModel, two tf2onnx conversions
def test_export_graphs_are_portable_and_agree_in_node(tiny_export):
    from tfs2s.export.onnx.runtime import OnnxTranslator

    exported, written, ids = tiny_export
    onnx_dir = os.path.dirname(next(iter(written.values())))
    assert sorted(os.listdir(onnx_dir)) == sorted(os.path.basename(p) for p in written.values())
    for path in written.values():
        _check_portable(path)
    expected = {name: _run(os.path.join(onnx_dir, name), ids) for name in IDS_GRAPHS}
    # encoder.onnx and decoder_step.onnx run too: the host loop over them decodes what the greedy graph decodes.
    host = OnnxTranslator(exported).greedy_host_loop(ids)
    greedy = expected["translate_ids_greedy.onnx"]["tokens"][:, 0]
    np.testing.assert_array_equal(host["tokens"], greedy[:, : host["tokens"].shape[1]])
    _node_agrees(onnx_dir, ids, expected)
