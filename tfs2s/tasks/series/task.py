"""Time-series forecasting with the seq2seq model: the training job, loading, export and its checks.

The model is ``build_models`` with ``model.input_encoder: vectors`` and ``model.output_head: regression``: the
encoder reads the past ``data.lookback`` steps (every modelled column, z-normalised with training statistics),
the attentional decoder emits the next ``data.horizon`` steps, each step reading the previous step's values (the
true ones while training, or with ``training.scheduled_sampling`` the model's own previous predictions; always
its own when forecasting). Validation losses are those of free-running forecasts, so the best checkpoint is the
best forecaster. With ``model.linear_skip`` a linear map of the window is added to the decoder's outputs.

A run folder holds ``config.json``, ``standardizer.json`` (the training statistics), checkpoints and logs as
every run does (``tfs2s.training.run_dir``). Exports take and return values in original units.
"""

from __future__ import annotations

import json
import logging
import os

import keras
import numpy as np
import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.core.config import Config
from tfs2s.core.errors import ConfigError, ExportError, SeriesError
from tfs2s.core.models import Seq2SeqModels, build_models
from tfs2s.core.models.contract import LINEAR_SKIP
from tfs2s.data import timeseries
from tfs2s.data.corpora import data_file
from tfs2s.export.onnx.convert import export_onnx
from tfs2s.export.savedmodel import Check
from tfs2s.tasks.base import Task
from tfs2s.tasks.series.predictor import Forecaster, evaluate_forecaster
from tfs2s.tasks.series.serving import ForecastServingModule
from tfs2s.training.callbacks import TrainingClock
from tfs2s.training.fit import TrainingJob, make_optimizer
from tfs2s.training.run_dir import HISTORY_FILE, append_jsonl, checkpoint_path, require_files

logger = logging.getLogger(__name__)

SERIES_CORPORA = {"etth1": os.path.join("ett", "ETTh1.csv")}
STANDARDIZER_FILE = "standardizer.json"


def _check_corpus(cfg: Config) -> None:
    d = cfg.data
    if d.corpus != "files" and d.corpus not in SERIES_CORPORA:
        raise ConfigError(f"data.corpus={d.corpus!r} is not a time-series corpus; choose one of "
                          f"{', '.join([*SERIES_CORPORA, 'files'])}")
    if d.corpus == "files":
        if len(d.train) != 1:
            raise ConfigError(f"data.train of a time series is one CSV file, got {len(d.train)} files")
        for name in ("validation", "test"):
            if getattr(d, name):
                raise ConfigError(f"data.{name} files are not read for time series: the {name} rows are cut from "
                                  f"data.train in time order (data.{name}_fraction or data.{name}_start)")
    elif d.validation_start or d.test_start:
        raise ConfigError(f"data.validation_start / data.test_start apply to data.corpus=files; {d.corpus} has "
                          "its fixed split")


def load_series(cfg: Config) -> timeseries.Series:
    """The configured series restricted to ``data.columns`` (every column when empty).

    ``etth1``: ``<data_dir>/ett/ETTh1.csv``. ``files``: the CSV ``data.train`` (a time column and numeric
    columns; see ``timeseries.read_csv_series``), reading only ``data.columns`` when set.

    Raises:
        ConfigError: Unknown corpus, or a ``files`` config naming validation/test files. SeriesError: bad file or
            column (names the file, line and column).
    """
    _check_corpus(cfg)
    d = cfg.data
    columns = [c.strip() for c in d.columns.split(",") if c.strip()]
    if d.corpus == "files":
        return timeseries.read_csv_series(d.train[0], columns)
    series = timeseries.read_csv_series(data_file(SERIES_CORPORA[d.corpus], d.data_dir))
    return series.select(columns) if columns else series


