"""Past values in, future values out: the ``Forecaster`` (normalisation and decoding loop in-graph)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfs2s.core import decoding
from tfs2s.core import features as F
from tfs2s.core.config import Config
from tfs2s.core.errors import SeriesError
from tfs2s.core.models import LAST_VALUES, Seq2SeqModels
from tfs2s.data import timeseries


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
            raise SeriesError(f"a window of {past.shape[1]} steps is shorter than the model's lookback "
                              f"of {self.lookback} steps")
        if past.ndim != 3 or tuple(past.shape[1:]) != expected:
            raise SeriesError(f"{F.ENCODER_VALUES} must have shape [batch, {expected[0]}, {expected[1]}] "
                              f"(lookback, columns {', '.join(self.columns)}), got {list(past.shape)}")
        if not np.isfinite(past).all():
            raise SeriesError(f"{F.ENCODER_VALUES} holds missing or infinite values")
        return past

    def predict_normalized(self, past: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """``forecast_normalized`` over a numpy array of windows, in batches."""
        past = self.check_window(past)
        parts = [self._predict(tf.constant(past[i:i + batch_size])).numpy() for i in range(0, len(past), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.horizon, len(self.columns)), np.float32)


def evaluate_forecaster(forecaster: Forecaster, values: np.ndarray) -> dict:
    """MSE / MAE (normalised units) of autoregressive forecasts over every window of normalised ``values``."""
    past, future = timeseries.make_windows(values, forecaster.lookback, forecaster.horizon)
    return {"windows": len(past), **timeseries.forecast_metrics(forecaster.predict_normalized(past), future)}
