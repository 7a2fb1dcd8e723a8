"""Beam search with the GNMT length penalty, n-best output, and inputs leaving the loop once they are done.

The loop carries, per input still searching, ``k`` alive hypotheses and ``k`` finished ones (``hyps``, each
entry ``[A, k, ...]`` with ``A`` shrinking as inputs stop) and the results of the inputs that stopped
(``results``, ``[B, n_best, ...]``). Each step expands the alive hypotheses (``_expand``), and then retires the
inputs whose n-best list is final (``_retire``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.core.decoding.buffers import ALIGNMENT, IMPOSSIBLE_SCORE, StepFn, free_shapes, per_input_limits, write_at
from tfs2s.core.decoding.constraints import ban_early_eos, length_penalty


@dataclasses.dataclass(frozen=True)
class _Beam:
    """The settings of one beam search, which every part of its loop reads.

    Attributes:
        k: Beams per input (int or scalar int32 tensor).
        n_best: Hypotheses returned per input (int or scalar int32 tensor, at most ``k``).
        alpha: GNMT length-penalty exponent.
        min_length: ``</s>`` is forbidden before this many tokens.
        has_alignment: The step provides attention weights, which are collected.
    """

    k: Any
    n_best: Any
    alpha: Any
    min_length: Any
    has_alignment: bool


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
    beam = _Beam(k, n_best, length_penalty_alpha, min_length, ALIGNMENT in state)
    batch = tf.shape(next(iter(state.values())))[0]
    limits, max_length = per_input_limits(max_length, batch)
    source_length = tf.shape(state[ALIGNMENT])[1] if beam.has_alignment else 0
    state = {name: tf.repeat(value, k, axis=0) for name, value in state.items()}
    hyps, results = _start(beam, batch, limits, max_length, source_length)

    def body(v):
        t, h = v["t"], v["hyps"]
        logits, new_state = step_fn(v["ids"], v["state"])
        logits = tf.cast(logits, tf.float32)  # scores in float32 whatever the step's dtype (see buffers)
        h, ids, new_state = _expand(beam, t, h, logits, v["state"], new_state)
        hyps, ids, new_state, new_results = _retire(beam, t + 1, h, ids, new_state, v["results"])
        return (dict(t=t + 1, hyps=hyps, ids=ids, state=new_state, results=new_results),)

    def cond(v):
        return tf.logical_and(v["t"] < max_length, tf.shape(v["hyps"]["index"])[0] > 0)

    ids = tf.fill([batch * k], tf.constant(F.BOS_ID, tf.int32))
    hyps, ids, state, results = _retire(beam, tf.constant(0), hyps, ids, state, results)  # inputs with no room at all
    loop_vars = dict(t=tf.constant(0), hyps=hyps, ids=ids, state=state, results=results)
    invariants = free_shapes(loop_vars)
    invariants["t"] = tf.TensorShape([])
    (v,) = tf.while_loop(cond, body, (loop_vars,), shape_invariants=(invariants,))
    return v["results"]


def _start(beam: _Beam, batch, limits, max_length, source_length) -> tuple[dict, dict]:
    """The loop's first ``hyps`` (every input searching) and its empty ``results``."""
    k, n_best = beam.k, beam.n_best
    alignment_shape = [batch, k, max_length, source_length] if beam.has_alignment else [batch, k, 0, 0]
    # Only beam 0 is alive at first, so the k beams do not start as k copies of one hypothesis.
    first_alive = tf.concat([tf.zeros([1]), tf.fill([k - 1], IMPOSSIBLE_SCORE)], axis=0)
    # Per input still searching ([A, ...], A shrinking as inputs stop); `index` is the input's place in the batch.
    hyps = dict(
        index=tf.range(batch),
        limits=limits,
        max_penalty=length_penalty(limits, beam.alpha),
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
    if beam.has_alignment:
        results[ALIGNMENT] = tf.zeros([batch, n_best, max_length, source_length])
    return hyps, results


def _expand(beam: _Beam, t, h: dict, logits, state: dict, new_state: dict) -> tuple[dict, tf.Tensor, dict]:
    """Step ``t``: extends the alive hypotheses by one token each, keeps the best ``k`` that go on and merges the
    ones that ended into the finished ones.

    Returns:
        The new ``hyps``, the next step's input ids ``[A * k]`` and the step's new state, reordered to follow
        the surviving beams.
    """
    k, live = beam.k, tf.shape(h["index"])[0]
    c = _candidates(beam, t, h, ban_early_eos(logits, t, beam.min_length), new_state)

    # Alive: the best k candidates that did not end.
    alive_top = tf.math.top_k(tf.where(c["is_eos"], IMPOSSIBLE_SCORE, c["log_probs"]), k=k)
    alive_idx = alive_top.indices
    new_alive_beam = tf.gather(c["beam"], alive_idx, batch_dims=1)
    out = dict(h)
    out["alive_seq"] = tf.gather(c["seq"], alive_idx, batch_dims=1)
    out["alive_log_probs"] = alive_top.values
    out["alive_alignment"] = tf.gather(c["alignment"], alive_idx, batch_dims=1)
    ids = tf.reshape(tf.gather(c["token"], alive_idx, batch_dims=1), [-1])
    out.update(_merge_finished(beam, t, h, c))

    # Reorder the decoder state to follow the surviving beams. An entry the step returns unchanged (encoder
    # memory, keys, mask) still holds its tiled initial value, the same for every beam of an input, so it
    # needs no gather: this skips copying [A * k, S, H] tensors at every step.
    rows = tf.reshape(new_alive_beam + tf.range(live)[:, None] * k, [-1])
    new_state = {name: value if value is state[name] else tf.gather(value, rows) for name, value in new_state.items()}
    return out, ids, new_state


def _candidates(beam: _Beam, t, h: dict, logits, new_state: dict) -> dict:
    """The ``2k`` best one-token extensions of each input's alive hypotheses (``[A, 2k, ...]`` each): their
    ``log_probs``, source ``beam``, new ``token``, ``seq``, ``alignment`` and whether they end (``is_eos``)."""
    k, live = beam.k, tf.shape(h["index"])[0]
    vocab = tf.shape(logits)[-1]
    log_probs = tf.reshape(tf.nn.log_softmax(logits), [live, k, vocab])
    candidates = tf.reshape(h["alive_log_probs"][:, :, None] + log_probs, [live, k * vocab])
    top = tf.math.top_k(candidates, k=tf.minimum(2 * k, k * vocab))
    cand_beam = top.indices // vocab
    cand_token = top.indices % vocab
    if beam.has_alignment:
        step_alignment = tf.reshape(new_state[ALIGNMENT], [live, k, -1])
        cand_alignment = write_at(tf.gather(h["alive_alignment"], cand_beam, batch_dims=1), t,
                                  tf.gather(step_alignment, cand_beam, batch_dims=1), axis=2)
    else:
        cand_alignment = tf.zeros([live, tf.shape(cand_beam)[1], 0, 0])
    return dict(log_probs=top.values, beam=cand_beam, token=cand_token,
                seq=write_at(tf.gather(h["alive_seq"], cand_beam, batch_dims=1), t, cand_token, axis=2),
                alignment=cand_alignment, is_eos=tf.equal(cand_token, F.EOS_ID))


def _merge_finished(beam: _Beam, t, h: dict, c: dict) -> dict:
    """The ``finished_*`` entries after step ``t``: the best ``k`` of those kept so far and the candidates ``c``
    that ended."""
    ended_scores = tf.where(c["is_eos"], c["log_probs"] / length_penalty(t + 1, beam.alpha), IMPOSSIBLE_SCORE)
    fin_top = tf.math.top_k(tf.concat([h["finished_scores"], ended_scores], axis=1), k=beam.k)
    fin_idx = fin_top.indices

    def merged(kept, ended):
        return tf.gather(tf.concat([kept, ended], 1), fin_idx, batch_dims=1)

    return dict(
        finished_scores=fin_top.values,
        finished_seq=merged(h["finished_seq"], c["seq"]),
        finished_log_probs=merged(h["finished_log_probs"], tf.where(c["is_eos"], c["log_probs"], IMPOSSIBLE_SCORE)),
        finished_lengths=merged(h["finished_lengths"], tf.fill(tf.shape(c["token"]), t)),
        finished_alignment=merged(h["finished_alignment"], c["alignment"]),
    )


def _is_done(beam: _Beam, t, h: dict) -> tf.Tensor:
    """``[A]`` True for the inputs whose n-best list is final after ``t`` steps, or that reached their limit."""
    # An alive hypothesis's score can only fall as it grows, so its best possible final score is its
    # current log-probability over the largest length penalty it may reach.
    # Only the n_best returned hypotheses need to be final, not all k kept ones: this stops much earlier.
    best_alive = h["alive_log_probs"][:, 0] / h["max_penalty"]
    last_returned = tf.gather(h["finished_scores"], beam.n_best - 1, axis=1)
    final = tf.logical_and(last_returned > IMPOSSIBLE_SCORE / 2, best_alive < last_returned)
    return tf.logical_or(final, t >= h["limits"])


def _retire(beam: _Beam, t, h: dict, ids, state: dict, results: dict) -> tuple[dict, tf.Tensor, dict, dict]:
    """Writes out the inputs that are done after ``t`` steps and drops their rows from the loop."""
    done = _is_done(beam, t, h)

    def drop():
        stopped = tf.cast(tf.where(done)[:, 0], tf.int32)
        kept = tf.cast(tf.where(tf.logical_not(done))[:, 0], tf.int32)
        out = _n_best(beam, t, {name: tf.gather(value, stopped) for name, value in h.items()})
        at = tf.gather(h["index"], stopped)[:, None]
        new_results = {name: tf.tensor_scatter_nd_update(results[name], at, out[name]) for name in results}
        rows = tf.reshape(kept[:, None] * beam.k + tf.range(beam.k)[None, :], [-1])
        return ({name: tf.gather(value, kept) for name, value in h.items()}, tf.gather(ids, rows),
                {name: tf.gather(value, rows) for name, value in state.items()}, new_results)

    # Gathering the encoder memory costs a copy: only on the steps where some input stopped.
    return tf.cond(tf.reduce_any(done), drop, lambda: (h, ids, state, results))


def _n_best(beam: _Beam, t, h: dict) -> dict:
    """The n-best results of inputs ``h`` stopped after ``t`` steps; unfinished hypotheses complete the list
    (ranked after any finished one only if their normalised score is lower)."""
    steps = tf.broadcast_to(tf.minimum(t, h["limits"])[:, None], tf.shape(h["alive_log_probs"]))
    alive_scores = h["alive_log_probs"] / length_penalty(steps, beam.alpha)
    scores = tf.concat([h["finished_scores"], alive_scores], axis=1)
    top = tf.math.top_k(scores, k=beam.n_best).indices

    def ranked(finished, alive):
        return tf.gather(tf.concat([finished, alive], 1), top, batch_dims=1)

    out = dict(tokens=ranked(h["finished_seq"], h["alive_seq"]), lengths=ranked(h["finished_lengths"], steps),
               scores=tf.gather(scores, top, batch_dims=1),
               log_probs=ranked(h["finished_log_probs"], h["alive_log_probs"]))
    if beam.has_alignment:
        out[ALIGNMENT] = ranked(h["finished_alignment"], h["alive_alignment"])
    return out
