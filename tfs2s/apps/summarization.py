"""Evaluating a summarizer: ROUGE of its summaries next to the lead and random-sentence baselines."""

from __future__ import annotations

import random
import re
from typing import Sequence

from tfs2s.tasks.text.predictor import Translator

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def rouge_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """Mean ROUGE-1/2/L F1 (x 100) with the ``rouge-score`` package (its tokenizer lowercases; Porter stemming)."""
    from rouge_score import rouge_scorer  # optional dependency: only summarization needs it

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for hypothesis, reference in zip(hypotheses, references):
        for name, score in scorer.score(reference, hypothesis).items():
            totals[name] += score.fmeasure
    n = max(len(hypotheses), 1)
    return {name: round(100.0 * total / n, 2) for name, total in totals.items()}


def rouge_against_several(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict:
    """ROUGE-1/2/L F1 (x 100) of each hypothesis against several references: ``{"mean": ..., "best": ...}``, the
    mean over a hypothesis' references and the best of them, each averaged over the hypotheses (those without a
    reference are left out; ``"hypotheses"`` counts the rest)."""
    from rouge_score import rouge_scorer  # optional dependency: only summarization needs it

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"mean": dict.fromkeys(("rouge1", "rouge2", "rougeL"), 0.0),
              "best": dict.fromkeys(("rouge1", "rouge2", "rougeL"), 0.0)}
    scored = [(h, refs) for h, refs in zip(hypotheses, references) if refs]
    for hypothesis, refs in scored:
        for key in totals["mean"]:
            values = [scorer.score(ref, hypothesis)[key].fmeasure for ref in refs]
            totals["mean"][key] += sum(values) / len(values)
            totals["best"][key] += max(values)
    n = max(1, len(scored))
    return {kind: {k: round(100 * v / n, 2) for k, v in scores.items()} for kind, scores in totals.items()} | {
        "hypotheses": len(scored)}


def lead(documents: Sequence[str], words: int) -> list[str]:
    """The lead baseline: the first ``words`` words of each document."""
    return [" ".join(d.split()[:words]) for d in documents]


def random_sentence(documents: Sequence[str], seed: int = 0) -> list[str]:
    """The random-sentence baseline: one sentence of each document, chosen with a seeded generator."""
    rng = random.Random(seed)
    out = []
    for document in documents:
        sentences = [s for s in _SENTENCE_END.split(document) if s.strip()] or [""]
        out.append(rng.choice(sentences))
    return out


def evaluate_summaries(translator: Translator, train_pairs: Sequence[tuple[str, str]],
                       pairs: Sequence[tuple[str, str]], batch_size: int = 64, seed: int = 0,
                       annotations: Sequence[Sequence[str]] | None = None) -> dict:
    """ROUGE-1/2/L F1 of the model's summaries next to the lead and random-sentence baselines, same pairs.

    The lead baseline takes the first N words of each document, N being the median summary length (in words)
    of the training pairs. The model decodes with the configured strategy, with and (word-level models with
    attention) without replacing ``<unk>`` by the attended source word.

    Args:
        annotations: Further references per pair (AESLC's human-written subjects), scored as well.

    Returns:
        ``{"documents", "lead_words", "model": {...}, "model_unk_replaced": {...}, "lead": {...},
        "random_sentence": {...}, "examples"}``; each score dict is ``{"rouge1", "rouge2", "rougeL"}``. With
        ``annotations`` also ``"annotations": {"model", "lead", "original_subject", "first_annotator"}``
        (``rouge_against_several``; the model's default output, ``<unk>`` replaced where it can be; the pairs' own
        summaries; each first annotation against the others).
    """
    documents, references = [d for d, _ in pairs], [s for _, s in pairs]
    lengths = sorted(len(s.split()) for _, s in train_pairs) or [1]
    lead_words = max(1, lengths[len(lengths) // 2])
    results: dict = {"documents": len(pairs), "lead_words": lead_words}
    # The model's own output first (replacement is the default where it applies), then with <unk> replaced.
    summaries = translator.translate(documents, batch_size=batch_size,
                                     **({"replace_unknown": False} if translator.can_replace_unknown else {}))
    results["model"] = rouge_scores(summaries, references)
    if translator.can_replace_unknown:
        replaced = translator.translate(documents, batch_size=batch_size, replace_unknown=True)
        results["model_unk_replaced"] = rouge_scores(replaced, references)
        results["unk_replaced_summaries"] = sum(a != b for a, b in zip(summaries, replaced))
    else:
        replaced = summaries
    results["lead"] = rouge_scores(lead(documents, lead_words), references)
    if annotations is not None:
        # Human reference points: the emails' own subjects, and the first annotator against the others.
        results["annotations"] = {"model": rouge_against_several(replaced, annotations),
                                  "lead": rouge_against_several(lead(documents, lead_words), annotations),
                                  "original_subject": rouge_against_several(references, annotations),
                                  "first_annotator": rouge_against_several([a[0] if a else "" for a in annotations],
                                                                           [a[1:] for a in annotations])}
    results["random_sentence"] = rouge_scores(random_sentence(documents, seed), references)
    results["examples"] = [{"document": d[:300], "reference": r, "summary": s}
                           for d, r, s in list(zip(documents, references, replaced))[:8]]
    return results
