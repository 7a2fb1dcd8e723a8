"""Masked attention layers: Bahdanau (additive) and Luong (multiplicative, "general").

Both take keys that were projected once per source sentence (``W_k · memory``, computed by a ``Dense`` layer
of the model builder), so a decoder running one step at a time does not re-project the whole memory at every
step. Both return ``(context, weights)``: ``weights[b, t, s]`` is how much target step ``t`` attends to source
position ``s``; masked (padding) positions get exactly zero weight.
"""

import keras
from keras import ops

MASKED_SCORE = -1e9  # score of a masked (padding) key before the softmax; finite, so no NaN in 0 * score


def masked_softmax(scores, key_mask):
    """Softmax over the last axis of ``[batch, time, source]`` scores, ignoring masked source positions.

    Computed in float32 and returned in the scores' dtype: under a float16 policy (``training.precision``)
    ``MASKED_SCORE`` would be -inf and ``0 * -inf`` NaN. The casts are no ops for a float32 model.
    """
    dtype = scores.dtype
    scores = ops.cast(scores, "float32")
    if key_mask is not None:
        keep = ops.expand_dims(ops.cast(key_mask, scores.dtype), 1)
        scores = scores + (1.0 - keep) * MASKED_SCORE
        weights = ops.softmax(scores, axis=-1) * keep
        # Renormalise so a row is exactly zero outside the mask (softmax leaves ~1e-9-order leakage).
        return ops.cast(weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1e-9), dtype)
    return ops.cast(ops.softmax(scores, axis=-1), dtype)


class _Attention(keras.layers.Layer):
    """Shared call: scores -> masked softmax -> weighted sum of values.

    Subclasses define ``score(query [B, T, Hq], keys [B, S, A]) -> [B, T, S]`` unnormalised scores.
    """

    def call(self, query, keys, values, key_mask=None):
        """Attends from ``query [B, T, Hq]`` over ``keys [B, S, A]`` / ``values [B, S, Hv]``.

        Args:
            query: Decoder states.
            keys: Projected encoder states.
            values: Encoder states.
            key_mask: ``[B, S]`` boolean, False at padding.

        Returns:
            ``(context [B, T, Hv], weights [B, T, S])``.
        """
        weights = masked_softmax(self.score(query, keys), key_mask)
        return ops.matmul(weights, values), weights

    def compute_output_shape(self, query_shape, keys_shape, values_shape, key_mask_shape=None):
        return ((query_shape[0], query_shape[1], values_shape[-1]),
                (query_shape[0], query_shape[1], keys_shape[1]))


@keras.saving.register_keras_serializable(package="tfs2s")
class BahdanauAttention(_Attention):
    """Additive attention (Bahdanau et al. 2014): ``score = v · tanh(W_q q + W_k k)``.

    Args:
        units: Size of the hidden layer; must equal the key projection's size.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.query_dense = keras.layers.Dense(units, use_bias=False, name="query_dense")

    def build(self, query_shape, keys_shape=None, values_shape=None, key_mask_shape=None):
        self.query_dense.build(query_shape)
        self.v = self.add_weight(name="v", shape=(self.units,), initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def score(self, query, keys):
        # The bias joins the small [B, T, A] query term rather than the [B, T, S, A] energies: each full-size
        # intermediate costs a pass over memory, forward and backward.
        q = ops.expand_dims(self.query_dense(query) + self.bias, 2)  # [B, T, 1, A]
        k = ops.expand_dims(keys, 1)  # [B, 1, S, A]
        return ops.sum(self.v * ops.tanh(q + k), axis=-1)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="tfs2s")
class LuongAttention(_Attention):
    """Multiplicative attention (Luong et al. 2015, "general"): ``score = q · (W_k k)``.

    The ``W_k`` projection is applied to the keys beforehand; with an identity projection this is the "dot"
    score. ``scale`` multiplies the scores (``1/sqrt(d)`` keeps large states from saturating the softmax).
    """

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def score(self, query, keys):
        return ops.matmul(query, ops.transpose(keys, (0, 2, 1))) * self.scale

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
