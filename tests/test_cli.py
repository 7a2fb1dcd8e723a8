import os
import subprocess
import sys

import pytest

from tfs2s.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_unknown_config_key_is_a_one_line_error(run_cli, tmp_path):
    code, _, err = run_cli("train", "--run-dir", str(tmp_path), "--set", "model.hiden=3")
    assert code == 2 and "unknown config key 'hiden'" in err and "Traceback" not in err


def test_missing_data_dir_names_files(run_cli, tmp_path):
    code, _, err = run_cli("train", "--run-dir", str(tmp_path / "r"), "--data-dir", str(tmp_path / "nowhere"))
    assert code == 2 and "multi30k/train.de.gz" in err and "nowhere" in err


def test_translate_without_a_run_is_a_clear_error(run_cli, tmp_path):
    code, _, err = run_cli("translate", "--run-dir", str(tmp_path), "hallo")
    assert code == 2 and "not a tfs2s run folder" in err


def _pipeline_module(name: str):
    """``pipelines/<name>.py`` as a module (its sample sentences), without running it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{name}_pipeline", os.path.join(ROOT, "pipelines", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # 106 s on 2 quiet cores (the default suite's largest test); its parts run by default: training,
# resume (test_training.py), --extend (test_captioning.py), CLI evaluate/translate (test_own_data.py), export (test_export.py)
def test_pipeline_smoke_on_multi30k(data_dir, tmp_path, run_cli):
    """pipelines/translate.py end to end (train, evaluate, translate) on 300 Multi30k lines."""
    run_dir = tmp_path / "run"
    cmd = [sys.executable, os.path.join(ROOT, "pipelines", "translate.py"), "--run-dir", str(run_dir),
           "--data-dir", data_dir, "--eval-limit", "40", "--plot", str(tmp_path / "align.png"),
           "--export-dir", str(tmp_path / "saved_models"), "--no-onnx",
           "--set=data.limit=300", "--set=training.epochs=1", "--set=training.max_minutes=0",
           "--set=training.bleu_every_minutes=0", "--set=training.bleu_sentences=20", "--set=model.hidden=32",
           "--set=model.embedding_dim=16", "--set=model.attention_units=16", "--set=data.min_frequency=1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run_dir / "test_scores.json").exists() and (tmp_path / "align.png").exists()
    assert (tmp_path / "saved_models" / "multi30k_small" / "1" / "saved_model.pb").exists()
    # The pipeline ends by translating its samples with the export; the run folder translates them alike (beam
    # search with the run's decoding config), and empty input gives an empty line from both.
    translations = proc.stdout.splitlines()[-4:]
    samples = _pipeline_module("translate").SAMPLES["de"]
    for source in (["--run-dir", str(run_dir)], ["--model", str(tmp_path / "saved_models" / "multi30k_small" / "1")]):
        proc = subprocess.run([sys.executable, "-m", "tfs2s.cli", "translate", *source, *samples, "", "   "],
                              capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.split("\n") == translations + ["", "", ""], source

    # The finished run goes on only under its own configuration (read from the run without --config) ...
    code, _, err = run_cli("train", "--run-dir", str(run_dir), "--set", "model.hidden=64")
    assert code == 2 and "model.hidden: 32 -> 64" in err and "Traceback" not in err
    code, _, err = run_cli("train", "--run-dir", str(run_dir), "--extend")
    assert code == 2 and "nothing to extend" in err
    # ... and trains one more epoch with --extend.
    code, out, err = run_cli("train", "--run-dir", str(run_dir), "--extend", "--set", "training.epochs=2")
    assert code == 0, err[-2000:]
    assert '"epochs_run": 2' in out and (run_dir / "summary.previous.json").exists()


@pytest.mark.slow  # 2 minutes; sampled-softmax training and ONNX export are each tested in the default suite
def test_pipeline_smoke_on_spa_eng_with_sampled_softmax(data_dir, tmp_path):
    """The same pipeline on Anki en->es with a sampled softmax; its export answers alike in TF and onnxruntime."""
    run_dir, exports = tmp_path / "run", tmp_path / "saved_models"
    cmd = [sys.executable, os.path.join(ROOT, "pipelines", "translate.py"), "--run-dir", str(run_dir),
           "--config", os.path.join(ROOT, "pipelines", "configs", "spa_eng.yaml"), "--data-dir", data_dir,
           "--eval-limit", "30", "--export-dir", str(exports), "--set=data.limit=400", "--set=training.epochs=1",
           "--set=training.bleu_sentences=20", "--set=model.hidden=32", "--set=model.embedding_dim=16",
           "--set=model.attention_units=16", "--set=training.sampled_softmax_samples=50"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    translations = proc.stdout.strip().splitlines()[-4:]
    export = exports / "spa_eng" / "1"
    assert (export / "onnx").is_dir() and len(translations) == 4
    import json

    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    epochs = [r for r in history if r["event"] == "epoch"]
    assert epochs and "val_perplexity" in epochs[0] and "perplexity" not in epochs[0]  # trained sampled
    script = ("import json, sys\nfrom tfs2s.onnx_runtime import OnnxTranslator\n"
              f"print(json.dumps(OnnxTranslator({str(export)!r}).translate(sys.argv[1:])))")
    onnx = subprocess.run([sys.executable, "-c", script, *_pipeline_module("translate").SAMPLES["en"]],
                          capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert onnx.returncode == 0, onnx.stderr[-2000:]
    assert json.loads(onnx.stdout.strip().splitlines()[-1]) == translations


def _shared(*parts):
    from tfs2s.data.corpora import default_data_dir

    data = default_data_dir()
    if data is None or not os.path.exists(os.path.join(data, *parts)):
        pytest.skip(f"../shared/data/{'/'.join(parts)} not found")
    return data


@pytest.mark.slow  # about 35 s; the captioning tests and the image evaluate command run by default
def test_caption_pipeline_smoke(tmp_path):
    """pipelines/caption.py end to end on 40 captcha images: train, score, plot, export, serve image bytes."""
    data = _shared("captcha-images-v2")
    run_dir, exports = tmp_path / "run", tmp_path / "saved_models"
    cmd = [sys.executable, os.path.join(ROOT, "pipelines", "caption.py"), "--run-dir", str(run_dir),
           "--data-dir", data, "--export-dir", str(exports), "--no-onnx", "--set=data.limit=40",
           "--set=training.epochs=1", "--set=model.hidden=16", "--set=model.embedding_dim=8",
           "--set=model.attention_units=8", "--set=model.conv_filters=4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "decoding | exact % | CER %" in proc.stdout
    # The heatmap is a real picture: one row per output character over the image, not a blank canvas.
    from matplotlib.image import imread

    heatmap = imread(run_dir / "attention.png")
    assert heatmap.ndim == 3 and min(heatmap.shape[:2]) > 100 and float(heatmap[..., :3].std()) > 0.05
    report = __import__("json").loads((run_dir / "export_check.json").read_text())
    assert report["export"] == str(exports / "captcha" / "1") and len(report["samples"]) == 4


@pytest.mark.slow  # about 40 s; tests/test_series_files.py runs train/evaluate/export through the CLI by default
def test_forecast_pipeline_smoke(tmp_path):
    """pipelines/forecast.py end to end on a short ETTh1 run: train, baselines, export, ONNX parity."""
    data = _shared("ett", "ETTh1.csv")
    run_dir, exports = tmp_path / "run", tmp_path / "saved_models"
    cmd = [sys.executable, os.path.join(ROOT, "pipelines", "forecast.py"), "--run-dir", str(run_dir),
           "--data-dir", data, "--export-dir", str(exports), "--set=data.horizon=24", "--set=data.columns=OT",
           "--set=training.epochs=1", "--set=training.steps_per_epoch=10", "--set=model.hidden=16",
           "--set=model.embedding_dim=8", "--set=model.attention_units=8", "--parity-windows=32"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test | linear_window |" in proc.stdout and "test | model |" in proc.stdout
    report = __import__("json").loads((run_dir / "export_check.json").read_text())
    assert report["onnx_vs_savedmodel_max_normalized_diff"] < 1e-4
    assert report["sample"]["column"] == "OT" and len(report["sample"]["predicted_next_24h"]) == 24


def test_text_commands_on_a_forecasting_run_are_a_clear_error(run_cli, tmp_path):
    import json

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(
        {"model": {"input_encoder": "vectors", "output_head": "regression"}}))
    code, _, err = run_cli("translate", "--run-dir", str(run_dir), "hello")
    assert code == 2 and "is a forecasting run" in err and "Traceback" not in err


def test_only_tfs2s_errors_are_one_line_messages(run_cli, monkeypatch):
    """A user's mistake (a Tfs2sError) is one line and exit status 2; any other exception is a bug and keeps its
    traceback (the CLI used to turn every ValueError into a 'user error')."""
    from tfs2s import commands
    from tfs2s.core.errors import InputError

    def mistake(args):
        raise InputError("no such option for greedy search")

    def bug(args):
        raise ValueError("an internal bug")

    monkeypatch.setitem(commands.COMMANDS, "translate", mistake)
    code, _, err = run_cli("translate", "--run-dir", "x", "hallo")
    assert code == 2 and err == "tfs2s: error: no such option for greedy search\n"
    monkeypatch.setitem(commands.COMMANDS, "translate", bug)
    with pytest.raises(ValueError, match="an internal bug"):
        main(["translate", "--run-dir", "x", "hallo"])
