"""Time-series forecasting with the seq2seq model: the run, the ``Forecaster`` and its export.

The model is ``models.build_models`` with ``model.input_encoder: vectors`` and ``model.output_head: regression``:
the encoder reads the past ``data.lookback`` steps (every modelled column, z-normalised with training
statistics), the attentional decoder emits the next ``data.horizon`` steps, each step reading the previous
step's values (the true ones while training, or with ``training.scheduled_sampling`` the model's own previous
predictions; always its own when forecasting). Validation losses are those of free-running forecasts, so the
best checkpoint is the best forecaster. With ``model.linear_skip`` a linear map of the window is added to the
decoder's outputs.

A run folder holds ``config.json``, ``standardizer.json`` (the training statistics), checkpoints and logs as a
translation run does (see ``tfs2s.training``). Exports take and return values in original units.
"""

from __future__ import annotations

import json
import logging
import os
import time

import numpy as np
import tensorflow as tf

from tfs2s.core import decoding
from tfs2s.data import timeseries
from tfs2s.core import features as F
from tfs2s.core.config import Config, ConfigError
from tfs2s.core.models import LAST_VALUES, Seq2SeqModels, build_models

logger = logging.getLogger(__name__)

SERIES_CORPORA = {"etth1": os.path.join("ett", "ETTh1.csv")}
STANDARDIZER_FILE = "standardizer.json"


def load_series(cfg: Config) -> timeseries.Series:
    """The configured series restricted to ``data.columns`` (every column when empty).

    Raises:
        ConfigError: Unknown corpus. SeriesError: bad file or column (names the file, line and column).
    """
    from tfs2s.data.corpora import resolve_data_dir

    d = cfg.data
    if d.corpus not in SERIES_CORPORA:
        raise ConfigError(f"data.corpus={d.corpus!r} is not a time-series corpus; choose one of "
                          f"{', '.join(SERIES_CORPORA)}")
    series = timeseries.read_csv_series(os.path.join(resolve_data_dir(d.data_dir), SERIES_CORPORA[d.corpus]))
    columns = [c.strip() for c in d.columns.split(",") if c.strip()]
    return series.select(columns) if columns else series


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


