import math

import numpy as np

from tfs2s.core.metrics import Perplexity, TokenAccuracy, bleu_scores


def test_perplexity_and_accuracy_ignore_padding():
    logits = np.log(np.array([[[0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.9, 0.05, 0.05]]], "float32"))
    targets = np.array([[1, 2, 0]])
    ppl, acc = Perplexity(), TokenAccuracy()
    ppl.update_state(targets, logits)
    acc.update_state(targets, logits)
    np.testing.assert_allclose(float(ppl.result()), math.exp(-(math.log(0.6) + math.log(0.6)) / 2), rtol=1e-5)
    assert float(acc.result()) == 1.0
    ppl.reset_state()
    assert float(ppl.result()) == 1.0


def test_bleu_scores():
    refs = ["A man rides a bike down the street.", "Two dogs play in the snow."]
    perfect = bleu_scores(refs, refs)
    assert perfect["bleu"] == 100.0 and perfect["chrf"] == 100.0
    lower = bleu_scores([r.lower() for r in refs], refs)
    assert lower["bleu_lowercase"] == 100.0 and lower["bleu"] < 100.0
    assert bleu_scores(["nothing alike here", "zzz"], refs)["bleu"] < 5
    # The figures are sacrebleu's own corpus scores (13a tokenisation), rounded to two decimals.
    import sacrebleu

    hyps = ["A man rides a bike on the street.", "Two dogs play in snow."]
    scores = bleu_scores(hyps, refs)
    assert scores["bleu"] == round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)
    assert scores["chrf"] == round(sacrebleu.corpus_chrf(hyps, [refs]).score, 2)
    assert 0 < scores["bleu"] < 100 and scores["bleu_signature"].startswith("nrefs:1|case:mixed")
