"""Time series for seq2seq forecasting: CSV reading with clear errors, the ETT split, scaling, windows, baselines.

The encoder reads the past ``lookback`` steps of every variable and the decoder emits the next ``horizon``
steps; this module provides the data side and the baselines a forecaster must beat (persistence, seasonal naive,
a least-squares linear model over the window, DLinear-like), all on z-normalised values.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from typing import Sequence

import numpy as np
import tensorflow as tf

from tfs2s.core.errors import DataError, SeriesError  # noqa: F401  (raised here; importable from here)

# Informer's split of ETTh1/ETTh2 (hourly): 12 months train, 4 validation, 4 test (30-day months).
ETT_HOURLY_BORDERS = {"train": (0, 12 * 30 * 24), "validation": (12 * 30 * 24, 16 * 30 * 24),
                      "test": (16 * 30 * 24, 20 * 30 * 24)}


@dataclasses.dataclass(frozen=True)
class Series:
    """A multivariate series read from a CSV file.

    Attributes:
        timestamps: The first column, as text.
        values: ``[rows, variables]`` float32 values.
        columns: Variable names (the header without the time column).
    """

    timestamps: tuple[str, ...]
    values: np.ndarray
    columns: tuple[str, ...]

    def select(self, columns: Sequence[str]) -> "Series":
        """The same series restricted to ``columns`` (e.g. ``["OT"]`` for the univariate setting)."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise SeriesError(f"no column {missing} in the series (columns: {', '.join(self.columns)})")
        index = [self.columns.index(c) for c in columns]
        return Series(self.timestamps, self.values[:, index], tuple(columns))


