"""Decoding in pure TensorFlow over one step contract, ``step_fn(ids, state) -> (logits, state)``.

``decode(step_fn, state, max_length, DecodeOptions(...))`` runs greedy search, beam search or sampling (see
``search`` and ``beam``), with the constraints of ``constraints``; ``regress`` is the real-valued loop of
forecasting.
"""

from tfs2s.core.decoding.beam import beam_search
from tfs2s.core.decoding.buffers import ALIGNMENT, IMPOSSIBLE_SCORE, StepFn
from tfs2s.core.decoding.constraints import block_repeated_ngrams, length_limits, length_penalty
from tfs2s.core.decoding.options import STRATEGIES, DecodeOptions
from tfs2s.core.decoding.regress import regress
from tfs2s.core.decoding.search import decode, greedy_search, sample

__all__ = ["ALIGNMENT", "IMPOSSIBLE_SCORE", "STRATEGIES", "DecodeOptions", "StepFn", "beam_search",
           "block_repeated_ngrams", "decode", "greedy_search", "length_limits", "length_penalty", "regress", "sample"]
