"""Decoding in pure TensorFlow over one step contract.

A step function ``step_fn(ids, state) -> (logits, state)`` maps the previous token ids ``[N]`` and a dict of
state tensors (each ``[N, ...]``) to next-token logits ``[N, V]`` and the new state. If the state holds an
``"alignment"`` entry ``[N, S]`` (attention weights of the step just taken), decoders collect it.

``greedy_search``, ``sample`` and ``beam_search`` are graph-friendly (``tf.while_loop``, static-rank buffers
updated in place, no ``TensorArray`` and no per-token Python loop), and all return a dict:

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

import numpy as np
import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.core.decoding.options import DecodeOptions

StepFn = Callable[[tf.Tensor, dict], tuple[tf.Tensor, dict]]
IMPOSSIBLE_SCORE = -1e9  # "impossible" score; finite so that 0 * IMPOSSIBLE_SCORE never makes NaN
ALIGNMENT = "alignment"


def length_penalty(length, alpha: float):
    """GNMT length penalty ``((5 + length) / 6) ** alpha`` (Wu et al. 2016)."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def length_limits(source_lengths, ratio: float, offset: int) -> tf.Tensor:
    """Per-input output length limits ``ceil(ratio * source_length) + offset`` (``[B]`` int32), the
    ``max_length`` every search takes (``DecodingConfig.max_length_ratio`` / ``max_length_offset``)."""
    lengths = tf.cast(source_lengths, tf.float32)
    return tf.cast(tf.math.ceil(ratio * lengths), tf.int32) + offset


def _write(buffer, t, values, axis: int = 1):
    """``buffer[..., t, ...] = values`` along ``axis``, as a one-hot sum (XLA- and ONNX-friendly).

    ``values`` has the shape of ``buffer`` without ``axis``.
    """
    rank = len(buffer.shape)
    # `range == t` rather than tf.one_hot: tf2onnx cannot convert a one-hot of a scalar index.
    one_hot = tf.cast(tf.equal(tf.range(tf.shape(buffer)[axis]), t), buffer.dtype)
    one_hot = tf.reshape(one_hot, [1] * axis + [-1] + [1] * (rank - axis - 1))
    return buffer + one_hot * tf.expand_dims(values, axis)


def _limits(max_length, batch):
    """Per-input length limits ``[B]`` from a scalar or ``[B]`` ``max_length``, and the loop's limit (their max)."""
    max_length = tf.cast(max_length, tf.int32)
    if max_length.shape.rank == 0:
        return tf.fill([batch], max_length), max_length
    return max_length, tf.reduce_max(tf.concat([[0], max_length], axis=0))  # 0 for an empty batch


def _ban_early_eos(logits, t, min_length):
    """Forbids ``</s>`` before ``min_length`` tokens (an empty output is never a translation or a reply)."""
    if isinstance(min_length, int) and not min_length:
        return logits
    vocab = logits.shape[-1]
    if vocab is None:
        eos = tf.equal(tf.range(tf.shape(logits)[-1]), F.EOS_ID)  # not tf.one_hot: see _write
    else:  # a constant: nothing rebuilt at every step of a decoding loop
        eos = tf.constant(np.arange(vocab) == F.EOS_ID)
    return tf.where(tf.logical_and(t < min_length, eos)[None, :], tf.cast(IMPOSSIBLE_SCORE, logits.dtype), logits)


def _shape_invariants(state: dict) -> dict:
    return {k: tf.TensorShape([None] * len(v.shape)) for k, v in state.items()}


