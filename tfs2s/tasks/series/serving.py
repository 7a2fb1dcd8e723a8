"""What a forecasting export serves: the ``tf.Module`` saved as the SavedModel of a forecaster."""

from __future__ import annotations

import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.export.savedmodel import ServingModule
from tfs2s.tasks.series.predictor import Forecaster


class ForecastServingModule(ServingModule):
    """What a forecasting export saves.

    * ``serving_default``: ``encoder_values [B, lookback, F]`` in original units -> ``forecast [B, horizon, F]``
      in original units (missing or infinite inputs fail with an error naming ``encoder_values``);
    * ``forecast``: the same without that check (the graph converted to ONNX, whose host checks instead);
    * ``forecast_normalized``: z-normalised values in and out.
    """

    SIGNATURES = ("serve", "forecast", "forecast_normalized")

    def __init__(self, forecaster: Forecaster):
        super().__init__("tfs2s_forecast_serving", forecaster.models)
        self.forecaster = forecaster
        spec = tf.TensorSpec([None, forecaster.lookback, len(forecaster.columns)], tf.float32, name=F.ENCODER_VALUES)
        self.serve = tf.function(self._serve, input_signature=[spec])
        self.forecast = tf.function(lambda x: {"forecast": forecaster.forecast(x)}, input_signature=[spec])
        self.forecast_normalized = tf.function(lambda x: {"forecast": forecaster.forecast_normalized(x)},
                                               input_signature=[spec])

    def _serve(self, values):
        values = tf.debugging.assert_all_finite(values, f"{F.ENCODER_VALUES} holds missing or infinite values")
        return {"forecast": self.forecaster.forecast(values)}
