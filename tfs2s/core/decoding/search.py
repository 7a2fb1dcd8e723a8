"""Decoding in pure TensorFlow over one step contract: greedy search, sampling, and ``decode``, which picks one.

A step function ``step_fn(ids, state) -> (logits, state)`` maps the previous token ids ``[N]`` and a dict of
state tensors (each ``[N, ...]``) to next-token logits ``[N, V]`` and the new state. If the state holds an
``"alignment"`` entry ``[N, S]`` (attention weights of the step just taken), decoders collect it.

``greedy_search``, ``sample`` and ``beam_search`` (in ``beam``) are graph-friendly (``tf.while_loop``,
static-rank buffers updated in place, no ``TensorArray`` and no per-token Python loop; see ``buffers``), and all
return a dict:

* ``tokens``: ``[B, N, L]`` int32 ids, ``</s>`` included, 0 after it;
* ``lengths``: ``[B, N]`` tokens before ``</s>``;
* ``scores``: ``[B, N]`` ranking score (beam search: log-probability divided by the GNMT length penalty;
  otherwise the log-probability);
* ``log_probs``: ``[B, N]`` sum of token log-probabilities (``</s>`` included);
* ``alignment``: ``[B, N, L, S]`` attention weights, when the step provides them.

``N`` is 1 for greedy search and sampling and ``n_best`` for beam search.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.core.decoding.beam import beam_search
from tfs2s.core.decoding.buffers import ALIGNMENT, IMPOSSIBLE_SCORE, StepFn, free_shapes, per_input_limits, write_at
from tfs2s.core.decoding.constraints import ban_early_eos, block_repeated_ngrams
from tfs2s.core.decoding.options import DecodeOptions


def decode(step_fn: StepFn, state: dict, max_length, options: DecodeOptions) -> dict:
    """Decodes with ``options.strategy``: ``greedy_search``, ``beam_search`` or ``sample``.

    ``options.no_repeat_ngram_size > 0`` forbids repeating any n-gram of that size (see ``block_repeated_ngrams``).

    Args:
        step_fn: The step function.
        state: Initial state (each tensor ``[B, ...]``).
        max_length: Largest number of tokens to generate: a scalar, or ``[B]`` per-input limits.
        options: The strategy and its options.
    """
    o = options
    if o.no_repeat_ngram_size:
        step_fn, state = block_repeated_ngrams(step_fn, state, max_length, o.no_repeat_ngram_size)
    if o.strategy == "beam":
        return beam_search(step_fn, state, max_length, o.beam_width, o.length_penalty, o.n_best, o.min_length)
    if o.strategy == "sample":
        return sample(step_fn, state, max_length, o.temperature, o.top_k, o.seed, o.min_length)
    return greedy_search(step_fn, state, max_length, o.min_length)


def greedy_search(step_fn: StepFn, state: dict, max_length, min_length=0) -> dict:
    """Picks the most likely token at every step.

    Args:
        step_fn: The step function.
        state: Initial state (each tensor ``[B, ...]``).
        max_length: Largest number of tokens to generate: a scalar, or ``[B]`` per-input limits.
        min_length: ``</s>`` is forbidden before this many tokens.
    """
    return _sequential(step_fn, state, max_length, lambda logits, t: tf.argmax(logits, axis=-1, output_type=tf.int32),
                       min_length)


def sample(step_fn: StepFn, state: dict, max_length, temperature: float = 1.0, top_k: int = 0,
           seed: int = 0, min_length=0) -> dict:
    """Samples each token from ``softmax(logits / temperature)``, optionally among the ``top_k`` best.

    Sampling is stateless and seeded: the same ``seed`` gives the same output.
    """
    seed = tf.cast(seed, tf.int64)

    def choose(logits, t):
        logits = logits / tf.cast(temperature, logits.dtype)
        # top_k may be a tensor (a per-request option of an exported signature); 0 means the whole vocabulary.
        if not isinstance(top_k, int) or top_k:
            vocab = tf.shape(logits)[-1]
            k = tf.cast(top_k, tf.int32)
            k = tf.where(k > 0, tf.minimum(k, vocab), vocab)
            kth = tf.math.top_k(logits, k=k).values[:, -1:]
            logits = tf.where(logits < kth, tf.cast(IMPOSSIBLE_SCORE, logits.dtype), logits)
        step_seed = tf.stack([seed, tf.cast(t, tf.int64)])
        return tf.random.stateless_categorical(logits, 1, seed=step_seed, dtype=tf.int32)[:, 0]

    return _sequential(step_fn, state, max_length, choose, min_length)


def _sequential(step_fn: StepFn, state: dict, max_length, choose: Callable, min_length=0) -> dict:
    """Shared loop of greedy search and sampling: ``choose(logits, t) -> ids``."""
    batch = tf.shape(next(iter(state.values())))[0]
    limits, max_length = per_input_limits(max_length, batch)
    has_alignment = ALIGNMENT in state
    source_length = tf.shape(state[ALIGNMENT])[1] if has_alignment else 0
    loop_vars = dict(
        t=tf.constant(0),
        ids=tf.fill([batch], tf.constant(F.BOS_ID, tf.int32)),
        tokens=tf.zeros([batch, max_length], tf.int32),
        finished=tf.zeros([batch], tf.bool),
        lengths=tf.zeros([batch], tf.int32),
        log_probs=tf.zeros([batch], tf.float32),
        alignment=tf.zeros([batch, max_length, source_length]) if has_alignment else tf.zeros([batch, 0, 0]),
        state=state,
    )

    def cond(v):
        done = tf.logical_or(v["finished"], v["t"] >= limits)
        return tf.logical_and(v["t"] < max_length, tf.logical_not(tf.reduce_all(done)))

    def body(v):
        logits, new_state = step_fn(v["ids"], v["state"])
        logits = ban_early_eos(tf.cast(logits, tf.float32), v["t"], min_length)  # scores in float32 (buffers)
        log_probs = tf.nn.log_softmax(logits)
        ids = tf.cast(choose(logits, v["t"]), tf.int32)
        # An input stops at </s> or at its own length limit, whatever else is in the batch.
        active = tf.logical_and(tf.logical_not(v["finished"]), v["t"] < limits)
        ids = tf.where(active, ids, tf.constant(F.PAD_ID, tf.int32))
        step_log_prob = tf.gather(log_probs, ids, batch_dims=1)
        out = dict(v)
        out["t"] = v["t"] + 1
        out["ids"] = ids
        out["tokens"] = write_at(v["tokens"], v["t"], ids)
        out["log_probs"] = v["log_probs"] + tf.where(active, step_log_prob, 0.0)
        out["lengths"] = v["lengths"] + tf.cast(tf.logical_and(active, ids != F.EOS_ID), tf.int32)
        out["finished"] = tf.logical_or(v["finished"], tf.logical_and(active, ids == F.EOS_ID))
        if has_alignment:
            step_alignment = new_state[ALIGNMENT] * tf.cast(active, tf.float32)[:, None]
            out["alignment"] = write_at(v["alignment"], v["t"], step_alignment)
        out["state"] = new_state
        return (out,)

    invariants = free_shapes(loop_vars)
    invariants["t"] = tf.TensorShape([])
    (v,) = tf.while_loop(cond, body, (loop_vars,), shape_invariants=(invariants,))
    result = dict(tokens=v["tokens"][:, None], lengths=v["lengths"][:, None], scores=v["log_probs"][:, None],
                  log_probs=v["log_probs"][:, None])
    if has_alignment:
        result[ALIGNMENT] = v["alignment"][:, None]
    return result