def series_splits(cfg: Config, series: timeseries.Series) -> dict[str, np.ndarray]:
    """``{"train", "validation"[, "test"]}`` rows in original units; validation and test rows start
    ``data.lookback`` rows early (their first windows read the end of the previous split as past).

    ``etth1``: Informer's 12/4/4-month split (``timeseries.ett_split``). ``files``: time order, borders by
    ``data.validation_start`` / ``data.test_start`` or by ``data.validation_fraction`` / ``data.test_fraction``
    (``timeseries.split_borders``); no test split when ``test_fraction`` is 0 and ``test_start`` empty.
    """
    d = cfg.data
    if d.corpus != "files":
        return {s: timeseries.ett_split(series.values, s, d.lookback) for s in ("train", "validation", "test")}
    borders = timeseries.split_borders(series, lookback=d.lookback, horizon=d.horizon,
                                       validation_fraction=d.validation_fraction, test_fraction=d.test_fraction,
                                       validation_start=d.validation_start, test_start=d.test_start)
    return {s: timeseries.split_rows(series.values, borders, s, d.lookback) for s, (start, end) in borders.items()
            if end > start}


def split_baselines(cfg: Config, splits: dict[str, np.ndarray], split_name: str) -> dict:
    """The baselines (``timeseries.window_baselines``) on one split's windows; seasonal naive over 24 steps
    (``seasonal_naive_24h`` for the hourly ETT data, ``seasonal_naive_24`` for other series)."""
    d = cfg.data
    key = "seasonal_naive_24h" if d.corpus in SERIES_CORPORA else "seasonal_naive_24"
    return timeseries.window_baselines(splits["train"], splits[split_name], d.lookback, d.horizon, key)


def evaluate_run(forecaster: Forecaster, split_name: str = "test") -> dict:
    """MSE / MAE (normalised units) of a loaded forecaster on one split of its run's series, next to the
    baselines on the same windows (what ``tfs2s evaluate`` reports for a forecasting run).

    Raises:
        SeriesError: The run has no such split (a ``files`` run without ``test_fraction`` / ``test_start`` has no
            test split), or the series' columns are not the run's.
    """
    cfg = forecaster.config
    series = load_series(cfg)
    if list(series.columns) != list(forecaster.columns):
        raise SeriesError(f"{series.path}: columns {', '.join(series.columns)} are not the run's "
                          f"({', '.join(forecaster.columns)})")
    splits = series_splits(cfg, series)
    if split_name not in splits:
        raise SeriesError(f"the run has no {split_name} split (splits: {', '.join(splits)})")
    normalized = forecaster.standardizer.normalize(splits[split_name])
    return {"split": split_name, "model": evaluate_forecaster(forecaster, normalized),
            **split_baselines(cfg, splits, split_name)}


def with_decoder_inputs(past, future):
    """``(past, future)`` windows -> ``({encoder_values, decoder_values}, future)``: teacher forcing feeds step
    ``t`` the true values of step ``t - 1`` (the last observed values for the first step)."""
    decoder_values = tf.concat([past[:, -1:, :], future[:, :-1, :]], axis=1)
    return {F.ENCODER_VALUES: past, F.DECODER_VALUES: decoder_values}, future


