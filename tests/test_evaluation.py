import keras
import pytest

from tfs2s.core.config import load_config
from tfs2s.apps.evaluation import evaluate_pairs, plot_sentence
from tfs2s.core.models import build_models
from tfs2s.tasks.text.predictor import Translator


def _translator(tiny_vocab, attention="bahdanau", reverse=False):
    s, t, pairs = tiny_vocab
    cfg = load_config(None, {"model.hidden": 16, "model.embedding_dim": 8, "model.attention_units": 8,
                             "model.attention": attention, "data.reverse_source": reverse,
                             "decoding.beam_width": 3})
    keras.utils.set_random_seed(0)
    return Translator(build_models(cfg.model, s.vocab_size, t.vocab_size), s, t, cfg), pairs


def test_evaluate_pairs_reports_scores_per_strategy(tiny_vocab):
    translator, pairs = _translator(tiny_vocab)
    result = evaluate_pairs(translator, pairs, strategies=("greedy", "beam"), batch_size=2)
    assert result["sentences"] == len(pairs)
    assert result["perplexity"] > 1.0
    for strategy in ("greedy", "beam"):
        scores = result[strategy]
        assert 0.0 <= scores["bleu"] <= 100.0 and scores["sentences_per_second"] > 0
        assert scores["examples"][0]["source"] == pairs[0][0]


@pytest.mark.parametrize("reverse", [False, True])
def test_plot_sentence_writes_a_heatmap(tiny_vocab, tmp_path, reverse):
    translator, _ = _translator(tiny_vocab, reverse=reverse)
    path = plot_sentence(translator, "ein mann fährt", str(tmp_path / "a.png"))
    assert open(path, "rb").read(4) == b"\x89PNG"


def test_plot_sentence_without_attention_is_a_clear_error(tiny_vocab, tmp_path):
    translator, _ = _translator(tiny_vocab, attention="none")
    with pytest.raises(ValueError, match="no attention"):
        plot_sentence(translator, "ein mann", str(tmp_path / "a.png"))
