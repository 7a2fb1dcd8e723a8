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
