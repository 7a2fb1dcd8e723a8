"""Forecasting from the user's own CSV (``data.corpus: files``): reading, time column, splits, errors, and a run
through the command line (train, evaluate, export, forecast from the export)."""

import csv
import json
import os
import time

import numpy as np
import pytest
import tensorflow as tf
import yaml

from tfs2s import tasks
from tfs2s.cli import main
from tfs2s.core.config import ConfigError, load_config
from tfs2s.data import timeseries
from tfs2s.data.corpora import default_data_dir
from tfs2s.data.timeseries import SeriesError, read_csv_series, split_borders
from tfs2s.tasks.series import task as forecasting


def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def _hourly(n, start="2021-03-01T00:00:00"):
    return [str(t).replace("T", " ") for t in np.datetime64(start, "s") + np.arange(n) * np.timedelta64(3600, "s")]


def _series_rows(n, seed=0):
    """Two noisy daily cycles; rows ``[time, load, temp, site]`` (``site`` is text)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    load = 10 + 3 * np.sin(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(n)
    temp = 20 + np.cos(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(n)
    return [[stamp, f"{a:.4f}", f"{b:.4f}", "north"] for stamp, a, b in zip(_hourly(n), load, temp)]


def test_time_column_detection_and_columns(tmp_path):
    rows = _series_rows(5)
    # The time column named "timestamp" need not be first; data.columns skips the text column.
    path = _write(tmp_path / "a.csv", ["load", "timestamp", "temp", "site"],
                  [[r[1], r[0], r[2], r[3]] for r in rows])
    s = read_csv_series(path, ["load", "temp"])
    assert s.columns == ("load", "temp") and s.time_column == "timestamp" and s.values.shape == (5, 2)
    np.testing.assert_allclose(s.values[:, 0], [float(r[1]) for r in rows], rtol=1e-6)
    assert s.times[1] - s.times[0] == np.timedelta64(3600, "s") and s.timestamps[0] == rows[0][0]
    # An unnamed first column of dates is the time column (ISO 8601, "/" between the date's fields too).
    path = _write(tmp_path / "b.csv", ["when", "x"], [["2021/03/01 00:00", "1"], ["2021/03/01 01:00", "2"]])
    s = read_csv_series(path)
    assert s.time_column == "when" and s.columns == ("x",) and s.times[1] > s.times[0]
    # No time column: every column is a value column, rows in file order.
    path = _write(tmp_path / "c.csv", ["x", "y"], [["1", "2"], ["3", "4"]])
    s = read_csv_series(path)
    assert s.times is None and s.columns == ("x", "y") and s.values.tolist() == [[1, 2], [3, 4]]
    # Zones are read as UTC.
    assert timeseries.parse_timestamp("2021-03-01T02:00+02:00") == np.datetime64("2021-03-01T00:00:00")
    assert timeseries.parse_timestamp("12.5") is None and timeseries.parse_timestamp("20210301") is None


@pytest.mark.parametrize("header, rows, columns, message", [
    (["date", "a", "site"], [["2021-03-01", "1", "x"]], (), r"b\.csv line 2, column site: 'x' is not a number"),
    (["date", "a"], [["2021-03-01", "1"], ["2021-03-02", ""]], (), r"b\.csv line 3, column a: is missing"),
    (["date", "a"], [["2021-03-01", "1"]], ("a", "oil"), r"b\.csv line 1: no column oil \(columns: a\)"),
    (["date", "a"], [["2021-03-01", "1"], ["yesterday", "2"]], (), r"b\.csv line 3, column date: 'yesterday' is not a"),
    (["date", "a"], [["2021-03-02", "1"], ["2021-03-01", "2"]], (), r"b\.csv line 3, column date: .*increasing time"),
    (["date", "a"], [], (), r"b\.csv: no data rows"),
])
def test_bad_series_csv_names_file_line_and_column(tmp_path, header, rows, columns, message):
    with pytest.raises(SeriesError, match=message):
        read_csv_series(_write(tmp_path / "b.csv", header, rows), columns)


def test_split_by_fractions_and_by_timestamps(tmp_path):
    path = _write(tmp_path / "s.csv", ["date", "load", "temp", "site"], _series_rows(200))
    s = read_csv_series(path, ["load", "temp"])
    borders = split_borders(s, lookback=10, horizon=5, validation_fraction=0.1, test_fraction=0.2)
    assert borders == {"train": (0, 140), "validation": (140, 160), "test": (160, 200)}
    rows = timeseries.split_rows(s.values, borders, "validation", 10)
    np.testing.assert_array_equal(rows, s.values[130:160])  # its first windows look back into training
    stamps = _hourly(200)
    by_time = split_borders(s, lookback=10, horizon=5, validation_start=stamps[150], test_start=stamps[180])
    assert by_time == {"train": (0, 150), "validation": (150, 180), "test": (180, 200)}
    # A start between two rows begins at the next row; one border by time, the other by fraction.
    mixed = split_borders(s, lookback=10, horizon=5, validation_fraction=0.25, test_start="2021-03-08 07:30")
    assert mixed["test"] == (176, 200) and mixed["validation"] == (126, 176)
    assert split_borders(s, lookback=10, horizon=5, validation_fraction=0.1)["test"] == (200, 200)


@pytest.mark.parametrize("kwargs, message", [
    (dict(validation_fraction=0.1, test_fraction=0.02), r"s\.csv: the test split has 4 rows \(lines 198-201, date "
                                                       r"2021-03-09 04:00:00 to 2021-03-09 07:00:00\), .*at least 5"),
    (dict(validation_fraction=0.9), r"the train split has 20 rows \(lines 2-21.*at least 25: lookback \+ horizon"),
    (dict(validation_start="soon"), r"data\.validation_start='soon' is not a date"),
    (dict(test_start="2030-01-01"), r"no row at or after data\.test_start='2030-01-01' \(the last date is"),
    (dict(validation_start="2021-03-08", test_start="2021-03-07"), "validation_start must come before"),
])
def test_bad_splits_name_file_and_lines(tmp_path, kwargs, message):
    s = read_csv_series(_write(tmp_path / "s.csv", ["date", "load", "temp", "site"], _series_rows(200)),
                        ["load", "temp"])
    with pytest.raises(SeriesError, match=message):
        split_borders(s, lookback=20, horizon=5, **kwargs)


def test_start_without_time_column_is_an_error(tmp_path):
    s = read_csv_series(_write(tmp_path / "n.csv", ["x"], [[str(i)] for i in range(50)]))
    with pytest.raises(SeriesError, match=r"n\.csv: data\.test_start needs a time column"):
        split_borders(s, lookback=5, horizon=2, test_start="2021-03-01")


def _files_config(path, **data):
    return load_config(None, {"data.corpus": "files", "data.train": [path], "model.input_encoder": "vectors",
                              "model.output_head": "regression", "data.lookback": 12, "data.horizon": 4,
                              **{f"data.{k}": v for k, v in data.items()}})


def test_files_config_checks(tmp_path):
    path = _write(tmp_path / "s.csv", ["date", "load", "temp", "site"], _series_rows(100))
    task = forecasting.SeriesTask()
    with pytest.raises(ConfigError, match="data.validation files are not read for time series"):
        task.check_config(_files_config(path, validation=[path]))
    with pytest.raises(ConfigError, match="data.train of a time series is one CSV file"):
        task.check_config(_files_config(path, train=[path, path]))
    with pytest.raises(ConfigError, match="not a time-series corpus"):
        task.check_config(_files_config(path, corpus="multi30k"))
    with pytest.raises(ConfigError, match="validation_start / data.test_start apply to data.corpus=files"):
        task.check_config(_files_config(path, corpus="etth1", test_start="2017-01-01"))
    cfg = _files_config(path, columns="load,temp", validation_fraction=0.2, test_fraction=0.2)
    task.check_config(cfg)
    series = forecasting.load_series(cfg)
    splits = forecasting.series_splits(cfg, series)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [60, 20 + 12, 20 + 12]
    with pytest.raises(SeriesError, match=r"s\.csv line 2, column site: 'north' is not a number"):
        forecasting.load_series(_files_config(path))  # every column, the text one included


def test_etth1_splits_are_unchanged():
    """The registered ETTh1 corpus gives Informer's split of the file's values, read here independently."""
    data = default_data_dir()
    path = os.path.join(data, "ett", "ETTh1.csv") if data else ""
    if not os.path.exists(path):
        pytest.skip("../shared/data/ett/ETTh1.csv not found")
    cfg = load_config(None, {"data.corpus": "etth1", "data.data_dir": data, "data.lookback": 96})
    series = forecasting.load_series(cfg)
    expected = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(1, 8), dtype=np.float32)
    np.testing.assert_array_equal(series.values, expected)
    splits = forecasting.series_splits(cfg, series)
    for name, (start, end) in {"train": (0, 8640), "validation": (8640 - 96, 11520),
                               "test": (11520 - 96, 14400)}.items():
        np.testing.assert_array_equal(splits[name], expected[start:end])
    assert forecasting.split_baselines(cfg, splits, "test") == timeseries.baseline_scores(series, 96, 96, "test")
    uni = forecasting.load_series(cfg.replace(**{"data.columns": "OT"}))
    np.testing.assert_array_equal(uni.values[:, 0], expected[:, 6])


def _cli(capsys, *argv):
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    out = capsys.readouterr()
    assert done.value.code == 0, out.err[-3000:]
    return out.out


@pytest.mark.parametrize("onnx", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_forecast_from_own_csv_through_the_cli(tmp_path, monkeypatch, capsys, onnx):
    """train from a config naming only a CSV, evaluate, export and forecast from the export (the SavedModel;
    with ``--onnx`` also ``OnnxForecaster``, behind -m slow: the conversion doubles the export's time, 36 s
    against 18 s here); ``$TFS2S_DATA_DIR`` is an empty folder, so nothing reads the shared corpora."""
    monkeypatch.setenv("TFS2S_DATA_DIR", str(tmp_path / "empty"))
    os.makedirs(tmp_path / "empty")
    project = tmp_path / "project"
    project.mkdir()
    rows = _series_rows(240, seed=3)
    _write(project / "series.csv", ["date", "load", "temp", "site"], rows)
    config = {"name": "my_series",
              "data": {"corpus": "files", "train": "series.csv", "columns": "load,temp", "lookback": 24,
                       "horizon": 6, "validation_fraction": 0.15, "test_fraction": 0.15, "batch_size": 32},
              "model": {"input_encoder": "vectors", "output_head": "regression", "hidden": 8, "embedding_dim": 4,
                        "attention_units": 4, "linear_skip": True},
              "training": {"epochs": 1, "scheduled_sampling": 1.0}}
    (project / "config.yaml").write_text(yaml.safe_dump(config))
    run = str(tmp_path / "run")
    started = time.perf_counter()
    out = _cli(capsys, "train", "--config", str(project / "config.yaml"), "--run-dir", run)
    summary = json.loads(out[out.index("\n{") + 1:])  # after Keras' progress bar
    trained = time.perf_counter()
    assert summary["columns"] == ["load", "temp"] and summary["lookback"] == 24
    # 240 rows: 168 train, 36 validation, 36 test; validation/test windows look back 24 rows into the previous split.
    assert summary["validation"]["windows"] == summary["test"]["windows"] == 36 - 6 + 1
    stats = json.load(open(os.path.join(run, "standardizer.json")))
    train_values = np.array([[float(r[1]), float(r[2])] for r in rows[:168]])
    np.testing.assert_allclose(stats["mean"], train_values.mean(axis=0), rtol=1e-5)  # training rows only

    forecaster = tasks.load(run)
    report = json.loads(_cli(capsys, "evaluate", "--run-dir", run, "--split", "test"))
    assert report == json.loads(json.dumps(forecasting.evaluate_run(forecaster, "test")))
    assert report["model"] == summary["test"]["model"] and report["windows"] == 31
    assert report["persistence"] == summary["test"]["persistence"]

    _cli(capsys, "export", "--run-dir", run, "--export-dir", str(tmp_path / "exports"), *(["--onnx"] if onnx else []))
    exported = time.perf_counter()
    path = str(tmp_path / "exports" / "my_series" / "1")
    window = np.array([[float(r[1]), float(r[2])] for r in rows[-30:-6]], np.float32)[None]
    expected = forecaster.forecast(tf.constant(window)).numpy()
    served = tf.saved_model.load(path).signatures["serving_default"](encoder_values=tf.constant(window))["forecast"]
    np.testing.assert_allclose(served.numpy(), expected, rtol=1e-4, atol=1e-4)
    assert served.shape == (1, 6, 2)
    if onnx:
        from tfs2s.export.onnx.runtime import OnnxForecaster

        np.testing.assert_allclose(OnnxForecaster(path).forecast(window), expected, rtol=1e-4, atol=1e-3)
    print(f"train {trained - started:.1f} s, export (onnx={onnx}) {exported - trained:.1f} s")
