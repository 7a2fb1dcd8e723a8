"""Autoregressive real-valued decoding (forecasting), the counterpart of the token searches."""

from __future__ import annotations

from typing import Callable

import tensorflow as tf


def regress(step_fn: Callable[[tf.Tensor, dict], tuple[tf.Tensor, dict]], state: dict, first_values,
            horizon, teacher=None, sampling=1.0) -> tf.Tensor:
    """Autoregressive real-valued decoding (forecasting): each prediction is the next step's input.

    Args:
        step_fn: ``(values [B, F], state) -> (predicted values [B, F], state)``; the state gets an int32
            ``time`` entry (the step being predicted), e.g. ``Seq2SeqModels.value_step``.
        state: The encoder's state dict (without ``alignment``: nothing is collected).
        first_values: ``[B, F]`` the last observed values, the first step's input.
        horizon: Steps to predict (int or scalar tensor).
        teacher: Optional ``[B, horizon, F]`` true inputs (scheduled sampling): step ``t + 1`` then reads the
            prediction of step ``t`` with probability ``sampling`` (per example), else ``teacher[:, t + 1]``.
        sampling: See ``teacher``; ignored without it.

    Returns:
        ``[B, horizon, F]`` predictions. A ``tf.while_loop``, so exported graphs hold one step (an ONNX ``Loop``);
        differentiable, also through the fed-back predictions.
    """
    state = dict(state, time=tf.constant(0, tf.int32))
    first_values = tf.convert_to_tensor(first_values)
    batch, features = tf.shape(first_values)[0], tf.shape(first_values)[1]
    predictions = tf.zeros([batch, horizon, features], first_values.dtype)

    def body(t, values, state, predictions):
        values, state = step_fn(values, state)
        # One-hot write along time keeps a static-rank buffer (as the token decoders do; converts to ONNX).
        at_t = tf.reshape(tf.one_hot(t, horizon, dtype=values.dtype), [1, horizon, 1])
        predictions = predictions + at_t * values[:, None, :]
        if teacher is not None:
            given = tf.gather(teacher, tf.minimum(t + 1, horizon - 1), axis=1)
            values = tf.where(tf.random.uniform([batch, 1]) < sampling, values, given)
        return t + 1, values, state, predictions

    _, _, _, predictions = tf.while_loop(lambda t, *_: t < horizon, body, (tf.constant(0), first_values, state,
                                                                          predictions))
    return predictions
