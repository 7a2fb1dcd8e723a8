"""Packaging: the deployment install of the ONNX runtime (numpy + onnxruntime, no TensorFlow) runs an export.

A virtual environment gets only ``numpy`` and ``onnxruntime`` (versions from ``constraints.txt``) and tfs2s itself with
``--no-deps``, as the README's deployment install does; it must import ``tfs2s.onnx_runtime`` and decode an
export's ONNX greedy graph to the same ids as the Keras model, with TensorFlow not even installed.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tfs2s.export.onnx.convert import ONNX_GRAPHS, export_onnx
from tfs2s.tasks import export, load, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SENTENCES = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau."]


def _pip(venv: str, *args: str) -> None:
    proc = subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q", *args],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory):
    venv = str(tmp_path_factory.mktemp("deploy") / "venv")
    # The interpreter this suite's venv was made from: a venv of a venv would see the outer one's packages.
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", venv], check=True, timeout=300)
    _pip(venv, "-c", os.path.join(ROOT, "constraints.txt"), "numpy", "onnxruntime")
    _pip(venv, "--no-deps", ROOT)
    return venv


@pytest.fixture(scope="module")
def greedy_export(tmp_path_factory, tiny_text_config):
    run_dir = str(tmp_path_factory.mktemp("run") / "run")
    cfg = tiny_text_config("tiny", **{"data.limit": 200, "training.steps_per_epoch": 3})
    train(cfg, run_dir, verbose=0)
    translator = load(run_dir)
    path = export(translator, str(tmp_path_factory.mktemp("saved_models")), "tiny", onnx=False)
    # The greedy graph tfs2s writes itself (no tf2onnx conversion): enough to run the runtime's ids path.
    export_onnx(path, os.path.join(path, "onnx"), graphs={"translate_ids_greedy": ONNX_GRAPHS["translate_ids_greedy"]},
                models=translator.models, decoding=translator.config.decoding)
    ids = np.asarray(translator.encode(np.array(SENTENCES, dtype=object))).astype(np.int32)  # padded [B, S]
    expected = translator.decode_ids(ids, translator.options("greedy"), alignment=False)["tokens"].numpy()
    return path, ids, expected


def test_runtime_installs_and_runs_without_tensorflow(runtime_venv, greedy_export, tmp_path):
    path, ids, expected = greedy_export
    np.save(tmp_path / "ids.npy", ids)
    script = textwrap.dedent(f"""
        import importlib.util, json, sys
        import numpy as np
        from tfs2s.onnx_runtime import OnnxTranslator
        import tfs2s
        translator = OnnxTranslator({path!r})
        result = translator.translate_ids(np.load({str(tmp_path / "ids.npy")!r}), "greedy")
        try:
            translator.translate(["Ein Mann."])  # the text graph needs onnxruntime-extensions, not installed here
            text_error = None
        except Exception as err:
            text_error = type(err).__name__ + ": " + str(err)
        print(json.dumps({{"tokens": result["tokens"].tolist(), "tfs2s": tfs2s.__file__, "text_error": text_error,
                          "tensorflow": importlib.util.find_spec("tensorflow") is not None,
                          "keras": importlib.util.find_spec("keras") is not None}}))
    """)
    proc = subprocess.run([os.path.join(runtime_venv, "bin", "python"), "-c", script], capture_output=True,
                          text=True, timeout=300, cwd=str(tmp_path),  # not the checkout: the installed package
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["tensorflow"] is False and got["keras"] is False
    assert got["tfs2s"].startswith(runtime_venv)
    assert got["text_error"].startswith("ExportError") and "pip install onnxruntime-extensions" in got["text_error"]
    tokens = np.array(got["tokens"])
    np.testing.assert_array_equal(tokens[:, 0], expected[:, 0, : tokens.shape[2]])
    assert not expected[:, 0, tokens.shape[2]:].any()


def test_shipped_configs_are_package_data(runtime_venv, tmp_path):
    script = ("import os, tfs2s; d = os.path.join(os.path.dirname(tfs2s.__file__), 'configs'); "
              "print(sorted(f for f in os.listdir(d) if f.endswith('.yaml')))")
    proc = subprocess.run([os.path.join(runtime_venv, "bin", "python"), "-c", script], capture_output=True,
                          text=True, timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    shipped = sorted(f for f in os.listdir(os.path.join(ROOT, "tfs2s", "configs")) if f.endswith(".yaml"))
    assert "multi30k_small.yaml" in shipped
    assert proc.stdout.strip() == str(shipped)
