"""What a forecasting export serves: the ``tf.Module`` saved as the SavedModel of a forecaster."""

from __future__ import annotations

import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.tasks.series.predictor import Forecaster


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
