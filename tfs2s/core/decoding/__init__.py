"""Decoding in pure TensorFlow over one step contract, ``step_fn(ids, state) -> (logits, state)``.

``decode(step_fn, state, max_length, DecodeOptions(...))`` runs greedy search, beam search or sampling (see
``search``); ``regress`` is the real-valued loop of forecasting.
"""

from tfs2s.core.decoding.options import STRATEGIES, DecodeOptions
from tfs2s.core.decoding.search import (ALIGNMENT, IMPOSSIBLE_SCORE, StepFn, beam_search, block_repeated_ngrams,
                                        decode, greedy_search, length_limits, length_penalty, regress, sample)

__all__ = ["ALIGNMENT", "IMPOSSIBLE_SCORE", "STRATEGIES", "DecodeOptions", "StepFn", "beam_search",
           "block_repeated_ngrams", "decode", "greedy_search", "length_limits", "length_penalty", "regress", "sample"]
