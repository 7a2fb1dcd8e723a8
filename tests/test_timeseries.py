import os

import numpy as np
import pytest

from tfs2s.data.timeseries import (LinearWindowModel, SeriesError, Standardizer, baseline_scores, ett_split,
                              forecast_metrics, make_windows, persistence, read_csv_series, seasonal_naive,
                              window_dataset)


def _write(tmp_path, text):
    path = tmp_path / "s.csv"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text, message", [
    ("date,a,b\n2016-01-01,1,2\n2016-01-02,3,\n", "line 3, column b: is missing"),
    ("date,a,b\n2016-01-01,1,x2\n", "line 2, column b: 'x2' is not a number"),
    ("date,a,b\n2016-01-01,1,nan\n", "line 2, column b: 'nan' is not a number"),
    ("date,a,b\n2016-01-01,1\n", "line 2: 2 fields, the header has 3"),
    ("date\n", "expected a header"),
    ("date,a\n", "no data rows"),
])
def test_bad_csv_names_file_line_and_column(tmp_path, text, message):
    with pytest.raises(SeriesError, match=message):
        read_csv_series(_write(tmp_path, text))


def test_windows_in_numpy_and_tf_data_agree_and_short_series_fail():
    values = np.arange(20, dtype=np.float32).reshape(10, 2)
    past, future = make_windows(values, 3, 2)
    assert past.shape == (6, 3, 2) and future.shape == (6, 2, 2)
    np.testing.assert_array_equal(past[1], values[1:4])
    np.testing.assert_array_equal(future[1], values[4:6])
    batches = list(window_dataset(values, 3, 2, batch_size=4))
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), past)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), future)
    with pytest.raises(SeriesError, match="a window needs 12 steps .* the series has 10"):
        window_dataset(values, 8, 4, batch_size=4)


def test_baselines_and_linear_model():
    past = np.arange(48, dtype=np.float32).reshape(1, 48, 1)
    np.testing.assert_array_equal(persistence(past, 3)[0, :, 0], [47, 47, 47])
    np.testing.assert_array_equal(seasonal_naive(past, 30, 24)[0, :, 0], list(range(24, 48)) + list(range(24, 30)))
    # A noiseless AR(1) series is linear in its past: the least-squares window model recovers it.
    series = (0.97 ** np.arange(400, dtype=np.float64))[:, None] * np.array([[1.0, -2.0]])
    train_past, train_future = make_windows(series, 8, 4)
    model = LinearWindowModel(ridge=0.0).fit(train_past, train_future)
    assert forecast_metrics(model.predict(train_past), train_future)["mse"] < 1e-8
    scaler = Standardizer.fit(series)
    np.testing.assert_allclose(scaler.denormalize(scaler.normalize(series)), series, atol=1e-6)


def test_ett_split_and_published_persistence_figure(data_dir):
    """Informer's 12/4/4-month split: persistence ("Repeat") on ETTh1, multivariate, horizon 96, reproduces the
    1.295 MSE / 0.713 MAE reported by Zeng et al. (DLinear, AAAI 2023), which checks split and scaling."""
    series = read_csv_series(os.path.join(data_dir, "ett", "ETTh1.csv"))
    assert series.columns[-1] == "OT" and series.values.shape == (17420, 7)
    assert len(ett_split(series.values, "train", 96)) == 8640
    assert len(ett_split(series.values, "test", 96)) == 2880 + 96
    scores = baseline_scores(series, 96, 96)
    assert scores["windows"] == 2785
    assert abs(scores["persistence"]["mse"] - 1.295) < 2e-3 and abs(scores["persistence"]["mae"] - 0.713) < 2e-3
    assert scores["linear_window"]["mse"] < scores["seasonal_naive_24h"]["mse"] < scores["persistence"]["mse"]
    with pytest.raises(SeriesError, match="no column"):
        series.select(["oil"])
