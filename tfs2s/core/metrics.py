"""Evaluation: token-level Keras metrics, sacrebleu BLEU/chrF and distinct-n (heatmaps: ``tfs2s.core.plots``)."""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

from tfs2s.core import features as F


class _MaskedTokenMean(keras.metrics.Metric):
    """Mean of a per-token value over non-padding targets; subclasses define ``token_values`` and may
    transform the mean in ``finish``."""

    def __init__(self, name: str, **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.tokens = self.add_variable(shape=(), initializer="zeros", name="tokens")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        weight = ops.cast(ops.not_equal(y_true, F.PAD_ID), "float32")
        if sample_weight is not None:
            weight = weight * ops.cast(sample_weight, "float32")
        self.total.assign_add(ops.sum(self.token_values(y_true, ops.cast(y_pred, "float32")) * weight))
        self.tokens.assign_add(ops.sum(weight))

    def finish(self, mean):
        return mean

    def result(self):
        return self.finish(self.total / ops.maximum(self.tokens, 1.0))

    def reset_state(self):
        self.total.assign(0.0)
        self.tokens.assign(0.0)


@keras.saving.register_keras_serializable(package="tfs2s")
class Perplexity(_MaskedTokenMean):
    """``exp`` of the mean token negative log-likelihood over non-padding targets (no label smoothing)."""

    def __init__(self, name: str = "perplexity", **kwargs):
        super().__init__(name=name, **kwargs)

    def token_values(self, y_true, logits):
        log_probs = ops.log_softmax(logits, axis=-1)
        return -ops.squeeze(ops.take_along_axis(log_probs, ops.expand_dims(y_true, -1), axis=-1), -1)

    def finish(self, mean):
        return ops.exp(mean)


@keras.saving.register_keras_serializable(package="tfs2s")
class TokenAccuracy(_MaskedTokenMean):
    """Fraction of non-padding target tokens whose arg-max prediction is right."""

    def __init__(self, name: str = "token_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def token_values(self, y_true, logits):
        return ops.cast(ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), y_true), "float32")


def bleu_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """Corpus BLEU (cased and lowercased, sacrebleu's 13a tokenisation) and chrF on detokenised text.

    Returns:
        ``{"bleu", "bleu_lowercase", "chrf", "bleu_signature"}``.
    """
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    hypotheses, refs = list(hypotheses), [list(references)]
    bleu = sacrebleu.metrics.BLEU()
    cased = bleu.corpus_score(hypotheses, refs)
    lower = sacrebleu.metrics.BLEU(lowercase=True).corpus_score(hypotheses, refs)
    chrf = sacrebleu.metrics.CHRF().corpus_score(hypotheses, refs)
    return {"bleu": round(cased.score, 2), "bleu_lowercase": round(lower.score, 2), "chrf": round(chrf.score, 2),
            "bleu_signature": str(bleu.get_signature())}


def distinct_n(sentences: Sequence[Sequence[str]], n: int) -> float:
    """distinct-n (Li et al. 2016): distinct n-grams over all n-grams in tokenised responses (0 when none).

    Low values mean dull, repetitive replies ("I don't know" to everything).
    """
    grams = [tuple(s[i:i + n]) for s in sentences for i in range(len(s) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0
