"""Small sequence utility layers used by the model builder (layers rather than raw ops, so models serialise)."""

import keras
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
