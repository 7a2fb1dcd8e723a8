"""Small sequence utility layers used by the model builder (layers rather than raw ops, so models serialise)."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="tfs2s")
class PaddingMask(keras.layers.Layer):
    """Token ids ``[batch, time]`` -> boolean mask, True where the id is not padding (0)."""

    def call(self, ids):
        return ops.not_equal(ids, 0)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="tfs2s")
class BroadcastOverTime(keras.layers.Layer):
    """Repeats a ``[batch, dim]`` vector over the time axis of a ``[batch, time, any]`` reference."""

    def call(self, vector, reference):
        return ops.zeros_like(reference[:, :, :1]) + ops.expand_dims(vector, 1)

    def compute_output_shape(self, vector_shape, reference_shape):
        return (reference_shape[0], reference_shape[1], vector_shape[-1])


@keras.saving.register_keras_serializable(package="tfs2s")
class FullMask(keras.layers.Layer):
    """A ``[batch, time, dim]`` sequence -> all-True ``[batch, time]`` mask (image columns and real-valued steps
    are never padding)."""

    def call(self, sequence):
        return ops.ones_like(sequence[:, :, 0], dtype="bool")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:2])


@keras.saving.register_keras_serializable(package="tfs2s")
class LastStep(keras.layers.Layer):
    """``[batch, time, dim]`` -> ``[batch, dim]``, the last time step (a forecaster's last observed values)."""

    def call(self, sequence):
        return sequence[:, -1, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package="tfs2s")
class WindowLinear(keras.layers.Layer):
    """A linear map over time, shared by every channel: ``[batch, lookback, F] -> [batch, horizon, F]``.

    The linear forecaster of DLinear (Zeng et al. 2023, shared across variables) and the "highway" of LSTNet
    (Lai et al. 2018): added to a recurrent decoder's outputs, it leaves the decoder the non-linear remainder.

    Args:
        horizon: Output steps.
    """

    def __init__(self, horizon: int, **kwargs):
        super().__init__(**kwargs)
        self.horizon = horizon

    def build(self, input_shape):
        if input_shape[1] is None:
            raise ValueError("WindowLinear needs a fixed number of input steps")
        # Starts as "repeat the last value", the persistence forecast, rather than as noise.
        persistence = np.zeros((input_shape[1], self.horizon), "float32")
        persistence[-1] = 1.0
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[1], self.horizon),
                                      initializer=lambda shape, dtype=None: persistence)
        self.bias = self.add_weight(name="bias", shape=(self.horizon,), initializer="zeros")

    def call(self, window):
        return ops.einsum("blf,lh->bhf", window, self.kernel) + self.bias[None, :, None]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.horizon, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "horizon": self.horizon}


@keras.saving.register_keras_serializable(package="tfs2s")
class LevelShift(keras.layers.Layer):
    """``[batch, time, F]`` values plus ``sign`` times a ``[batch, F]`` level: values relative to a window's last
    observation (``sign=-1``) and back (``sign=1``), as NLinear (Zeng et al. 2023) and RevIN (Kim et al. 2022)
    do against the level shifts between a series' training and test periods.

    Args:
        sign: ``-1.0`` subtracts the level, ``1.0`` adds it.
    """

    def __init__(self, sign: float = -1.0, **kwargs):
        super().__init__(**kwargs)
        self.sign = float(sign)

    def call(self, values, level):
        return values + self.sign * ops.expand_dims(level, 1)

    def compute_output_shape(self, values_shape, level_shape):
        return values_shape

    def get_config(self):
        return {**super().get_config(), "sign": self.sign}