class Forecaster(tf.Module):
    """Past values in, future values out, in original units; normalisation and decoding loop in-graph.

    Args:
        models: Models built with ``input_encoder: vectors`` and ``output_head: regression``.
        standardizer: The training statistics.
        config: The run's config (lookback, horizon, columns).
        columns: Names of the modelled columns.
    """

    def __init__(self, models: Seq2SeqModels, standardizer: timeseries.Standardizer, config: Config,
                 columns: list[str]):
        super().__init__(name="forecaster")
        self.models = models
        self.standardizer = standardizer
        self.config = config
        self.columns = list(columns)
        self.mean = tf.constant(standardizer.mean, tf.float32)
        self.std = tf.constant(standardizer.std, tf.float32)
        self._predict = tf.function(self.forecast_normalized)

    @property
    def lookback(self) -> int:
        return self.config.data.lookback

    @property
    def horizon(self) -> int:
        return self.config.data.horizon

    def forecast_normalized(self, past: tf.Tensor) -> tf.Tensor:
        """``[B, lookback, F]`` z-normalised past -> ``[B, horizon, F]`` z-normalised forecast."""
        state = self.models.initial_state(tf.convert_to_tensor(past, tf.float32), alignment=False)
        return decoding.regress(self.models.value_step, state, state[LAST_VALUES], self.horizon)

    def forecast(self, past: tf.Tensor) -> tf.Tensor:
        """``[B, lookback, F]`` past values in original units -> ``[B, horizon, F]`` in original units."""
        normalized = self.forecast_normalized((tf.convert_to_tensor(past, tf.float32) - self.mean) / self.std)
        return normalized * self.std + self.mean

    def check_window(self, past: np.ndarray) -> np.ndarray:
        """Host-side check of a ``[B, lookback, F]`` batch; raises ``SeriesError`` naming what is wrong."""
        past = np.asarray(past, np.float32)
        expected = (self.lookback, len(self.columns))
        if past.ndim == 3 and past.shape[2] == expected[1] and past.shape[1] < expected[0]:
            raise timeseries.SeriesError(f"a window of {past.shape[1]} steps is shorter than the model's lookback "
                                         f"of {self.lookback} steps")
        if past.ndim != 3 or tuple(past.shape[1:]) != expected:
            raise timeseries.SeriesError(f"{F.ENCODER_VALUES} must have shape [batch, {expected[0]}, {expected[1]}] "
                                         f"(lookback, columns {', '.join(self.columns)}), got {list(past.shape)}")
        if not np.isfinite(past).all():
            raise timeseries.SeriesError(f"{F.ENCODER_VALUES} holds missing or infinite values")
        return past

    def predict_normalized(self, past: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """``forecast_normalized`` over a numpy array of windows, in batches."""
        past = self.check_window(past)
        parts = [self._predict(tf.constant(past[i:i + batch_size])).numpy() for i in range(0, len(past), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.horizon, len(self.columns)), np.float32)


def _check_config(cfg: Config) -> None:
    if (cfg.model.input_encoder, cfg.model.output_head) != ("vectors", "regression"):
        raise ConfigError("a forecasting run needs model.input_encoder=vectors and model.output_head=regression")


def build_forecaster_models(cfg: Config, columns: int) -> Seq2SeqModels:
    """``build_models`` for a forecasting run over ``columns`` variables."""
    d = cfg.data
    return build_models(cfg.model, source_features=columns, source_length=d.lookback, target_features=columns,
                        horizon=d.horizon)


def fit_linear_skip(models: Seq2SeqModels, values: np.ndarray, cfg: Config) -> dict:
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
    layer = models.encoder.get_layer("linear_skip")
    layer.set_weights([linear.weights[:-1].astype(np.float32), linear.weights[-1].astype(np.float32)])
    return timeseries.forecast_metrics(linear.predict(past), future)["mse"]


def evaluate_forecaster(forecaster: Forecaster, values: np.ndarray) -> dict:
    """MSE / MAE (normalised units) of autoregressive forecasts over every window of normalised ``values``."""
    past, future = timeseries.make_windows(values, forecaster.lookback, forecaster.horizon)
    return {"windows": len(past), **timeseries.forecast_metrics(forecaster.predict_normalized(past), future)}


def train_forecaster(cfg: Config, run_dir: str, *, verbose: int | str = "auto", extend: bool = False) -> dict:
    """Trains (or resumes) a forecaster in ``run_dir``; returns the summary with the baselines of the same split.

    The summary compares validation and test MSE / MAE (normalised) of the model's autoregressive forecasts with
    persistence, seasonal naive (24 h) and the least-squares linear window model.

    With ``extend`` a finished run trains further, as in ``tfs2s.training.train``.
    """
    from tfs2s.training.run import TrainingClock, make_optimizer, open_run, run_callbacks, trained_epochs

    _check_config(cfg)
    summary_path = os.path.join(run_dir, "summary.json")
    finished = open_run(cfg, run_dir, extend)
    if finished is not None:
        return finished
    d, t = cfg.data, cfg.training
    series = load_series(cfg)
    splits = {s: timeseries.ett_split(series.values, s, d.lookback) for s in ("train", "validation", "test")}
    scaler = timeseries.Standardizer.fit(splits["train"])
    with open(os.path.join(run_dir, STANDARDIZER_FILE), "w", encoding="utf-8") as f:
        json.dump({"columns": list(series.columns), **scaler.to_dict()}, f, indent=2)
    normalized = {s: scaler.normalize(v) for s, v in splits.items()}
    if d.limit:
        normalized["train"] = normalized["train"][: d.limit + d.lookback + d.horizon - 1]
    train_ds = forecast_dataset(normalized["train"], d.lookback, d.horizon, d.batch_size, training=True, seed=d.seed)
    val_ds = forecast_dataset(normalized["validation"], d.lookback, d.horizon, d.batch_size)
    windows = len(normalized["train"]) - d.lookback - d.horizon + 1
    batches = -(-windows // d.batch_size)
    steps = min(batches, t.steps_per_epoch) if t.steps_per_epoch else None
    if steps:
        train_ds = train_ds.repeat()
    models = build_forecaster_models(cfg, len(series.columns))
    fresh = not os.path.exists(os.path.join(run_dir, "backup"))  # a resumed run restores its weights instead
    if cfg.model.linear_skip and fresh:
        logger.info("linear skip set to the least-squares fit (training MSE %.4f)",
                    fit_linear_skip(models, normalized["train"], cfg))
    model = models.training
    model.scheduled_sampling = t.scheduled_sampling
    model.compile(optimizer=make_optimizer(cfg, steps or batches), loss="mse", metrics=["mae"],
                  jit_compile=t.jit_compile)
    model.optimizer.build(model.trainable_variables)
    if fresh:
        # The starting point (the linear forecaster) is the best checkpoint until an epoch forecasts better.
        start = float(model.evaluate(val_ds, verbose=0, return_dict=True)["loss"])
        os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
        model.save_weights(os.path.join(run_dir, "checkpoints", "best.weights.h5"))
        with open(os.path.join(run_dir, "history.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps({"event": "epoch", "epoch": 0, "val_loss": start, "before_training": True}) + "\n")
        logger.info("validation forecast MSE before training: %.4f", start)
    clock = TrainingClock(t.max_minutes, d.batch_size * d.horizon, os.path.join(run_dir, "clock.json"))
    started = time.perf_counter()
    model.fit(train_ds, validation_data=val_ds, epochs=t.epochs, steps_per_epoch=steps,
              callbacks=run_callbacks(cfg, run_dir, clock), verbose=verbose)
    wall = time.perf_counter() - started
    model.load_weights(os.path.join(run_dir, "checkpoints", "best.weights.h5"))
    forecaster = Forecaster(models, scaler, cfg, list(series.columns))
    summary = {"name": cfg.name, "columns": list(series.columns), "lookback": d.lookback, "horizon": d.horizon,
               "epochs_run": trained_epochs(os.path.join(run_dir, "history.jsonl")),
               "train_minutes": round(clock.seconds / 60.0, 2),
               "wall_minutes": round(wall / 60.0, 2), "parameters": int(model.count_params()),
               # evaluate() forecasts free-running (models.RegressionTrainingModel), as validation during fit did.
               "val_forecast_mse": round(float(model.evaluate(val_ds, verbose=0, return_dict=True)["loss"]), 4)}
    for split_name in ("validation", "test"):
        summary[split_name] = {"model": evaluate_forecaster(forecaster, normalized[split_name]),
                               **timeseries.baseline_scores(series, d.lookback, d.horizon, split_name)}
    with open(summary_path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    return summary


def load_forecaster(run_dir: str, weights: str = "best") -> Forecaster:
    """A ``Forecaster`` over a trained run's checkpoint and statistics.

    Raises:
        FileNotFoundError: The folder is not a forecasting run or lacks the checkpoint (names what is missing).
    """
    from tfs2s.core.config import load_config

    paths = {"config": os.path.join(run_dir, "config.json"), "statistics": os.path.join(run_dir, STANDARDIZER_FILE),
             "checkpoint": os.path.join(run_dir, "checkpoints", f"{weights}.weights.h5")}
    for what, path in paths.items():
        if not os.path.exists(path):
            raise FileNotFoundError(f"{run_dir} is not a trained forecasting run: its {what} ({path}) is missing")
    cfg = load_config(paths["config"])
    _check_config(cfg)
    with open(paths["statistics"], encoding="utf-8") as f:
        stats = json.load(f)
    scaler = timeseries.Standardizer(np.asarray(stats["mean"], np.float32), np.asarray(stats["std"], np.float32))
    models = build_forecaster_models(cfg, len(stats["columns"]))
    models.training.load_weights(paths["checkpoint"])
    return Forecaster(models, scaler, cfg, stats["columns"])


# ---------------------------------------------------------------------------------------------------- export

class ForecastServingModule(tf.Module):
    """What a forecasting export saves.

    * ``serving_default``: ``encoder_values [B, lookback, F]`` in original units -> ``forecast [B, horizon, F]``
      in original units (missing or infinite inputs fail with an error naming ``encoder_values``);
    * ``forecast``: the same without that check (the graph converted to ONNX, whose host checks instead);
    * ``forecast_normalized``: z-normalised values in and out.
    """

    def __init__(self, forecaster: Forecaster):
        super().__init__(name="tfs2s_forecast_serving")
        self.forecaster = forecaster
        self.model_variables = [w.value for w in forecaster.models.teacher_forced.weights]
        spec = tf.TensorSpec([None, forecaster.lookback, len(forecaster.columns)], tf.float32, name=F.ENCODER_VALUES)
        self.serve = tf.function(self._serve, input_signature=[spec])
        self.forecast = tf.function(lambda x: {"forecast": forecaster.forecast(x)}, input_signature=[spec])
        self.forecast_normalized = tf.function(lambda x: {"forecast": forecaster.forecast_normalized(x)},
                                               input_signature=[spec])

    def _serve(self, values):
        values = tf.debugging.assert_all_finite(values, f"{F.ENCODER_VALUES} holds missing or infinite values")
        return {"forecast": self.forecaster.forecast(values)}

    def signatures(self) -> dict:
        return {"serving_default": self.serve.get_concrete_function(),
                "forecast": self.forecast.get_concrete_function(),
                "forecast_normalized": self.forecast_normalized.get_concrete_function()}


def export_forecaster(forecaster: Forecaster, export_root: str, name: str, version: int | None = None,
                      overwrite: bool = False, onnx: bool = False) -> str:
    """Writes ``export_root/name/version`` (TF Serving layout, atomically) and returns its path.

    The training statistics are in the graph and in the metadata, so served forecasts are in original units.
    ``onnx=True`` also converts the ``forecast`` signature to ``<version>/onnx/forecast.onnx``.
    """
    from tfs2s.export.savedmodel import export_onnx, save_module, write_version

    def write(tmp: str) -> None:
        save_module(tmp, ForecastServingModule(forecaster), forecaster.config, {
            "task": "forecasting", "requires_tensorflow_text": False, "columns": forecaster.columns,
            "lookback": forecaster.lookback, "horizon": forecaster.horizon,
            "units": "original (the graph normalises with the training statistics below and de-normalises)",
            "mean": forecaster.standardizer.mean.tolist(), "std": forecaster.standardizer.std.tolist()})
        if onnx:
            export_onnx(tmp, os.path.join(tmp, "onnx"), "word", {"forecast": ("forecast.onnx", False)})

    return write_version(export_root, name, version, overwrite, write)


def verify_forecast_export(export_dir: str, forecaster: Forecaster, past: np.ndarray, atol: float = 1e-4) -> dict:
    """Reloads an export and checks its forecasts against the in-memory forecaster (relative to the scale).

    Raises:
        AssertionError: The reloaded export disagrees with the model.
    """
    loaded = tf.saved_model.load(export_dir)
    served = loaded.signatures["serving_default"](**{F.ENCODER_VALUES: tf.constant(past, tf.float32)})["forecast"]
    direct = forecaster.forecast(tf.constant(past, tf.float32))
    diff = float(np.max(np.abs(served.numpy() - direct.numpy()) / forecaster.standardizer.std, initial=0.0))
    if diff > atol:
        raise AssertionError(f"{export_dir}: forecasts differ from the Keras model by {diff} (normalised units)")
    return {"windows": len(past), "max_normalized_diff": diff}
