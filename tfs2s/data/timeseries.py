"""Time series for seq2seq forecasting: CSV reading with clear errors, the ETT split, scaling, windows, baselines.

The encoder reads the past ``lookback`` steps of every variable and the decoder emits the next ``horizon``
steps; this module provides the data side and the baselines a forecaster must beat (persistence, seasonal naive,
a least-squares linear model over the window, DLinear-like), all on z-normalised values.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import math
import os
from typing import Sequence

import numpy as np
import tensorflow as tf

from tfs2s.core.errors import DataError, SeriesError  # noqa: F401  (raised here; importable from here)

# Informer's split of ETTh1/ETTh2 (hourly): 12 months train, 4 validation, 4 test (30-day months).
ETT_HOURLY_BORDERS = {"train": (0, 12 * 30 * 24), "validation": (12 * 30 * 24, 16 * 30 * 24),
                      "test": (16 * 30 * 24, 20 * 30 * 24)}


TIME_COLUMN_NAMES = ("date", "time", "timestamp", "datetime")


@dataclasses.dataclass(frozen=True)
class Series:
    """A multivariate series read from a CSV file.

    Attributes:
        timestamps: The time column, as text (empty strings when the file has none).
        values: ``[rows, variables]`` float32 values.
        columns: Variable names (the header without the time column).
        times: The parsed timestamps (``datetime64[s]``), or ``None`` when the file has no time column.
        path: The file read (for messages).
        time_column: The time column's name ("" when none).
        lines: The file line of each row (line 1 is the header), for messages.
    """

    timestamps: tuple[str, ...]
    values: np.ndarray
    columns: tuple[str, ...]
    times: np.ndarray | None = None
    path: str = ""
    time_column: str = ""
    lines: tuple[int, ...] = ()

    def select(self, columns: Sequence[str]) -> "Series":
        """The same series restricted to ``columns`` (e.g. ``["OT"]`` for the univariate setting)."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise SeriesError(f"{self.path or 'the series'}: no column {missing} (columns: {', '.join(self.columns)})")
        index = [self.columns.index(c) for c in columns]
        return dataclasses.replace(self, values=self.values[:, index], columns=tuple(columns))

    def line(self, row: int) -> int:
        """The file line of data row ``row``."""
        return self.lines[row] if self.lines else row + 2


