"""A smoothed n-gram language model: the baseline a conversational model's perplexity is compared with.

Vinyals & Le (2015) compare their model's perplexity on responses with an n-gram model's (8 vs 18 on IT helpdesk
data). ``NgramLanguageModel`` is interpolated Kneser-Ney (Chen & Goodman 1998, one discount per order), over the
same word tokens and vocabulary as the seq2seq target side: out-of-vocabulary words become ``<unk>`` and every
sentence ends with ``</s>``, which is scored, as the seq2seq model's perplexity does.
"""

from __future__ import annotations

import collections
import math
from typing import Iterable, Sequence

from tfs2s.core import features as F


class NgramLanguageModel:
    """Interpolated Kneser-Ney n-gram model over token lists.

    Args:
        order: n (2 = bigram, 3 = trigram ...).
        discount: Absolute discount ``D`` in ``(0, 1)``.
        vocabulary: Known words; others map to ``<unk>``. Default: every training word.
    """

    def __init__(self, order: int = 3, discount: float = 0.75, vocabulary: Iterable[str] | None = None):
        if order < 1:
            raise ValueError(f"order must be at least 1, got {order}")
        if not 0.0 < discount < 1.0:
            raise ValueError(f"discount must be in (0, 1), got {discount}")
        self.order = order
        self.discount = discount
        self.vocabulary = set(vocabulary) if vocabulary is not None else None
        # Per order k (1..n): counts[(context, word)], totals[context], types[context] (distinct followers).
        self._counts = [collections.Counter() for _ in range(order + 1)]
        self._totals = [collections.Counter() for _ in range(order + 1)]
        self._types = [collections.Counter() for _ in range(order + 1)]
        self._size = 0

    def _tokens(self, sentence: Sequence[str]) -> list[str]:
        known = self.vocabulary
        words = [w if known is None or w in known else F.UNK for w in sentence]
        return [F.BOS] * (self.order - 1) + words + [F.EOS]

    def fit(self, sentences: Iterable[Sequence[str]]) -> "NgramLanguageModel":
        """Counts n-grams in tokenised sentences (lists of words)."""
        sentences = [list(s) for s in sentences]
        if self.vocabulary is None:
            self.vocabulary = {w for s in sentences for w in s}
        n = self.order
        highest = collections.Counter()
        for sentence in sentences:
            tokens = self._tokens(sentence)
            for i in range(n - 1, len(tokens)):
                highest[tuple(tokens[i - n + 1:i + 1])] += 1
        # Highest order: raw counts; lower orders: continuation counts (distinct left extensions).
        grams = highest
        for k in range(n, 0, -1):
            for gram, count in grams.items():
                context, word = gram[:-1], gram[-1]
                self._counts[k][(context, word)] = count
                self._totals[k][context] += count
                self._types[k][context] += 1
            if k > 1:
                lower = collections.Counter()
                for gram in grams:
                    lower[gram[1:]] += 1
                grams = lower
        # <unk> and </s> are always in the event space; <s> is never predicted.
        self._size = len(self.vocabulary | {F.UNK, F.EOS})
        return self

    def probability(self, word: str, context: Sequence[str]) -> float:
        """``P(word | context)``; ``context`` is the previous ``order - 1`` tokens (``<s>`` padded)."""
        if not self._size:
            raise RuntimeError("fit the model first")
        return self._probability(word, tuple(context[len(context) - self.order + 1:] if self.order > 1 else ()),
                                 self.order)

    def _probability(self, word: str, context: tuple, k: int) -> float:
        if k == 0:
            return 1.0 / self._size
        total = self._totals[k].get(context, 0)
        lower = self._probability(word, context[1:], k - 1)
        if not total:
            return lower
        count = self._counts[k].get((context, word), 0)
        return (max(count - self.discount, 0.0) + self.discount * self._types[k][context] * lower) / total

    def log_likelihood(self, sentence: Sequence[str]) -> tuple[float, int]:
        """(natural-log probability of the sentence with ``</s>``, number of scored tokens)."""
        tokens = self._tokens(sentence)
        n = self.order
        total = 0.0
        for i in range(n - 1, len(tokens)):
            total += math.log(self._probability(tokens[i], tuple(tokens[i - n + 1:i]), n))
        return total, len(tokens) - (n - 1)

    def perplexity(self, sentences: Iterable[Sequence[str]]) -> float:
        """``exp`` of the mean negative log-likelihood per token (``</s>`` included) over ``sentences``."""
        log_prob, tokens = 0.0, 0
        for sentence in sentences:
            lp, n = self.log_likelihood(sentence)
            log_prob += lp
            tokens += n
        if not tokens:
            raise ValueError("no sentences to score")
        return math.exp(-log_prob / tokens)