def forecast_dataset(values: np.ndarray, lookback: int, horizon: int, batch_size: int, *, training: bool = False,
                     seed: int = 0) -> tf.data.Dataset:
    """Normalised ``[rows, columns]`` values -> batches of ``({encoder_values, decoder_values}, future)``."""
    ds = timeseries.window_dataset(values, lookback, horizon, batch_size, shuffle=training, seed=seed)
    # Windowing hides the batch count from tf.data; stating it gives Keras' progress bar its total.
    batches = -(-(len(values) - lookback - horizon + 1) // batch_size)
    return ds.map(with_decoder_inputs, num_parallel_calls=tf.data.AUTOTUNE).apply(
        tf.data.experimental.assert_cardinality(batches))


def build_forecaster_models(cfg: Config, columns: int) -> Seq2SeqModels:
    """``build_models`` for a forecasting run over ``columns`` variables."""
    d = cfg.data
    return build_models(cfg.model, source_features=columns, source_length=d.lookback, target_features=columns,
                        horizon=d.horizon)


def fit_linear_skip(models: Seq2SeqModels, values: np.ndarray, cfg: Config) -> float:
    """Sets the linear skip (``model.linear_skip``) to the least-squares fit on the training windows.

    The map is fitted in closed form as ``timeseries.LinearWindowModel`` does, on values relative to each
    window's last observation when ``model.subtract_last`` is on, so training starts from the best linear
    forecaster and the recurrent decoder (whose output layer starts at zero) learns what it misses.

    Returns:
        The fit's training MSE (normalised units).
    """
    d = cfg.data
    past, future = timeseries.make_windows(values, d.lookback, d.horizon)
    if cfg.model.subtract_last:
        past, future = past - past[:, -1:], future - past[:, -1:]
    linear = timeseries.LinearWindowModel().fit(past, future)
    layer = models.encoder.get_layer(LINEAR_SKIP)
    layer.set_weights([linear.weights[:-1].astype(np.float32), linear.weights[-1].astype(np.float32)])
    return timeseries.forecast_metrics(linear.predict(past), future)["mse"]


class SeriesJob(TrainingJob):
    """Reads the series, splits it (``series_splits``), writes the training statistics into the run folder
    and builds the window datasets."""

    def __init__(self, cfg: Config, run_dir: str):
        super().__init__(cfg, run_dir)
        d = cfg.data
        self.series = load_series(cfg)
        self.splits = splits = series_splits(cfg, self.series)
        self.scaler = timeseries.Standardizer.fit(splits["train"])
        with open(os.path.join(run_dir, STANDARDIZER_FILE), "w", encoding="utf-8") as f:
            json.dump({"columns": list(self.series.columns), **self.scaler.to_dict()}, f, indent=2)
        self.normalized = {s: self.scaler.normalize(v) for s, v in splits.items()}
        if d.limit:
            self.normalized["train"] = self.normalized["train"][: d.limit + d.lookback + d.horizon - 1]
        self.train = forecast_dataset(self.normalized["train"], d.lookback, d.horizon, d.batch_size, training=True,
                                      seed=d.seed)
        self.validation = forecast_dataset(self.normalized["validation"], d.lookback, d.horizon, d.batch_size)
        self.batches = -(-(len(self.normalized["train"]) - d.lookback - d.horizon + 1) // d.batch_size)
        self.tokens_per_step = d.batch_size * d.horizon

    def build(self) -> Seq2SeqModels:
        return build_forecaster_models(self.cfg, len(self.series.columns))

    def start(self, models: Seq2SeqModels, fresh: bool) -> None:
        if self.cfg.model.linear_skip and fresh:  # a resumed run restores its weights instead
            logger.info("linear skip set to the least-squares fit (training MSE %.4f)",
                        fit_linear_skip(models, self.normalized["train"], self.cfg))

    def compile(self, models: Seq2SeqModels, steps_per_epoch: int) -> keras.Model:
        model = models.training
        model.scheduled_sampling = self.cfg.training.scheduled_sampling
        model.compile(optimizer=make_optimizer(self.cfg, steps_per_epoch), loss="mse", metrics=["mae"],
                      jit_compile=self.cfg.training.jit_compile)
        return model

    def before_fit(self, model: keras.Model, fresh: bool) -> None:
        if not fresh:
            return
        # The starting point (the linear forecaster) is the best checkpoint until an epoch forecasts better.
        start = float(model.evaluate(self.validation, verbose=0, return_dict=True)["loss"])
        os.makedirs(os.path.dirname(checkpoint_path(self.run_dir)), exist_ok=True)
        model.save_weights(checkpoint_path(self.run_dir, "best"))
        append_jsonl(os.path.join(self.run_dir, HISTORY_FILE),
                     {"event": "epoch", "epoch": 0, "val_loss": start, "before_training": True})
        logger.info("validation forecast MSE before training: %.4f", start)

    def summary(self, models: Seq2SeqModels, model: keras.Model, clock: TrainingClock) -> dict:
        d = self.cfg.data
        forecaster = Forecaster(models, self.scaler, self.cfg, list(self.series.columns))
        # evaluate() forecasts free-running (RegressionTrainingModel), as validation during fit did.
        val_mse = float(model.evaluate(self.validation, verbose=0, return_dict=True)["loss"])
        summary = {"columns": list(self.series.columns), "lookback": d.lookback, "horizon": d.horizon,
                   "val_forecast_mse": round(val_mse, 4)}
        for split_name in ("validation", "test"):
            if split_name in self.splits:
                summary[split_name] = {"model": evaluate_forecaster(forecaster, self.normalized[split_name]),
                                       **split_baselines(self.cfg, self.splits, split_name)}
        return summary


class SeriesTask(Task):
    """Real-valued windows to real-valued forecasts. The summary compares validation and test MSE / MAE
    (normalised) of the model's autoregressive forecasts with persistence, seasonal naive (24 h) and the
    least-squares linear window model on the same windows."""

    name = "forecasting"
    input_encoder = "vectors"
    description = "a forecasting run (tfs2s.tasks.series, pipelines/forecast.py)"

    def check_config(self, cfg: Config) -> None:
        if (cfg.model.input_encoder, cfg.model.output_head) != ("vectors", "regression"):
            raise ConfigError("a forecasting run needs model.input_encoder=vectors and model.output_head=regression")
        _check_corpus(cfg)

    def training_job(self, cfg: Config, run_dir: str) -> SeriesJob:
        return SeriesJob(cfg, run_dir)

    def load(self, cfg: Config, run_dir: str, weights: str = "best") -> Forecaster:
        paths = {"statistics": os.path.join(run_dir, STANDARDIZER_FILE),
                 "checkpoint": checkpoint_path(run_dir, weights)}
        require_files(run_dir, paths, kind="trained forecasting")
        with open(paths["statistics"], encoding="utf-8") as f:
            stats = json.load(f)
        scaler = timeseries.Standardizer(np.asarray(stats["mean"], np.float32), np.asarray(stats["std"], np.float32))
        models = build_forecaster_models(cfg, len(stats["columns"]))
        models.training.load_weights(paths["checkpoint"])
        return Forecaster(models, scaler, cfg, stats["columns"])

    def serving_module(self, predictor: Forecaster, max_beam_width: int = 16) -> ForecastServingModule:
        return ForecastServingModule(predictor)

    def export_metadata(self, predictor: Forecaster, module: ForecastServingModule) -> dict:
        return {"requires_tensorflow_text": False, "columns": predictor.columns,
                "lookback": predictor.lookback, "horizon": predictor.horizon,
                "units": "original (the graph normalises with the training statistics below and de-normalises)",
                "mean": predictor.standardizer.mean.tolist(), "std": predictor.standardizer.std.tolist()}

    def write_onnx(self, saved_model_dir: str, output_dir: str, predictor: Forecaster,
                   quantize: str | None = None) -> dict:
        if quantize:
            raise ExportError("int8 ONNX graphs are written for text models only")
        return export_onnx(saved_model_dir, output_dir, "word", {"forecast": ("forecast.onnx", False)})

    def export_checks(self, predictor: Forecaster, past: np.ndarray | None = None) -> list[Check]:
        if past is None:
            window = np.random.default_rng(0).standard_normal((3, predictor.lookback, len(predictor.columns)))
            past = window.astype(np.float32) * predictor.standardizer.std + predictor.standardizer.mean
        past = np.asarray(past, np.float32)
        direct = predictor.forecast(tf.constant(past)).numpy()
        return [Check("serving_default", {F.ENCODER_VALUES: past}, {"forecast": direct},
                      scale=predictor.standardizer.std, examples=len(past))]
