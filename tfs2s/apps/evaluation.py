"""Evaluating a trained model on a corpus split: BLEU/chrF per decoding strategy, perplexity, alignment plots."""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from tfs2s.data import corpora
from tfs2s.core import text_data as data
from tfs2s.core.metrics import bleu_scores, plot_alignment
from tfs2s.tasks.text.predictor import Translator


def evaluate_pairs(translator: Translator, pairs: Sequence[tuple[str, str]],
                   strategies: Sequence[str] = ("greedy", "beam"), batch_size: int = 64) -> dict:
    """Decodes ``pairs`` with each strategy and scores against the references; adds teacher-forced perplexity.

    Returns:
        ``{"sentences", "perplexity", "<strategy>": {"bleu", "bleu_lowercase", "chrf", "sentences_per_second",
        "examples"}}``.
    """
    cfg = translator.config
    d = cfg.data
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    results: dict = {"sentences": len(pairs)}
    ds = data.make_dataset(pairs, translator.source_tokenizer, translator.target_tokenizer, batch_size=batch_size,
                           max_source_length=d.max_source_length, max_target_length=d.max_target_length,
                           reverse_source=d.reverse_source)
    model = translator.models.training
    if not model.compiled:
        from tfs2s.training.run import compile_model

        compile_model(translator.models, cfg, 1)
    metrics = model.evaluate(ds, verbose=0, return_dict=True)
    results["perplexity"] = round(float(metrics["perplexity"]), 3)
    for strategy in strategies:
        translator.translate(sources[:batch_size], strategy=strategy, batch_size=batch_size)  # trace outside timing
        started = time.perf_counter()
        hypotheses = translator.translate(sources, strategy=strategy, batch_size=batch_size)
        seconds = time.perf_counter() - started
        scores = bleu_scores(hypotheses, references)
        scores["sentences_per_second"] = round(len(sources) / max(seconds, 1e-9), 1)
        scores["examples"] = [{"source": s, "reference": r, "hypothesis": h}
                              for s, r, h in list(zip(sources, references, hypotheses))[:5]]
        results[strategy] = scores
    return results


def evaluate_split(translator: Translator, split: str, strategies: Sequence[str] = ("greedy", "beam"),
                   limit: int = 0) -> dict:
    """``evaluate_pairs`` on a split of the run's corpus."""
    d = translator.config.data
    pairs = corpora.load_split(d, split, limit)
    return {"split": split, **evaluate_pairs(translator, pairs, strategies)}


def plot_sentence(translator: Translator, text: str, path: str, strategy: str = "greedy") -> str:
    """Translates ``text`` and saves its attention heatmap as a PNG.

    Raises:
        ValueError: The model has no attention (``attention: none``), so there is nothing to plot.
    """
    out = translator.translate_batch([text], strategy=strategy)
    if "alignment" not in out:
        raise ValueError("this model has no attention (model.attention: none): there is no alignment to plot")
    words = [t.decode("utf-8") for t in translator.source_tokenizer.id_tokens(out["source_ids"])[0].numpy()]
    target_tokens = [t.decode("utf-8") for t in translator.target_tokenizer.id_tokens(out["tokens"][:, 0])[0].numpy()]
    target_tokens.append("</s>")
    alignment = out["alignment"][0, 0][:, : len(words) + 1]
    if translator.config.data.reverse_source:
        # The model read the words reversed (then </s>): show them, and their columns, in reading order.
        words = words[::-1]
        alignment = np.concatenate([alignment[:, -2::-1], alignment[:, -1:]], axis=1)
    return plot_alignment(alignment, words + ["</s>"], target_tokens, path, title=out["text"][0, 0])


def _token_ids(tokenizer, texts: Sequence[str], batch: int = 4096) -> list[list[int]]:
    """Texts -> id lists with the run's tokenizer (the same ids the model is trained and scored on)."""
    import tensorflow as tf

    out: list[list[int]] = []
    for start in range(0, len(texts), batch):
        out.extend(tokenizer.tokenize(tf.constant(list(texts[start:start + batch]))).to_list())
    return out


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
    from tfs2s.core.metrics import distinct_n
    from tfs2s.apps.ngram import NgramLanguageModel

    cfg = translator.config
    limit = cfg.data.max_target_length - 1  # room for </s>
    target = translator.target_tokenizer
    train_ids = [ids for ids in _token_ids(target, [t for _, t in train_pairs]) if len(ids) <= limit]
    vocabulary = set(range(target.vocab_size)) - {0, 2, 3}  # every word id, <unk> (1) included
    lm = NgramLanguageModel(ngram_order, vocabulary=vocabulary).fit(train_ids)
    ids = _token_ids(target, [t for _, t in pairs])
    kept = [p for p, i in zip(pairs, ids) if len(i) <= limit]
    results: dict = {"responses": len(kept), "responses_too_long": len(pairs) - len(kept),
                     "ngram_order": ngram_order}
    kept_ids = [i for i in ids if len(i) <= limit]
    results["ngram_perplexity"] = round(lm.perplexity(kept_ids), 3)
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
    decoded = kept[:decode_limit] if decode_limit else kept
    sources, references = [s for s, _ in decoded], [t for _, t in decoded]
    results["replies_decoded"] = len(decoded)
    runs = {cfg.decoding.strategy: {}, "sample": dict(sample_options or {})}
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


def evaluate_summaries(translator: Translator, train_pairs: Sequence[tuple[str, str]],
                       pairs: Sequence[tuple[str, str]], batch_size: int = 64, seed: int = 0) -> dict:
    """ROUGE-1/2/L F1 of the model's summaries next to the lead and random-sentence baselines, same pairs.

    The lead baseline takes the first N words of each document, N being the median summary length (in words)
    of the training pairs. The model decodes with the configured strategy, with and (word-level models with
    attention) without replacing ``<unk>`` by the attended source word.

    Returns:
        ``{"documents", "lead_words", "model": {...}, "model_unk_replaced": {...}, "lead": {...},
        "random_sentence": {...}, "examples"}``; each score dict is ``{"rouge1", "rouge2", "rougeL"}``.
    """
    from tfs2s.data import summarization as S

    documents, references = [d for d, _ in pairs], [s for _, s in pairs]
    lengths = sorted(len(s.split()) for _, s in train_pairs) or [1]
    lead_words = max(1, lengths[len(lengths) // 2])
    results: dict = {"documents": len(pairs), "lead_words": lead_words}
    summaries = translator.translate(documents, batch_size=batch_size)
    results["model"] = S.rouge_scores(summaries, references)
    cfg = translator.config
    if cfg.model.attention != "none" and translator.source_tokenizer.kind == "word":
        replaced = translator.translate(documents, batch_size=batch_size, replace_unknown=True)
        results["model_unk_replaced"] = S.rouge_scores(replaced, references)
        results["unk_replaced_summaries"] = sum(a != b for a, b in zip(summaries, replaced))
    else:
        replaced = summaries
    results["lead"] = S.rouge_scores(S.lead(documents, lead_words), references)
    results["random_sentence"] = S.rouge_scores(S.random_sentence(documents, seed), references)
    results["examples"] = [{"document": d[:300], "reference": r, "summary": s}
                           for d, r, s in list(zip(documents, references, replaced))[:8]]
    return results