def _sequential(step_fn: StepFn, state: dict, max_length, choose: Callable, min_length=0) -> dict:
    """Shared loop of greedy search and sampling: ``choose(logits, t) -> ids``."""
    batch = tf.shape(next(iter(state.values())))[0]
    limits, max_length = _limits(max_length, batch)
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
        logits = _ban_early_eos(logits, v["t"], min_length)
        log_probs = tf.nn.log_softmax(logits)
        ids = tf.cast(choose(logits, v["t"]), tf.int32)
        # An input stops at </s> or at its own length limit, whatever else is in the batch.
        active = tf.logical_and(tf.logical_not(v["finished"]), v["t"] < limits)
        ids = tf.where(active, ids, tf.constant(F.PAD_ID, tf.int32))
        step_log_prob = tf.gather(log_probs, ids, batch_dims=1)
        out = dict(v)
        out["t"] = v["t"] + 1
        out["ids"] = ids
        out["tokens"] = _write(v["tokens"], v["t"], ids)
        out["log_probs"] = v["log_probs"] + tf.where(active, step_log_prob, 0.0)
        out["lengths"] = v["lengths"] + tf.cast(tf.logical_and(active, ids != F.EOS_ID), tf.int32)
        out["finished"] = tf.logical_or(v["finished"], tf.logical_and(active, ids == F.EOS_ID))
        if has_alignment:
            step_alignment = new_state[ALIGNMENT] * tf.cast(active, tf.float32)[:, None]
            out["alignment"] = _write(v["alignment"], v["t"], step_alignment)
        out["state"] = new_state
        return (out,)

    invariants = {k: tf.TensorShape([None] * len(val.shape)) for k, val in loop_vars.items()
                  if k not in ("t", "state")}
    invariants.update(t=tf.TensorShape([]), state=_shape_invariants(state))
    (v,) = tf.while_loop(cond, body, (loop_vars,), shape_invariants=(invariants,))
    result = dict(tokens=v["tokens"][:, None], lengths=v["lengths"][:, None], scores=v["log_probs"][:, None],
                  log_probs=v["log_probs"][:, None])
    if has_alignment:
        result[ALIGNMENT] = v["alignment"][:, None]
    return result


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


def _tile(x, k):
    return tf.repeat(x, k, axis=0)


