"""Evaluating a conversational model: perplexity against an n-gram baseline, BLEU and distinct-n of replies."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from tfs2s.apps.ngram import NgramLanguageModel
from tfs2s.apps.translation import evaluate_pairs
from tfs2s.core import features as F
from tfs2s.core.metrics import bleu_scores, distinct_n
from tfs2s.tasks.text.predictor import Translator


def _token_ids(tokenizer, texts: Sequence[str], batch: int = 4096) -> list[list[int]]:
    """Texts -> id lists with the run's tokenizer (the same ids the model is trained and scored on)."""
    out: list[list[int]] = []
    for start in range(0, len(texts), batch):
        out.extend(tokenizer.tokenize(tf.constant(list(texts[start:start + batch]))).to_list())
    return out


def _perplexities(translator: Translator, lm: NgramLanguageModel, train_ids: list[list[int]],
                  kept: list[tuple[str, str]], kept_ids: list[list[int]], batch_size: int) -> dict:
    """Both models' perplexities on all kept responses and, apart, on those seen / unseen in training."""
    results: dict = {"ngram_perplexity": round(lm.perplexity(kept_ids), 3)}
    scored = evaluate_pairs(translator, kept, strategies=(), batch_size=batch_size)
    results["seq2seq_perplexity"] = scored["perplexity"]
    results["perplexity_ratio"] = round(results["seq2seq_perplexity"] / results["ngram_perplexity"], 3)
    # Dialogue corpora repeat formulaic replies (and DailyDialog whole dialogues) across splits: both models
    # are also scored apart on the responses that occur verbatim among the training responses and the others.
    seen = {tuple(i) for i in train_ids}
    for name, keep in (("seen", True), ("unseen", False)):
        subset = [(p, i) for p, i in zip(kept, kept_ids) if (tuple(i) in seen) == keep]
        if not subset:
            continue
        ngram = lm.perplexity([i for _, i in subset])
        seq2seq = evaluate_pairs(translator, [p for p, _ in subset], strategies=(), batch_size=batch_size)["perplexity"]
        results[f"{name}_in_training"] = {"responses": len(subset), "ngram_perplexity": round(ngram, 3),
                                          "seq2seq_perplexity": seq2seq, "perplexity_ratio": round(seq2seq / ngram, 3)}
    return results


def _replies(translator: Translator, decoded: list[tuple[str, str]], sample_options: dict | None,
             batch_size: int) -> dict:
    """Replies by the configured strategy and by sampling, scored by BLEU and distinct-1/2."""
    target = translator.target_tokenizer
    sources, references = [s for s, _ in decoded], [t for _, t in decoded]
    results: dict = {}
    runs = {translator.config.decoding.strategy: {}, "sample": dict(sample_options or {})}
    for strategy, options in runs.items():
        replies = translator.translate(sources, strategy=strategy, batch_size=batch_size, **options)
        reply_ids = _token_ids(target, replies)
        results[strategy] = {"bleu": bleu_scores(replies, references)["bleu"],
                             "distinct_1": round(distinct_n(reply_ids, 1), 4),
                             "distinct_2": round(distinct_n(reply_ids, 2), 4),
                             "empty_replies": sum(1 for r in replies if not r.strip()),
                             "examples": [{"context": s, "reference": r, "reply": h}
                                          for s, r, h in list(zip(sources, references, replies))[:8]]}
    reference_ids = _token_ids(target, references)
    results["reference_distinct_1"] = round(distinct_n(reference_ids, 1), 4)
    results["reference_distinct_2"] = round(distinct_n(reference_ids, 2), 4)
    return results


def evaluate_dialogue(translator: Translator, train_pairs: Sequence[tuple[str, str]],
                      pairs: Sequence[tuple[str, str]], ngram_order: int = 3, sample_options: dict | None = None,
                      batch_size: int = 64, decode_limit: int = 0) -> dict:
    """Scores a conversational model against a smoothed n-gram language model on the same responses.

    Vinyals & Le (2015) compare perplexities of responses: the seq2seq model's (conditioned on the context) and
    an n-gram model's (trained on the training responses, unconditioned). Both are measured here on the same
    tokens: the run's target tokenizer's ids, ``</s>`` included, on the responses that fit the model's
    ``data.max_target_length`` (longer ones would be truncated for one model and not the other). Replies are then
    decoded with the configured strategy and by sampling (the first ``decode_limit`` contexts; 0 = all), and
    scored by BLEU and distinct-1/2.

    Both perplexities are also given apart for the responses that occur verbatim among the training responses
    (``seen_in_training``) and for the others (``unseen_in_training``).

    Returns:
        ``{"responses", "seq2seq_perplexity", "ngram_perplexity", "perplexity_ratio", "seen_in_training":
        {"responses", "ngram_perplexity", "seq2seq_perplexity", "perplexity_ratio"}, "unseen_in_training": {...},
        "<strategy>": {"bleu", "distinct_1", "distinct_2", "empty_replies", "examples"}, "sample": {...}}``.
    """
    limit = translator.config.data.max_target_length - 1  # room for </s>
    target = translator.target_tokenizer
    train_ids = [ids for ids in _token_ids(target, [t for _, t in train_pairs]) if len(ids) <= limit]
    # Every word id, <unk> included: the special ids the n-gram model never predicts are left out.
    vocabulary = set(range(target.vocab_size)) - {F.PAD_ID, F.BOS_ID, F.EOS_ID}
    lm = NgramLanguageModel(ngram_order, vocabulary=vocabulary).fit(train_ids)
    ids = _token_ids(target, [t for _, t in pairs])
    kept = [p for p, i in zip(pairs, ids) if len(i) <= limit]
    kept_ids = [i for i in ids if len(i) <= limit]
    results: dict = {"responses": len(kept), "responses_too_long": len(pairs) - len(kept),
                     "ngram_order": ngram_order}
    results.update(_perplexities(translator, lm, train_ids, kept, kept_ids, batch_size))
    decoded = kept[:decode_limit] if decode_limit else kept
    results["replies_decoded"] = len(decoded)
    results.update(_replies(translator, decoded, sample_options, batch_size))
    return results
