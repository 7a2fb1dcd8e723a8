"""What every search applies to its candidates: length limits, the GNMT length penalty, an early-``</s>`` ban
and n-gram repetition blocking."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.core.decoding.buffers import IMPOSSIBLE_SCORE, StepFn, per_input_limits


def length_penalty(length, alpha: float):
    """GNMT length penalty ``((5 + length) / 6) ** alpha`` (Wu et al. 2016)."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def length_limits(source_lengths, ratio: float, offset: int) -> tf.Tensor:
    """Per-input output length limits ``ceil(ratio * source_length) + offset`` (``[B]`` int32), the
    ``max_length`` every search takes (``DecodingConfig.max_length_ratio`` / ``max_length_offset``)."""
    lengths = tf.cast(source_lengths, tf.float32)
    return tf.cast(tf.math.ceil(ratio * lengths), tf.int32) + offset


def ban_early_eos(logits, t, min_length):
    """Forbids ``</s>`` before ``min_length`` tokens (an empty output is never a translation or a reply)."""
    if isinstance(min_length, int) and not min_length:
        return logits
    vocab = logits.shape[-1]
    if vocab is None:
        eos = tf.equal(tf.range(tf.shape(logits)[-1]), F.EOS_ID)  # not tf.one_hot: see buffers.write_at
    else:  # a constant: nothing rebuilt at every step of a decoding loop
        eos = tf.constant(np.arange(vocab) == F.EOS_ID)
    return tf.where(tf.logical_and(t < min_length, eos)[None, :], tf.cast(IMPOSSIBLE_SCORE, logits.dtype), logits)


_HISTORY, _STEP = "repeat_history", "repeat_step"


def block_repeated_ngrams(step_fn: StepFn, state: dict, max_length, n: int) -> tuple[StepFn, dict]:
    """Wraps a step function so that no hypothesis ever repeats an n-gram (``no_repeat_ngram_size``).

    At each step, a token that would complete an n-gram already present in the hypothesis (``<s>`` included)
    gets an impossible logit. The hypothesis so far is carried in the state (``[N, max_length + 1]`` ids), so
    beam search reorders it with the beams, and every strategy shares the rule.

    Returns:
        ``(wrapped_step_fn, state)`` with the history entries added to ``state``.
    """
    if n < 1:
        raise ValueError(f"no_repeat_ngram_size must be at least 1, got {n}")
    batch = tf.shape(next(iter(state.values())))[0]
    _, loop_length = per_input_limits(max_length, batch)
    state = dict(state, **{_HISTORY: tf.zeros([batch, loop_length + 1], tf.int32), _STEP: tf.zeros([batch], tf.int32)})

    def wrapped(ids, state):
        history, t = state[_HISTORY], state[_STEP]
        positions = tf.range(tf.shape(history)[1])
        history = tf.where(positions[None, :] == t[:, None], tf.cast(ids, tf.int32)[:, None], history)
        inner = {k: v for k, v in state.items() if k not in (_HISTORY, _STEP)}
        logits, new_state = step_fn(ids, inner)
        logits = tf.cast(logits, tf.float32)  # IMPOSSIBLE_SCORE is finite in float32 only (see buffers)
        length = t + 1  # tokens in the history, the current input included
        logits = tf.where(_repeating(history, length, n, tf.shape(logits)[-1]),
                          tf.cast(IMPOSSIBLE_SCORE, logits.dtype), logits)
        new_state = dict(new_state, **{_HISTORY: history, _STEP: length})
        return logits, new_state

    return wrapped, state


def _repeating(history, length, n: int, vocab):
    """``[N, V]`` True for the tokens that would complete an n-gram already in ``history[:, :length]``."""
    positions = tf.range(tf.shape(history)[1])
    # Window j matches when history[j : j + n - 1] equals the last n - 1 tokens; it then bans history[j + n - 1].
    last = length[:, None] - (n - 1) + tf.range(n - 1)[None, :]  # [N, n - 1] positions of the suffix
    suffix = tf.gather(history, tf.maximum(last, 0), batch_dims=1)
    width = tf.shape(history)[1]
    match = (positions[None, :] + n - 1) < length[:, None]  # the banned token lies inside the history
    padded = tf.concat([history, tf.zeros([tf.shape(history)[0], n], tf.int32)], axis=1)
    for k in range(n - 1):
        match = tf.logical_and(match, padded[:, k:k + width] == suffix[:, k:k + 1])
    following = padded[:, n - 1:n - 1 + width]  # [N, L] the token after each window
    return tf.reduce_any(tf.logical_and(match[:, :, None], following[:, :, None] == tf.range(vocab)[None, None, :]),
                         axis=1)