def beam_search(step_fn: StepFn, state: dict, max_length, beam_width: int = 5, length_penalty_alpha: float = 0.0,
                n_best: int = 1, min_length=0) -> dict:
    """Beam search with the GNMT length penalty and n-best output.

    Keeps ``beam_width`` alive hypotheses and ``beam_width`` finished ones (ended by ``</s>``), ranking finished
    ones by ``log_prob / length_penalty(length)`` where ``length`` counts the generated tokens with ``</s>``.
    An input stops, at the latest at its length limit, once none of its alive hypotheses can still beat its
    ``n_best``-th finished one: its n-best list is then final (a hypothesis's log-probability only falls as it
    grows, so its best possible score is bounded with the largest length penalty). Inputs with fewer than
    ``n_best`` finished hypotheses are completed with the best unfinished ones.

    A stopped input leaves the loop: its result is written out and its rows are dropped from the batch the step
    function sees, so later steps only pay for the inputs still searching (in a batch of 64 Multi30k sentences,
    about half of the rows of the longest input's steps). Results do not depend on the other inputs of a batch.

    Args:
        step_fn: The step function.
        state: Initial state (each tensor ``[B, ...]``); tiled to ``[B * beam_width, ...]`` here.
        max_length: Largest number of tokens to generate: a scalar, or ``[B]`` per-input limits.
        beam_width: Hypotheses kept per input (int or scalar tensor).
        length_penalty_alpha: GNMT alpha; 0 ranks by plain log-probability.
        n_best: Hypotheses returned per input (``<= beam_width``; int or scalar tensor).
        min_length: ``</s>`` is forbidden before this many tokens.
    """
    if isinstance(n_best, int) and isinstance(beam_width, int) and n_best > beam_width:
        raise ValueError(f"n_best ({n_best}) cannot exceed beam_width ({beam_width})")
    # Both may be scalar tensors (per-request options of an exported signature).
    k = beam_width if isinstance(beam_width, int) else tf.cast(beam_width, tf.int32)
    n_best = n_best if isinstance(n_best, int) else tf.minimum(tf.cast(n_best, tf.int32), k)
    batch = tf.shape(next(iter(state.values())))[0]
    limits, max_length = _limits(max_length, batch)
    has_alignment = ALIGNMENT in state
    source_length = tf.shape(state[ALIGNMENT])[1] if has_alignment else 0
    state = {name: _tile(value, k) for name, value in state.items()}
    alignment_shape = [batch, k, max_length, source_length] if has_alignment else [batch, k, 0, 0]
    # Only beam 0 is alive at first, so the k beams do not start as k copies of one hypothesis.
    first_alive = tf.concat([tf.zeros([1]), tf.fill([k - 1], IMPOSSIBLE_SCORE)], axis=0)
    # Per input still searching ([A, ...], A shrinking as inputs stop); `index` is the input's place in the batch.
    hyps = dict(
        index=tf.range(batch),
        limits=limits,
        max_penalty=length_penalty(limits, length_penalty_alpha),
        alive_seq=tf.zeros([batch, k, max_length], tf.int32),
        alive_log_probs=tf.tile(first_alive[None], [batch, 1]),
        alive_alignment=tf.zeros(alignment_shape),
        finished_seq=tf.zeros([batch, k, max_length], tf.int32),
        finished_scores=tf.fill([batch, k], IMPOSSIBLE_SCORE),
        finished_log_probs=tf.fill([batch, k], IMPOSSIBLE_SCORE),
        finished_lengths=tf.zeros([batch, k], tf.int32),
        finished_alignment=tf.zeros(alignment_shape),
    )
    # Results of the inputs that stopped, written at their place in the batch.
    results = dict(tokens=tf.zeros([batch, n_best, max_length], tf.int32), lengths=tf.zeros([batch, n_best], tf.int32),
                   scores=tf.zeros([batch, n_best]), log_probs=tf.zeros([batch, n_best]))
    if has_alignment:
        results[ALIGNMENT] = tf.zeros([batch, n_best, max_length, source_length])

    def best(h, t):
        """The n-best results of inputs ``h`` stopped after ``t`` steps; unfinished hypotheses complete the list
        (ranked after any finished one only if their normalised score is lower)."""
        steps = tf.broadcast_to(tf.minimum(t, h["limits"])[:, None], tf.shape(h["alive_log_probs"]))
        alive_scores = h["alive_log_probs"] / length_penalty(steps, length_penalty_alpha)
        scores = tf.concat([h["finished_scores"], alive_scores], axis=1)
        top = tf.math.top_k(scores, k=n_best).indices
        out = dict(
            tokens=tf.gather(tf.concat([h["finished_seq"], h["alive_seq"]], 1), top, batch_dims=1),
            lengths=tf.gather(tf.concat([h["finished_lengths"], steps], 1), top, batch_dims=1),
            scores=tf.gather(scores, top, batch_dims=1),
            log_probs=tf.gather(tf.concat([h["finished_log_probs"], h["alive_log_probs"]], 1), top, batch_dims=1),
        )
        if has_alignment:
            out[ALIGNMENT] = tf.gather(tf.concat([h["finished_alignment"], h["alive_alignment"]], 1), top,
                                       batch_dims=1)
        return out

    def retire(t, h, ids, state, results):
        """Writes out the inputs that are done after ``t`` steps and drops their rows from the loop."""
        # An alive hypothesis's score can only fall as it grows, so its best possible final score is its
        # current log-probability over the largest length penalty it may reach.
        # Only the n_best returned hypotheses need to be final, not all k kept ones: this stops much earlier.
        best_alive = h["alive_log_probs"][:, 0] / h["max_penalty"]
        last_returned = tf.gather(h["finished_scores"], n_best - 1, axis=1)
        final = tf.logical_and(last_returned > IMPOSSIBLE_SCORE / 2, best_alive < last_returned)
        done = tf.logical_or(final, t >= h["limits"])

        def drop():
            stopped = tf.cast(tf.where(done)[:, 0], tf.int32)
            kept = tf.cast(tf.where(tf.logical_not(done))[:, 0], tf.int32)
            out = best({name: tf.gather(value, stopped) for name, value in h.items()}, t)
            at = tf.gather(h["index"], stopped)[:, None]
            new_results = {name: tf.tensor_scatter_nd_update(results[name], at, out[name]) for name in results}
            rows = tf.reshape(kept[:, None] * k + tf.range(k)[None, :], [-1])
            return ({name: tf.gather(value, kept) for name, value in h.items()}, tf.gather(ids, rows),
                    {name: tf.gather(value, rows) for name, value in state.items()}, new_results)

        # Gathering the encoder memory costs a copy: only on the steps where some input stopped.
        return tf.cond(tf.reduce_any(done), drop, lambda: (h, ids, state, results))

    def body(v):
        t, h = v["t"], v["hyps"]
        live = tf.shape(h["index"])[0]
        logits, new_state = step_fn(v["ids"], v["state"])
        logits = _ban_early_eos(logits, t, min_length)
        vocab = tf.shape(logits)[-1]
        log_probs = tf.reshape(tf.nn.log_softmax(logits), [live, k, vocab])
        candidates = tf.reshape(h["alive_log_probs"][:, :, None] + log_probs, [live, k * vocab])
        top = tf.math.top_k(candidates, k=tf.minimum(2 * k, k * vocab))
        cand_log_probs = top.values
        cand_beam = top.indices // vocab
        cand_token = top.indices % vocab
        cand_seq = _write(tf.gather(h["alive_seq"], cand_beam, batch_dims=1), t, cand_token, axis=2)
        is_eos = tf.equal(cand_token, F.EOS_ID)

        if has_alignment:
            step_alignment = tf.reshape(new_state[ALIGNMENT], [live, k, -1])
            cand_alignment = _write(tf.gather(h["alive_alignment"], cand_beam, batch_dims=1), t,
                                    tf.gather(step_alignment, cand_beam, batch_dims=1), axis=2)
        else:
            cand_alignment = tf.zeros([live, tf.shape(cand_beam)[1], 0, 0])

        # Alive: the best k candidates that did not end.
        alive_scores = tf.where(is_eos, IMPOSSIBLE_SCORE, cand_log_probs)
        alive_top = tf.math.top_k(alive_scores, k=k)
        alive_idx = alive_top.indices
        new_alive_beam = tf.gather(cand_beam, alive_idx, batch_dims=1)
        out = dict(h)
        out["alive_seq"] = tf.gather(cand_seq, alive_idx, batch_dims=1)
        out["alive_log_probs"] = alive_top.values
        out["alive_alignment"] = tf.gather(cand_alignment, alive_idx, batch_dims=1)
        ids = tf.reshape(tf.gather(cand_token, alive_idx, batch_dims=1), [-1])

        # Finished: merge the candidates that ended with those kept so far, keep the best k.
        ended_scores = tf.where(is_eos, cand_log_probs / length_penalty(t + 1, length_penalty_alpha), IMPOSSIBLE_SCORE)
        all_scores = tf.concat([h["finished_scores"], ended_scores], axis=1)
        fin_top = tf.math.top_k(all_scores, k=k)
        fin_idx = fin_top.indices
        out["finished_scores"] = fin_top.values
        out["finished_seq"] = tf.gather(tf.concat([h["finished_seq"], cand_seq], 1), fin_idx, batch_dims=1)
        out["finished_log_probs"] = tf.gather(
            tf.concat([h["finished_log_probs"], tf.where(is_eos, cand_log_probs, IMPOSSIBLE_SCORE)], 1), fin_idx,
            batch_dims=1)
        out["finished_lengths"] = tf.gather(
            tf.concat([h["finished_lengths"], tf.fill(tf.shape(cand_token), t)], 1), fin_idx, batch_dims=1)
        out["finished_alignment"] = tf.gather(tf.concat([h["finished_alignment"], cand_alignment], 1), fin_idx,
                                              batch_dims=1)

        # Reorder the decoder state to follow the surviving beams. An entry the step returns unchanged (encoder
        # memory, keys, mask) still holds its tiled initial value, the same for every beam of an input, so it
        # needs no gather: this skips copying [A * k, S, H] tensors at every step.
        rows = tf.reshape(new_alive_beam + tf.range(live)[:, None] * k, [-1])
        new_state = {name: value if value is v["state"][name] else tf.gather(value, rows)
                     for name, value in new_state.items()}
        hyps, ids, new_state, new_results = retire(t + 1, out, ids, new_state, v["results"])
        return (dict(t=t + 1, hyps=hyps, ids=ids, state=new_state, results=new_results),)

    def cond(v):
        return tf.logical_and(v["t"] < max_length, tf.shape(v["hyps"]["index"])[0] > 0)

    ids = tf.fill([batch * k], tf.constant(F.BOS_ID, tf.int32))
    hyps, ids, state, results = retire(tf.constant(0), hyps, ids, state, results)  # inputs with no room at all
    loop_vars = dict(t=tf.constant(0), hyps=hyps, ids=ids, state=state, results=results)
    invariants = tf.nest.map_structure(lambda x: tf.TensorShape([None] * len(x.shape)), loop_vars)
    invariants["t"] = tf.TensorShape([])
    (v,) = tf.while_loop(cond, body, (loop_vars,), shape_invariants=(invariants,))
    return v["results"]


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
    _, loop_length = _limits(max_length, batch)
    state = dict(state, **{_HISTORY: tf.zeros([batch, loop_length + 1], tf.int32), _STEP: tf.zeros([batch], tf.int32)})

    def wrapped(ids, state):
        history, t = state[_HISTORY], state[_STEP]
        positions = tf.range(tf.shape(history)[1])
        history = tf.where(positions[None, :] == t[:, None], tf.cast(ids, tf.int32)[:, None], history)
        inner = {k: v for k, v in state.items() if k not in (_HISTORY, _STEP)}
        logits, new_state = step_fn(ids, inner)
        length = t + 1  # tokens in the history, the current input included
        # Window j matches when history[j : j + n - 1] equals the last n - 1 tokens; it then bans history[j + n - 1].
        last = length[:, None] - (n - 1) + tf.range(n - 1)[None, :]  # [N, n - 1] positions of the suffix
        suffix = tf.gather(history, tf.maximum(last, 0), batch_dims=1)
        width = tf.shape(history)[1]
        match = (positions[None, :] + n - 1) < length[:, None]  # the banned token lies inside the history
        padded = tf.concat([history, tf.zeros([tf.shape(history)[0], n], tf.int32)], axis=1)
        for k in range(n - 1):
            match = tf.logical_and(match, padded[:, k:k + width] == suffix[:, k:k + 1])
        following = padded[:, n - 1:n - 1 + width]  # [N, L] the token after each window
        vocab = tf.shape(logits)[-1]
        banned = tf.reduce_any(tf.logical_and(match[:, :, None], following[:, :, None] == tf.range(vocab)[None, None, :]),
                               axis=1)
        logits = tf.where(banned, tf.cast(IMPOSSIBLE_SCORE, logits.dtype), logits)
        new_state = dict(new_state, **{_HISTORY: history, _STEP: length})
        return logits, new_state

    return wrapped, state


def decode(step_fn: StepFn, state: dict, max_length, options: DecodeOptions) -> dict:
    """Decodes with ``options.strategy``: ``greedy_search``, ``beam_search`` or ``sample``.

    ``options.no_repeat_ngram_size > 0`` forbids repeating any n-gram of that size (see ``block_repeated_ngrams``).
    """
    o = options
    if o.no_repeat_ngram_size:
        step_fn, state = block_repeated_ngrams(step_fn, state, max_length, o.no_repeat_ngram_size)
    if o.strategy == "beam":
        return beam_search(step_fn, state, max_length, o.beam_width, o.length_penalty, o.n_best, o.min_length)
    if o.strategy == "sample":
        return sample(step_fn, state, max_length, o.temperature, o.top_k, o.seed, o.min_length)
    return greedy_search(step_fn, state, max_length, o.min_length)


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
