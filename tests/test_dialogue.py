import gzip
import json

import pytest

from tfs2s.data import dialogue
from tfs2s.core.errors import DataError


def test_dailydialog_reader_and_examples(tmp_path):
    path = tmp_path / "d.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("Hi , Jim . __eou__ Hello ! __eou__ How are you ? __eou__\n\nBye . __eou__ See you . __eou__\n")
    dialogues = dialogue.read_dailydialog(str(path))
    assert dialogues == [["Hi , Jim .", "Hello !", "How are you ?"], ["Bye .", "See you ."]]
    assert dialogue.make_examples(dialogues, context_turns=1, separator="SEP") == [
        ("Hi , Jim .", "Hello !"), ("Hello !", "How are you ?"), ("Bye .", "See you .")]
    assert dialogue.make_examples(dialogues, context_turns=2, separator="SEP")[1] == (
        "Hi , Jim . SEP Hello !", "How are you ?")
    with pytest.raises(ValueError, match="context_turns"):
        dialogue.make_examples(dialogues, context_turns=0, separator="SEP")
    assert dialogue.make_examples([["a", "", "b", "c"]], context_turns=3, separator="||") == [
        ("a", "b"), ("a || b", "c")]  # empty utterances are neither context nor reply


@pytest.mark.parametrize("line", ["Hello there __eou__ no end marker", "Only one turn . __eou__"])
def test_malformed_dailydialog_names_file_and_line(tmp_path, line):
    path = tmp_path / "bad.txt"
    path.write_text("A . __eou__ B . __eou__\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.txt:2:"):
        dialogue.read_dailydialog(str(path))


def test_topical_chat_and_chatterbot_readers(tmp_path, caplog):
    tc = tmp_path / "tc.json.gz"
    with gzip.open(tc, "wt", encoding="utf-8") as f:
        json.dump({"t_1": {"content": [{"message": "Hi!", "agent": "agent_1"}, {"message": "Hey.", "agent": "agent_2"}]}}, f)
    assert dialogue.read_topical_chat(str(tc)) == [["Hi!", "Hey."]]
    bad = tmp_path / "bad.json"
    bad.write_text('{"t_1": {"content": [{"text": 1}]}}', encoding="utf-8")
    with pytest.raises(DataError, match="t_1"):
        dialogue.read_topical_chat(str(bad))
    (tmp_path / "bot").mkdir()
    (tmp_path / "bot" / "a.yml").write_text(
        "conversations:\n- - Hello\n  - Hi\n- one string, not a list\n- - 42\n  - Yes\n  - No\n")
    with caplog.at_level("WARNING"):
        assert dialogue.read_chatterbot(str(tmp_path / "bot")) == [["Hello", "Hi"], ["42", "Yes", "No"]]
    assert "a.yml: conversation 1" in caplog.text
    (tmp_path / "bot" / "b.yml").write_text("conversations:\n- - Hello\n  - [unclosed\n")
    with pytest.raises(DataError, match=r"b\.yml:\d+"):
        dialogue.read_chatterbot(str(tmp_path / "bot"))


def test_real_dailydialog_validation(data_dir):
    dialogues = dialogue.read_dailydialog(f"{data_dir}/dialogs/dailydialog/validation/dialogues_validation.txt")
    assert len(dialogues) == 1000
    assert len(dialogue.make_examples(dialogues, 1, "SEP")) == 7069  # adjacent pairs, as the data README counts


