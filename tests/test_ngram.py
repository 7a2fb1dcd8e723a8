import math

import pytest

from tfs2s.core import features as F
from tfs2s.core.metrics import distinct_n
from tfs2s.apps.ngram import NgramLanguageModel

TRAIN = [s.split() for s in ["i am fine", "i am here", "you are fine", "we are here", "i am"]]


@pytest.mark.parametrize("order", [1, 2, 3])
def test_distributions_sum_to_one(order):
    lm = NgramLanguageModel(order).fit(TRAIN)
    events = sorted(lm.vocabulary | {F.UNK, F.EOS})
    for context in ([F.BOS, F.BOS], ["i", "am"], ["am", "fine"], ["never", "seen"]):
        total = sum(lm.probability(w, context) for w in events)
        assert total == pytest.approx(1.0, abs=1e-9)


def test_perplexity_prefers_seen_patterns_and_higher_orders_fit_better():
    unigram = NgramLanguageModel(1).fit(TRAIN)
    trigram = NgramLanguageModel(3).fit(TRAIN)
    seen, scrambled = [["i", "am", "fine"]], [["fine", "am", "i"]]
    assert trigram.perplexity(seen) < trigram.perplexity(scrambled)
    assert trigram.perplexity(seen) < unigram.perplexity(seen)
    # Unknown words are scored as <unk>, never as zero probability.
    assert math.isfinite(trigram.perplexity([["zebra", "am", "fine"]]))
    with pytest.raises(ValueError):
        NgramLanguageModel(3, discount=1.5)


def test_distinct_n():
    assert distinct_n([["a", "b", "a", "b"]], 1) == 0.5
    assert distinct_n([["a", "b", "a", "b"]], 2) == pytest.approx(2 / 3)
    assert distinct_n([["a"]], 2) == 0.0