def parse_timestamp(text: str) -> np.datetime64 | None:
    """An ISO 8601 date or date-time (``2016-07-01``, ``2016-07-01 00:00:00``, ``2016-07-01T00:00+02:00``; ``/``
    also separates the date's fields), to the second and in UTC when it names a zone; ``None`` when it is not one.
    """
    text = text.strip()
    # fromisoformat also reads compact forms such as 20160701: a column of such numbers is values, not dates.
    if len(text) < 8 or not text[:4].isdigit() or text[4] not in "-/":
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("/", "-"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return np.datetime64(moment.replace(microsecond=0), "s")


def _time_column(path: str, header: list[str], first_row: list[str] | None) -> int | None:
    """The index of the time column: one named like ``TIME_COLUMN_NAMES``, else a first column of dates."""
    named = [i for i, h in enumerate(header) if h.strip().lower() in TIME_COLUMN_NAMES]
    if len(named) > 1:
        raise SeriesError(f"{path} line 1: several time columns ({', '.join(header[i] for i in named)})")
    if named:
        return named[0]
    if first_row and parse_timestamp(first_row[0]) is not None:
        return 0
    return None


def _number(path: str, line: int, name: str, text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        what = "is missing" if not text.strip() else f"{text!r} is not a number"
        raise SeriesError(f"{path} line {line}, column {name}: {what}")
    return number


def read_csv_series(path: str, columns: Sequence[str] = ()) -> Series:
    """Reads a CSV of a time column and numeric columns, one row per time step, in time order.

    The time column is the one named ``date``, ``time``, ``timestamp`` or ``datetime`` (any case), else the
    first column when its first value is an ISO 8601 date (``parse_timestamp``); a file without one is read as
    steps in file order. Every timestamp must parse and the times must increase.

    Args:
        path: The CSV file (header line first).
        columns: The value columns to read (others, numeric or not, are ignored); empty = every column but the
            time column, all of which must then be numeric.

    Raises:
        DataError: No such file.
        SeriesError: Empty file, a row of the wrong width, a missing or non-numeric value, a named column that
            is not in the header, an unparseable or non-increasing timestamp; the message gives the file, the
            line number and the column name.
    """
    if not os.path.exists(path):
        raise DataError(f"time-series file not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [(line, row) for line, row in enumerate(csv.reader(f), start=1) if row and any(c.strip() for c in row)]
    header = [h.strip() for h in rows[0][1]] if rows else []
    data = rows[1:]
    time_index = _time_column(path, header, data[0][1] if data else None)
    value_names = [h for i, h in enumerate(header) if i != time_index]
    if not value_names:
        raise SeriesError(f"{path}: expected a header 'time,<variable>,...' on line 1")
    wanted = list(columns) or value_names
    missing = [c for c in wanted if c not in value_names]
    if missing:
        raise SeriesError(f"{path} line 1: no column {', '.join(missing)} (columns: {', '.join(value_names)})")
    index = [header.index(c) for c in wanted]
    timestamps, values, times = [], [], []
    lines = tuple(line for line, _ in data)
    for line, row in data:
        if len(row) != len(header):
            raise SeriesError(f"{path} line {line}: {len(row)} fields, the header has {len(header)}")
        values.append([_number(path, line, header[i], row[i]) for i in index])
        if time_index is None:
            timestamps.append("")
            continue
        text = row[time_index]
        moment = parse_timestamp(text)
        if moment is None:
            raise SeriesError(f"{path} line {line}, column {header[time_index]}: {text!r} is not a date or time "
                              "(ISO 8601, e.g. 2016-07-01 00:00:00)")
        if times and moment <= times[-1]:
            raise SeriesError(f"{path} line {line}, column {header[time_index]}: {text!r} does not follow the "
                              "previous row's time (rows must be in increasing time order)")
        timestamps.append(text)
        times.append(moment)
    if not values:
        raise SeriesError(f"{path}: no data rows")
    return Series(tuple(timestamps), np.asarray(values, np.float32), tuple(wanted),
                  np.asarray(times, "datetime64[s]") if time_index is not None else None, path,
                  header[time_index] if time_index is not None else "", lines)


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


def split_borders(series: Series, *, lookback: int, horizon: int, validation_fraction: float = 0.0,
                  test_fraction: float = 0.0, validation_start: str = "",
                  test_start: str = "") -> dict[str, tuple[int, int]]:
    """``{"train", "validation", "test"}`` -> ``(first row, end row)`` of a series split in time order.

    Each border is a timestamp (``validation_start`` / ``test_start``: the split holds the rows from that time
    on) or, when that is empty, a share of the rows counted from the end (test the last ``test_fraction``,
    validation the ``validation_fraction`` before it). ``test`` is ``(rows, rows)`` (empty) when it has neither.
    Windows are cut as ``ett_split`` cuts them: training needs ``lookback + horizon`` rows, validation and test
    ``horizon`` rows each (their first windows read their past from the end of the previous split).

    Raises:
        SeriesError: A border timestamp that does not parse or that the series never reaches, borders out of
            order, or a split too short for one window (names the file, the split's lines and the time column).
    """
    rows = len(series.values)
    borders = {}
    for name, start, fraction in (("test", test_start, test_fraction),
                                  ("validation", validation_start, validation_fraction)):
        if start:
            moment = parse_timestamp(start)
            if moment is None:
                raise SeriesError(f"data.{name}_start={start!r} is not a date or time (ISO 8601)")
            if series.times is None:
                raise SeriesError(f"{series.path}: data.{name}_start needs a time column (date, time, timestamp "
                                  f"or a first column of dates); split by data.{name}_fraction instead")
            borders[name] = int(np.searchsorted(series.times, moment, side="left"))
            if borders[name] >= rows:
                raise SeriesError(f"{series.path}: no row at or after data.{name}_start={start!r} (the last "
                                  f"{series.time_column} is {series.timestamps[-1]!r})")
        else:
            end = borders.get("test", rows)
            borders[name] = end - round(rows * fraction)
    if borders["validation"] > borders["test"]:
        raise SeriesError(f"{series.path}: data.validation_start must come before data.test_start")
    spans = {"train": (0, borders["validation"]), "validation": (borders["validation"], borders["test"]),
             "test": (borders["test"], rows)}
    for name, (first, end) in spans.items():
        need = lookback + horizon if name == "train" else horizon
        if end - first >= need or (name == "test" and first == end):
            continue
        where = f"lines {series.line(first)}-{series.line(end - 1)}" if end > first else "no rows"
        if series.time_column and end > first:
            where += f", {series.time_column} {series.timestamps[first]} to {series.timestamps[end - 1]}"
        what = "lookback + horizon" if name == "train" else "horizon (its windows' past may reach back into the " \
                                                            "previous split)"
        raise SeriesError(f"{series.path}: the {name} split has {end - first} rows ({where}), its windows need "
                          f"at least {need}: {what}, with lookback {lookback} and horizon {horizon}")
    return spans


def split_rows(values: np.ndarray, borders: dict[str, tuple[int, int]], split: str, lookback: int) -> np.ndarray:
    """The rows of one split of ``split_borders``; validation and test start ``lookback`` rows early, as
    ``ett_split``'s do."""
    if split not in borders:
        raise SeriesError(f"unknown split {split!r}; choose one of {', '.join(borders)}")
    start, end = borders[split]
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
    return window_baselines(ett_split(series.values, "train", lookback), ett_split(series.values, split, lookback),
                            lookback, horizon)


def window_baselines(train: np.ndarray, rows: np.ndarray, lookback: int, horizon: int,
                     seasonal_key: str = "seasonal_naive_24h", period: int = 24) -> dict:
    """Persistence, seasonal naive (``period`` steps; left out when the lookback is shorter) and the linear
    window model fitted on ``train``, on the windows of ``rows``, all z-normalised with ``train``'s statistics.

    Returns:
        ``{"windows": N, name: {"mse", "mae"}, ...}``.
    """
    scaler = Standardizer.fit(train)
    past, future = make_windows(scaler.normalize(rows), lookback, horizon)
    linear = LinearWindowModel().fit(*make_windows(scaler.normalize(train), lookback, horizon))
    scores = {"windows": len(past), "persistence": forecast_metrics(persistence(past, horizon), future)}
    if lookback >= period:
        scores[seasonal_key] = forecast_metrics(seasonal_naive(past, horizon, period), future)
    scores["linear_window"] = forecast_metrics(linear.predict(past), future)
    return scores