def test_dialogue_corpora_through_the_config(data_dir):
    from tfs2s.data import corpora
    from tfs2s.core.config import ConfigError, load_config

    cfg = load_config(None, [f"data.corpus=dailydialog", f"data.data_dir={data_dir}", "data.source_lang=context",
                             "data.target_lang=response", "data.context_turns=2"])
    pairs = corpora.load_split(cfg.data, "validation")
    assert len(pairs) == 7069
    assert " SEP " in pairs[1][0] and " SEP " not in pairs[0][0]  # the second reply sees two turns
    chatterbot = {s: corpora.load_pairs("chatterbot", s, data_dir, "context", "response")
                  for s in ("train", "validation", "test")}
    # Whole conversations by a hash of their text (seed 4321, buckets 96 / 2 / 2).
    assert {s: len(p) for s, p in chatterbot.items()} == {"train": 2150, "validation": 31, "test": 125}
    assert pairs == corpora.load_pairs("dailydialog", "validation", data_dir, "context", "response",
                                       context_turns=2, turn_separator="SEP")
    # Without options a reader takes the config's defaults (one turn of context).
    assert corpora.load_pairs("dailydialog", "validation", data_dir, "context", "response")[1][0] == pairs[1][0].split(
        " SEP ")[-1]
    with pytest.raises(corpora.DataError, match="context_turns|context"):
        corpora.load_pairs("dailydialog", "validation", data_dir, "de", "en")
    with pytest.raises(ConfigError, match="turn_separator"):
        load_config(None, ["data.turn_separator=two words"])


def _tiny_translator(tiny_vocab):
    import keras

    from tfs2s.core.config import load_config
    from tfs2s.core.models import build_models
    from tfs2s.tasks.text.predictor import Translator

    s, t, pairs = tiny_vocab
    cfg = load_config(None, {"model.hidden": 16, "model.embedding_dim": 8, "model.attention_units": 8,
                             "decoding.beam_width": 3, "data.max_target_length": 5})
    keras.utils.set_random_seed(0)
    return Translator(build_models(cfg.model, s.vocab_size, t.vocab_size), s, t, cfg), pairs


def test_evaluate_dialogue_figures_are_those_of_its_parts(tiny_vocab):
    """Every figure of evaluate_dialogue recomputed from its parts (an untrained tiny model: the figures are
    arbitrary, so only the same computation gives them)."""
    import numpy as np

    from tfs2s.apps.dialogue import evaluate_dialogue
    from tfs2s.apps.ngram import NgramLanguageModel
    from tfs2s.apps.translation import evaluate_pairs
    from tfs2s.core import features as F
    from tfs2s.core.metrics import bleu_scores, distinct_n

    translator, pairs = _tiny_translator(tiny_vocab)
    train = pairs[:3]
    # A reply seen in training, an unseen one, and one too long for data.max_target_length (5 with </s>).
    valid = [pairs[0], pairs[3], ("ein mann", "a man drives two dogs play")]
    got = evaluate_dialogue(translator, train, valid, ngram_order=2, sample_options={"seed": 3}, batch_size=2)
    tokenize = lambda texts: translator.target_tokenizer.tokenize(np.array(texts, object)).to_list()  # noqa: E731
    kept = valid[:2]
    lm = NgramLanguageModel(2, vocabulary=set(range(translator.target_tokenizer.vocab_size))
                            - {F.PAD_ID, F.BOS_ID, F.EOS_ID}).fit(tokenize([r for _, r in train]))
    assert got["responses"] == 2 and got["responses_too_long"] == 1 and got["replies_decoded"] == 2
    assert got["ngram_perplexity"] == round(lm.perplexity(tokenize([r for _, r in kept])), 3)
    assert got["seq2seq_perplexity"] == evaluate_pairs(translator, kept, strategies=(), batch_size=2)["perplexity"]
    assert got["seen_in_training"]["responses"] == 1 and got["unseen_in_training"]["responses"] == 1
    assert got["seen_in_training"]["ngram_perplexity"] == round(lm.perplexity(tokenize([kept[0][1]])), 3)
    for strategy, options in (("beam", {}), ("sample", {"seed": 3})):
        replies = translator.translate([c for c, _ in kept], strategy=strategy, batch_size=2, **options)
        assert got[strategy]["bleu"] == bleu_scores(replies, [r for _, r in kept])["bleu"]
        assert got[strategy]["distinct_1"] == round(distinct_n(tokenize(replies), 1), 4)
        assert [e["reply"] for e in got[strategy]["examples"]] == replies
    assert got["reference_distinct_2"] == round(distinct_n(tokenize([r for _, r in kept]), 2), 4)
