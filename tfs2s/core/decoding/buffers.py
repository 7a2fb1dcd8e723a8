"""The step contract's names and the static-rank loop buffers every search shares.

Searches run in a ``tf.while_loop`` over buffers of fixed rank, written in place with one-hot sums: no
``TensorArray`` and no per-token Python loop, so the graphs compile with XLA and convert to ONNX.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

StepFn = Callable[[tf.Tensor, dict], tuple[tf.Tensor, dict]]
# "Impossible" score; finite so that 0 * IMPOSSIBLE_SCORE never makes NaN. Finite in float32 only (float16 makes
# it -inf): searches cast the step's logits to float32 and score in float32 (Seq2SeqModels.step already hands
# them float32 logits and states whatever the model's dtype policy, training.precision).
IMPOSSIBLE_SCORE = -1e9
ALIGNMENT = "alignment"


def write_at(buffer, t, values, axis: int = 1):
    """``buffer[..., t, ...] = values`` along ``axis``, as a one-hot sum (XLA- and ONNX-friendly).

    ``values`` has the shape of ``buffer`` without ``axis``.
    """
    rank = len(buffer.shape)
    # `range == t` rather than tf.one_hot: tf2onnx cannot convert a one-hot of a scalar index.
    one_hot = tf.cast(tf.equal(tf.range(tf.shape(buffer)[axis]), t), buffer.dtype)
    one_hot = tf.reshape(one_hot, [1] * axis + [-1] + [1] * (rank - axis - 1))
    return buffer + one_hot * tf.expand_dims(values, axis)


def per_input_limits(max_length, batch):
    """Per-input length limits ``[B]`` from a scalar or ``[B]`` ``max_length``, and the loop's limit (their max)."""
    max_length = tf.cast(max_length, tf.int32)
    if max_length.shape.rank == 0:
        return tf.fill([batch], max_length), max_length
    return max_length, tf.reduce_max(tf.concat([[0], max_length], axis=0))  # 0 for an empty batch


def free_shapes(structure):
    """Shape invariants of a nest of tensors: every dimension may change from step to step, the rank may not."""
    return tf.nest.map_structure(lambda x: tf.TensorShape([None] * len(x.shape)), structure)
