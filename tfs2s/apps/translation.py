"""Evaluating a translation model on a corpus split: BLEU/chrF per decoding strategy, perplexity, alignment plots."""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from tfs2s.core import text_data as data
from tfs2s.core.metrics import bleu_scores
from tfs2s.core.plots import plot_text_alignment
from tfs2s.data import corpora
from tfs2s.tasks.text.predictor import Translator
from tfs2s.training.fit import compile_model
from tfs2s.core.errors import InputError


def evaluate_pairs(translator: Translator, pairs: Sequence[tuple[str, str]],
                   strategies: Sequence[str] = ("greedy", "beam"), batch_size: int = 64,
                   options: dict | None = None) -> dict:
    """Decodes ``pairs`` with each strategy and scores against the references; adds teacher-forced perplexity.

    ``options`` (e.g. ``{"beam_width": 10}``) override the config's decoding options for every strategy.

    Returns:
        ``{"sentences", "perplexity", "<strategy>": {"bleu", "bleu_lowercase", "chrf", "sentences_per_second",
        "examples"}}``.
    """
    cfg = translator.config
    d = cfg.data
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    results: dict = {"sentences": len(pairs)}
    # Copy models' targets point a word the target vocabulary lacks at its source position, as in training.
    ds = data.make_dataset(pairs, translator.source_tokenizer, translator.target_tokenizer, batch_size=batch_size,
                           copy=cfg.model.copy, **data.source_target_options(d))
    model = translator.models.training
    if not model.compiled:
        compile_model(translator.models, cfg, 1)
    metrics = model.evaluate(ds, verbose=0, return_dict=True)
    results["perplexity"] = round(float(metrics["perplexity"]), 3)
    for strategy in strategies:
        options = options or {}
        translator.translate(sources[:batch_size], strategy=strategy, batch_size=batch_size,  # trace outside timing
                             **options)
        started = time.perf_counter()
        hypotheses = translator.translate(sources, strategy=strategy, batch_size=batch_size, **options)
        seconds = time.perf_counter() - started
        scores = bleu_scores(hypotheses, references)
        scores["sentences_per_second"] = round(len(sources) / max(seconds, 1e-9), 1)
        scores["examples"] = [{"source": s, "reference": r, "hypothesis": h}
                              for s, r, h in list(zip(sources, references, hypotheses))[:5]]
        results[strategy] = scores
    return results


def evaluate_split(translator: Translator, split: str, strategies: Sequence[str] = ("greedy", "beam"),
                   limit: int = 0, options: dict | None = None) -> dict:
    """``evaluate_pairs`` on a split of the run's corpus."""
    d = translator.config.data
    pairs = corpora.load_split(d, split, limit)
    return {"split": split, **evaluate_pairs(translator, pairs, strategies, options=options)}


def plot_sentence(translator: Translator, text: str, path: str, strategy: str = "greedy") -> str:
    """Translates ``text`` and saves its attention heatmap as a PNG.

    Raises:
        InputError: The model has no attention (``attention: none``), so there is nothing to plot.
    """
    out = translator.translate_batch([text], strategy=strategy)
    if "alignment" not in out:
        raise InputError("this model has no attention (model.attention: none): there is no alignment to plot")
    words = [t.decode("utf-8") for t in translator.source_tokenizer.id_tokens(out["source_ids"])[0].numpy()]
    target_tokens = [t.decode("utf-8") for t in translator.target_tokenizer.id_tokens(out["tokens"][:, 0])[0].numpy()]
    target_tokens.append("</s>")
    alignment = out["alignment"][0, 0][:, : len(words) + 1]
    if translator.config.data.reverse_source:
        # The model read the words reversed (then </s>): show them, and their columns, in reading order.
        words = words[::-1]
        alignment = np.concatenate([alignment[:, -2::-1], alignment[:, -1:]], axis=1)
    return plot_text_alignment(alignment, words + ["</s>"], target_tokens, path, title=out["text"][0, 0])