def read_csv_series(path: str) -> Series:
    """Reads a CSV whose first column is a timestamp and whose other columns are numbers.

    Raises:
        DataError: No such file.
        SeriesError: Empty file, a row of the wrong width, or a missing or non-numeric value; the message gives
            the file, the line number and the column name.
    """
    if not os.path.exists(path):
        raise DataError(f"time-series file not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if not header or len(header) < 2:
            raise SeriesError(f"{path}: expected a header 'time,<variable>,...' on line 1")
        columns = tuple(h.strip() for h in header[1:])
        timestamps, values = [], []
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise SeriesError(f"{path} line {line}: {len(row)} fields, the header has {len(header)}")
            numbers = []
            for name, text in zip(columns, row[1:]):
                try:
                    number = float(text)
                except ValueError:
                    number = math.nan
                if not math.isfinite(number):
                    what = "is missing" if not text.strip() else f"{text!r} is not a number"
                    raise SeriesError(f"{path} line {line}, column {name}: {what}")
                numbers.append(number)
            timestamps.append(row[0])
            values.append(numbers)
    if not values:
        raise SeriesError(f"{path}: no data rows")
    return Series(tuple(timestamps), np.asarray(values, np.float32), columns)


@dataclasses.dataclass(frozen=True)
class Standardizer:
    """Per-variable z-normalisation with statistics of the training rows (stored with exports)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> "Standardizer":
        std = values.std(axis=0)
        return cls(values.mean(axis=0).astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32))

    def normalize(self, values):
        return (values - self.mean) / self.std

    def denormalize(self, values):
        return values * self.std + self.mean

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


def ett_split(values: np.ndarray, split: str, lookback: int) -> np.ndarray:
    """Rows of an hourly ETT split; validation and test start ``lookback`` rows early (their first windows read
    the end of the previous split as past, as in Informer/DLinear)."""
    if split not in ETT_HOURLY_BORDERS:
        raise SeriesError(f"unknown split {split!r}; choose one of {', '.join(ETT_HOURLY_BORDERS)}")
    start, end = ETT_HOURLY_BORDERS[split]
    if len(values) < end:
        raise SeriesError(f"the ETT {split} split needs {end} rows, the series has {len(values)}")
    return values[max(0, start - lookback if split != "train" else start):end]


def make_windows(values: np.ndarray, lookback: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """All ``(past [N, lookback, C], future [N, horizon, C])`` windows of ``values`` with stride 1.

    Raises:
        SeriesError: The series is shorter than ``lookback + horizon``.
    """
    if lookback < 1 or horizon < 1:
        raise SeriesError(f"lookback and horizon must be positive, got {lookback} and {horizon}")
    count = len(values) - lookback - horizon + 1
    if count < 1:
        raise SeriesError(f"a window needs {lookback + horizon} steps ({lookback} past + {horizon} future); the series "
                          f"has {len(values)}")
    index = np.arange(count)[:, None]
    past = values[index + np.arange(lookback)[None, :]]
    future = values[index + lookback + np.arange(horizon)[None, :]]
    return past, future


def window_dataset(values: np.ndarray, lookback: int, horizon: int, batch_size: int, *, shuffle: bool = False,
                   seed: int = 0) -> tf.data.Dataset:
    """``tf.data`` windows ``(past, future)`` built in-graph from a ``[rows, variables]`` array."""
    if len(values) < lookback + horizon:
        make_windows(values, lookback, horizon)  # raises the clear error
    series = tf.data.Dataset.from_tensor_slices(np.asarray(values, np.float32))
    windows = series.window(lookback + horizon, shift=1, drop_remainder=True).flat_map(
        lambda w: w.batch(lookback + horizon, drop_remainder=True))
    ds = windows.map(lambda w: (w[:lookback], w[lookback:]), num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:
        ds = ds.shuffle(10000, seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def persistence(past: np.ndarray, horizon: int) -> np.ndarray:
    """Repeats the last observed value."""
    return np.repeat(past[:, -1:, :], horizon, axis=1)


def seasonal_naive(past: np.ndarray, horizon: int, period: int = 24) -> np.ndarray:
    """Repeats the last observed ``period`` steps (the same hour of the last day for hourly data)."""
    if past.shape[1] < period:
        raise SeriesError(f"seasonal naive needs at least {period} past steps, got {past.shape[1]}")
    season = past[:, -period:, :]
    return np.concatenate([season] * math.ceil(horizon / period), axis=1)[:, :horizon, :]


class LinearWindowModel:
    """Least-squares linear map from the past window to the future, shared by all variables (DLinear-like,
    channel-independent, no decomposition), fitted in closed form with a small ridge term."""

    def __init__(self, ridge: float = 1e-3):
        self.ridge = ridge
        self.weights = None

    def fit(self, past: np.ndarray, future: np.ndarray) -> "LinearWindowModel":
        x = np.transpose(past, (0, 2, 1)).reshape(-1, past.shape[1]).astype(np.float64)  # [N*C, L]
        y = np.transpose(future, (0, 2, 1)).reshape(-1, future.shape[1]).astype(np.float64)  # [N*C, H]
        x = np.concatenate([x, np.ones((len(x), 1))], axis=1)
        gram = x.T @ x + self.ridge * len(x) * np.eye(x.shape[1])
        self.weights = np.linalg.solve(gram, x.T @ y)
        return self

    def predict(self, past: np.ndarray) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError("fit the model first")
        x = np.transpose(past, (0, 2, 1))
        out = x @ self.weights[:-1] + self.weights[-1]
        return np.transpose(out, (0, 2, 1)).astype(np.float32)


def forecast_metrics(prediction: np.ndarray, target: np.ndarray) -> dict:
    """MSE and MAE over every window, step and variable."""
    error = np.asarray(prediction, np.float64) - np.asarray(target, np.float64)
    return {"mse": round(float(np.mean(error ** 2)), 4), "mae": round(float(np.mean(np.abs(error))), 4)}


def baseline_scores(series: Series, lookback: int, horizon: int, split: str = "test") -> dict:
    """Persistence, seasonal naive (24 h) and the linear window model on an hourly ETT split, z-normalised with
    training statistics. Returns ``{name: {"mse", "mae"}}`` plus the window count."""
    train = ett_split(series.values, "train", lookback)
    scaler = Standardizer.fit(train)
    past, future = make_windows(scaler.normalize(ett_split(series.values, split, lookback)), lookback, horizon)
    linear = LinearWindowModel().fit(*make_windows(scaler.normalize(train), lookback, horizon))
    return {"windows": len(past),
            "persistence": forecast_metrics(persistence(past, horizon), future),
            "seasonal_naive_24h": forecast_metrics(seasonal_naive(past, horizon, 24), future),
            "linear_window": forecast_metrics(linear.predict(past), future)}
