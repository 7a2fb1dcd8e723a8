"""``DecodeOptions``: how to decode, as one typed object built from the config in one place."""

from __future__ import annotations

import dataclasses
from typing import Any

from tfs2s.core.errors import InputError

STRATEGIES = ("greedy", "beam", "sample")

# The options each strategy reads, besides the two constraints every strategy applies.
_CONSTRAINTS = ("no_repeat_ngram_size", "min_length")
_APPLIES = {"greedy": (), "beam": ("beam_width", "length_penalty", "n_best"),
            "sample": ("temperature", "top_k", "seed")}


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
    """Options of one decoding call (see ``tfs2s.core.decoding.decode``).

    Fields may hold Python numbers or scalar tensors (a serving signature passes per-request values).

    Attributes:
        strategy: ``greedy``, ``beam`` or ``sample``.
        beam_width: Beams kept by beam search.
        length_penalty: GNMT length-penalty exponent alpha (beam search; 0 = none).
        n_best: Hypotheses returned per input (beam search; at most ``beam_width``).
        temperature: Sampling temperature.
        top_k: Sample from the k most likely tokens (0 = the whole vocabulary).
        seed: Seed of the stateless sampler.
        no_repeat_ngram_size: Forbid repeating any n-gram of this size (0 = allowed), every strategy.
        min_length: Forbid ``</s>`` before this many tokens, every strategy.
    """

    strategy: str = "greedy"
    beam_width: Any = 5
    length_penalty: Any = 0.0
    n_best: Any = 1
    temperature: Any = 1.0
    top_k: Any = 0
    seed: Any = 0
    no_repeat_ngram_size: int = 0
    min_length: Any = 0

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise InputError(f"unknown decoding strategy {self.strategy!r}; choose {', '.join(STRATEGIES)}")

    @classmethod
    def from_config(cls, decoding, strategy: str | None = None, **overrides: Any) -> "DecodeOptions":
        """The options of ``strategy`` (default: the config's) from a ``DecodingConfig``, with ``overrides``.

        Raises:
            InputError: An unknown strategy, or an override that does not apply to the strategy.
        """
        strategy = strategy or decoding.strategy
        if strategy not in STRATEGIES:
            raise InputError(f"unknown decoding strategy {strategy!r}; choose {', '.join(STRATEGIES)}")
        valid = _APPLIES[strategy] + _CONSTRAINTS
        unknown = sorted(set(overrides) - set(valid))
        if unknown:
            raise InputError(f"option(s) {unknown} do not apply to {strategy}; valid: {sorted(valid)}")
        values = {name: getattr(decoding, name) for name in valid if name != "seed"}
        return cls(strategy=strategy, **{**values, **overrides})

    def replace(self, **changes: Any) -> "DecodeOptions":
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def key(self) -> tuple:
        """A hashable identity (for caching traced functions); only for options of Python values."""
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))
