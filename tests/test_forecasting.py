"""Forecasting: decoder inputs, the regression decoding loop, the run, and the export (SavedModel + ONNX)."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfs2s import tasks
from tfs2s.core import decoding
from tfs2s.core import features as F
from tfs2s.core.config import ConfigError, load_config
from tfs2s.core.errors import ExportError
from tfs2s.data import timeseries
from tfs2s.data.corpora import default_data_dir
from tfs2s.export.savedmodel import verify_export
from tfs2s.tasks.series import predictor
from tfs2s.tasks.series import task as forecasting

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_decoder_inputs_are_previous_values():
    past = tf.reshape(tf.range(2 * 4 * 1, dtype=tf.float32), [2, 4, 1])
    future = 100 + tf.reshape(tf.range(2 * 3 * 1, dtype=tf.float32), [2, 3, 1])
    features, targets = forecasting.with_decoder_inputs(past, future)
    np.testing.assert_array_equal(features[F.DECODER_VALUES][:, :, 0], [[3, 100, 101], [7, 103, 104]])
    assert features[F.ENCODER_VALUES] is past and targets is future


def test_regress_feeds_predictions_back():
    # A step that adds 1 to its input and reports the time: predictions count up from the first values.
    def step(values, state):
        return values + 1.0, dict(state, time=state["time"] + 1)

    out = decoding.regress(step, {}, tf.constant([[0.0, 10.0]]), 4)
    np.testing.assert_array_equal(out.numpy()[0], [[1, 11], [2, 12], [3, 13], [4, 14]])
    empty = decoding.regress(step, {}, tf.zeros([0, 2]), 3)
    assert empty.shape == (0, 3, 2)


@pytest.mark.parametrize("subtract_last", [False, True])
def test_linear_skip_starts_as_the_least_squares_fit(subtract_last):
    """Before training, the forecaster (zero output layer) forecasts exactly what the closed-form linear model
    fitted on the same windows does."""
    rng = np.random.default_rng(0)
    values = np.cumsum(rng.standard_normal((300, 2)), axis=0).astype(np.float32) / 10
    cfg = load_config(None, {"data.lookback": 12, "data.horizon": 4, "model.input_encoder": "vectors",
                             "model.output_head": "regression", "model.linear_skip": True,
                             "model.subtract_last": subtract_last, "model.hidden": 8, "model.embedding_dim": 4,
                             "model.attention_units": 4})
    models = forecasting.build_forecaster_models(cfg, 2)
    forecasting.fit_linear_skip(models, values, cfg)
    past, future = timeseries.make_windows(values, 12, 4)
    shift = past[:, -1:] if subtract_last else 0.0
    expected = timeseries.LinearWindowModel().fit(past - shift, future - shift).predict(past - shift) + shift
    f = predictor.Forecaster(models, timeseries.Standardizer(np.zeros(2, np.float32), np.ones(2, np.float32)),
                               cfg, ["a", "b"])
    np.testing.assert_allclose(f.predict_normalized(past[:50]), expected[:50], atol=1e-4)


def test_forecasting_run_needs_forecasting_config(tmp_path):
    with pytest.raises(ConfigError, match="vectors"):
        forecasting.SeriesTask().check_config(load_config(None, {"data.corpus": "etth1"}))
    with pytest.raises(ConfigError, match="not supported"):
        load_config(None, {"model.input_encoder": "vectors"})  # vectors with a softmax head


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = default_data_dir()
    if data is None or not os.path.exists(os.path.join(data, "ett", "ETTh1.csv")):
        pytest.skip("../shared/data/ett/ETTh1.csv not found")
    path = str(tmp_path_factory.mktemp("forecast") / "run")
    cfg = load_config(os.path.join(ROOT, "pipelines", "configs", "etth1.yaml"), {
        "data.data_dir": data, "data.lookback": 48, "data.horizon": 24, "data.limit": 2000, "data.batch_size": 64,
        "model.hidden": 16, "model.embedding_dim": 8, "model.attention_units": 8, "training.epochs": 2,
        "training.scheduled_sampling": 0.2})
    return path, tasks.train(cfg, path, verbose=0), cfg


def test_run_summary_has_model_and_baselines(run):
    _, summary, cfg = run
    assert summary["columns"] == ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    series = forecasting.load_series(cfg)
    scaler = timeseries.Standardizer.fit(timeseries.ett_split(series.values, "train", 48))
    for split in ("validation", "test"):
        row = summary[split]
        assert row["model"]["windows"] == row["windows"] > 2000
        # The baselines are those of the same windows, recomputed here from the series by hand.
        past, future = timeseries.make_windows(scaler.normalize(timeseries.ett_split(series.values, split, 48)), 48, 24)
        assert row["windows"] == len(past)
        assert row["persistence"]["mse"] == pytest.approx(float(np.mean((past[:, -1:] - future) ** 2)), rel=1e-4)
        assert row["seasonal_naive_24h"]["mae"] == pytest.approx(float(np.mean(np.abs(past[:, -24:] - future))),
                                                                 rel=1e-4)
        # The model's own figures are those of its forecasts of those windows.
        forecast = tasks.load(run[0]).predict_normalized(past)
        assert row["model"]["mse"] == pytest.approx(float(np.mean((forecast - future) ** 2)), rel=1e-3)
    # The model starts as the least-squares linear forecaster, the best checkpoint until an epoch does better.
    history = [json.loads(line) for line in open(os.path.join(run[0], "history.jsonl"))]
    assert history[0]["epoch"] == 0 and history[0]["before_training"]
    best = min(r["val_loss"] for r in history if r["event"] == "epoch")
    assert summary["val_forecast_mse"] == pytest.approx(best, abs=1e-3)
    assert summary["test"]["model"]["mse"] < summary["test"]["persistence"]["mse"]


def test_forecaster_checks_windows(run):
    f = tasks.load(run[0])
    with pytest.raises(timeseries.SeriesError, match="shorter than the model's lookback of 48"):
        f.check_window(np.zeros((1, 10, 7)))
    with pytest.raises(timeseries.SeriesError, match="encoder_values.*columns HUFL"):
        f.check_window(np.zeros((1, 48, 3)))
    with pytest.raises(timeseries.SeriesError, match="missing"):
        f.check_window(np.full((1, 48, 7), np.nan))


def test_export_original_units_relocation_and_onnx(run, tmp_path):
    f = tasks.load(run[0])
    root = str(tmp_path / "exports")
    path = tasks.export(f, root, "etth1", onnx=True)
    with pytest.raises(ExportError, match="already exists"):
        tasks.export(f, root, "etth1", version=1)
    moved = str(tmp_path / "moved")
    shutil.move(path, moved)
    series = forecasting.load_series(run[2])
    past, future = timeseries.make_windows(timeseries.ett_split(series.values, "test", 48), 48, 24)
    past = past[:16]
    report = verify_export(moved, forecasting.SeriesTask().export_checks(f, past))
    assert report["serving_default"]["examples"] == 16 and report["serving_default"]["max_diff"] < 1e-4
    loaded = tf.saved_model.load(moved)
    served = loaded.signatures["serving_default"](encoder_values=tf.constant(past))["forecast"].numpy()
    normalized = loaded.signatures["forecast_normalized"](
        encoder_values=tf.constant(f.standardizer.normalize(past)))["forecast"].numpy()
    # Served forecasts come back in original units: the stored statistics undo the normalisation.
    np.testing.assert_allclose(served, f.standardizer.denormalize(normalized), rtol=1e-4, atol=1e-3)
    assert abs(served.mean() - past.mean()) < 3 * past.std()
    with pytest.raises(tf.errors.InvalidArgumentError, match="encoder_values holds missing"):
        loaded.signatures["serving_default"](encoder_values=tf.constant(np.full((1, 48, 7), np.nan, np.float32)))
    assert loaded.signatures["serving_default"](encoder_values=tf.zeros([0, 48, 7]))["forecast"].shape == (0, 24, 7)
    meta = json.load(open(os.path.join(moved, "assets.extra", "tfs2s_export.json")))
    np.testing.assert_allclose(meta["mean"], f.standardizer.mean)
    np.save(tmp_path / "past.npy", past)
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from tfs2s.export.onnx.runtime import OnnxForecaster
        o = OnnxForecaster({moved!r})
        np.save({str(tmp_path / "onnx.npy")!r}, o.forecast(np.load({str(tmp_path / "past.npy")!r})))
        out = {{"empty": list(o.forecast(np.zeros((0, 48, 7), np.float32)).shape)}}
        for bad in (np.zeros((1, 40, 7)), np.full((1, 48, 7), np.inf)):
            try:
                o.forecast(bad)
            except ValueError as err:
                out.setdefault("errors", []).append(str(err))
        out["tensorflow_imported"] = "tensorflow" in sys.modules
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["tensorflow_imported"] is False and got["empty"] == [0, 24, 7]
    assert len(got["errors"]) == 2 and "encoder_values" in got["errors"][0]
    np.testing.assert_allclose(np.load(tmp_path / "onnx.npy") / f.standardizer.std, served / f.standardizer.std,
                               atol=1e-4)


def test_export_loads_in_plain_tensorflow(run, tmp_path):
    """TF Serving has no tfs2s code: the export answers in a process that imports only TensorFlow."""
    f = tasks.load(run[0])
    path = tasks.export(f, str(tmp_path / "exports"), "etth1")
    past = np.random.default_rng(0).standard_normal((2, 48, 7)).astype(np.float32)
    expected = f.forecast(tf.constant(past)).numpy()
    np.save(tmp_path / "past.npy", past)
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        import tensorflow as tf
        m = tf.saved_model.load({path!r})
        out = m.signatures["serving_default"](encoder_values=tf.constant(np.load({str(tmp_path / "past.npy")!r})))
        print(json.dumps({{"forecast": out["forecast"].numpy().tolist(),
                           "bad": [n for n in ("tfs2s", "keras.src.models") if n in sys.modules]}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=str(tmp_path), env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "tfs2s" not in got["bad"]
    np.testing.assert_allclose(np.array(got["forecast"]), expected, rtol=1e-4, atol=1e-4)
