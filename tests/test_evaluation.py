"""apps.translation: evaluate_pairs' scores are sacrebleu's on the translator's outputs, its perplexity the
teacher-forced one; plot_sentence draws the alignment of the translation."""

import math

import keras
import numpy as np
import pytest
import sacrebleu

from tfs2s.apps.translation import evaluate_pairs, plot_sentence
from tfs2s.core import text_data as data
from tfs2s.core.config import load_config
from tfs2s.core.models import build_models
from tfs2s.tasks.text.predictor import Translator


def _translator(tiny_vocab, attention="bahdanau", reverse=False):
    s, t, pairs = tiny_vocab
    cfg = load_config(None, {"model.hidden": 16, "model.embedding_dim": 8, "model.attention_units": 8,
                             "model.attention": attention, "data.reverse_source": reverse,
                             "decoding.beam_width": 3})
    keras.utils.set_random_seed(0)
    return Translator(build_models(cfg.model, s.vocab_size, t.vocab_size), s, t, cfg), pairs


def _teacher_forced_perplexity(translator, pairs):
    """exp(mean NLL of the reference tokens, </s> included, padding excluded), computed here with numpy."""
    d = translator.config.data
    ds = data.make_dataset(pairs, translator.source_tokenizer, translator.target_tokenizer, batch_size=2,
                           max_source_length=d.max_source_length, max_target_length=d.max_target_length)
    nll, tokens = 0.0, 0
    for features, targets, weights in ds:
        logits = np.asarray(translator.models.training(features, training=False), np.float64)
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        picked = np.take_along_axis(log_probs, targets.numpy()[..., None], -1)[..., 0]
        nll -= float((picked * weights.numpy()).sum())
        tokens += int(weights.numpy().sum())
    return math.exp(nll / tokens)


def test_evaluate_pairs_scores_are_sacrebleus_on_the_translations(tiny_vocab):
    translator, pairs = _translator(tiny_vocab)
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    result = evaluate_pairs(translator, pairs, strategies=("greedy", "beam"), batch_size=2)
    assert result["sentences"] == 4
    assert result["perplexity"] == pytest.approx(_teacher_forced_perplexity(translator, pairs), abs=2e-3)
    for strategy in ("greedy", "beam"):
        hypotheses = translator.translate(sources, strategy=strategy, batch_size=2)
        scores = result[strategy]
        assert scores["bleu"] == round(sacrebleu.corpus_bleu(hypotheses, [references]).score, 2)
        assert scores["chrf"] == round(sacrebleu.corpus_chrf(hypotheses, [references]).score, 2)
        assert scores["examples"] == [{"source": s, "reference": r, "hypothesis": h}
                                      for s, r, h in zip(sources, references, hypotheses)]
        assert scores["sentences_per_second"] > 0


def test_evaluate_pairs_on_known_outputs(tiny_vocab, monkeypatch):
    translator, pairs = _translator(tiny_vocab)
    references = [t for _, t in pairs]
    outputs = {"greedy": [r.upper() for r in references],  # right words, wrong case
               "beam": references[:3] + ["a woman dances"]}  # one word wrong
    monkeypatch.setattr(translator, "translate", lambda texts, strategy=None, batch_size=64: outputs[strategy][:len(texts)])
    result = evaluate_pairs(translator, pairs, strategies=("greedy", "beam"), batch_size=2)
    assert (result["greedy"]["bleu"], result["greedy"]["bleu_lowercase"]) == (0.0, 100.0)
    assert (result["beam"]["bleu"], result["beam"]["chrf"]) == (90.01, 84.9)  # sacrebleu 2.x, 13a tokenisation
    assert set(result) == {"sentences", "perplexity", "greedy", "beam"}


def test_evaluate_pairs_compiles_an_uncompiled_model(tiny_vocab):
    translator, pairs = _translator(tiny_vocab)
    assert not translator.models.training.compiled
    assert evaluate_pairs(translator, pairs, strategies=(), batch_size=4)["perplexity"] > 1.0
    assert translator.models.training.compiled


@pytest.mark.parametrize("reverse", [False, True])
def test_plot_sentence_draws_the_translations_alignment(tiny_vocab, tmp_path, monkeypatch, reverse):
    from tfs2s.apps import translation

    translator, _ = _translator(tiny_vocab, reverse=reverse)
    drawn = {}

    def spy(alignment, source_tokens, target_tokens, path, title=None):
        drawn.update(alignment=alignment, source=source_tokens, target=target_tokens, title=title)
        return real(alignment, source_tokens, target_tokens, path, title)

    real = translation.plot_text_alignment
    monkeypatch.setattr(translation, "plot_text_alignment", spy)
    path = plot_sentence(translator, "ein mann fährt", str(tmp_path / "a.png"))
    with open(path, "rb") as f:
        assert f.read(4) == b"\x89PNG"
    out = translator.translate_batch(["ein mann fährt"], strategy="greedy")
    assert drawn["source"] == ["ein", "mann", "fährt", "</s>"]  # reading order, even when the model read reversed
    assert drawn["target"][-1] == "</s>" and drawn["title"] == out["text"][0, 0]
    expected = out["alignment"][0, 0][:, :4]
    if reverse:  # columns back in reading order: the model saw "fährt mann ein </s>"
        expected = np.concatenate([expected[:, 2::-1], expected[:, 3:]], axis=1)
    np.testing.assert_allclose(drawn["alignment"], expected)


def test_plot_sentence_without_attention_is_a_clear_error(tiny_vocab, tmp_path):
    translator, _ = _translator(tiny_vocab, attention="none")
    with pytest.raises(ValueError, match="no attention"):
        plot_sentence(translator, "ein mann", str(tmp_path / "a.png"))
