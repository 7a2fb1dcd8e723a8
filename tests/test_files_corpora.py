"""``data.corpus: files``: a user's own text files read from the config alone (tfs2s.data.files)."""

import json

import pytest

from tfs2s.core.config import DataConfig, load_config
from tfs2s.core.errors import DataError
from tfs2s.data import corpora, files


def _data(**values) -> DataConfig:
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return DataConfig(corpus="files", source_lang="vi", target_lang="en", **values)


def _parallel(tmp_path, write_lines, n=200, gz=False):
    suffix = ".gz" if gz else ""
    src, tgt = tmp_path / f"train.vi{suffix}", tmp_path / f"train.en{suffix}"
    write_lines(src, [f"nguon {i}" for i in range(n)], gz=gz)
    write_lines(tgt, [f"target {i}" for i in range(n)], gz=gz)
    return [str(src), str(tgt)]


@pytest.mark.parametrize("gz", [False, True])
def test_two_line_aligned_files(tmp_path, write_lines, gz):
    train = _parallel(tmp_path, write_lines, n=5, gz=gz)
    data = _data(train=train, validation=train)
    pairs = corpora.load_split(data, "train")
    assert pairs == [(f"nguon {i}", f"target {i}") for i in range(5)]  # nothing held out: validation has files
    assert corpora.load_split(data, "validation", limit=2) == pairs[:2]


def test_two_files_drop_pairs_with_an_empty_side_and_keep_alignment(tmp_path, write_lines):
    write_lines(tmp_path / "a.txt", ["one", "", "three", "four"])
    write_lines(tmp_path / "b.txt", ["eins", "zwei", "  ", "vier"])
    data = _data(train=[str(tmp_path / "a.txt"), str(tmp_path / "b.txt")], validation_fraction=0.0)
    assert corpora.load_split(data, "train") == [("one", "eins"), ("four", "vier")]


def test_unequal_line_counts_name_both_files_and_counts(tmp_path, write_lines):
    write_lines(tmp_path / "a.vi", ["x", "y", "z"])
    write_lines(tmp_path / "a.en", ["x", "y"])
    data = _data(train=[str(tmp_path / "a.vi"), str(tmp_path / "a.en")])
    with pytest.raises(DataError) as err:
        corpora.load_split(data, "train")
    message = str(err.value)
    assert "a.vi has 3 lines" in message and "a.en has 2 lines" in message and "data.train" in message


@pytest.mark.parametrize("name", ["missing.tsv", "missing.jsonl"])
def test_a_missing_file_is_named(tmp_path, name):
    with pytest.raises(DataError, match=f"data.train: file not found: .*{name}"):
        corpora.load_split(_data(train=[str(tmp_path / name)]), "train")


def test_a_missing_second_file_is_named(tmp_path, write_lines):
    write_lines(tmp_path / "a.vi", ["x"])
    with pytest.raises(DataError, match="file not found: .*nothere.en"):
        corpora.load_split(_data(train=[str(tmp_path / "a.vi"), str(tmp_path / "nothere.en")]), "train")


@pytest.mark.parametrize("gz", [False, True])
def test_tsv_skips_blank_lines(tmp_path, write_lines, gz):
    path = tmp_path / ("dialog.tsv.gz" if gz else "dialog.tsv")
    write_lines(path, ["hi there\thello", "", "how are you?\tfine, thanks", "   "], gz=gz)
    data = _data(train=[str(path)], validation_fraction=0.0)
    assert corpora.load_split(data, "train") == [("hi there", "hello"), ("how are you?", "fine, thanks")]


@pytest.mark.parametrize("line", ["no tab here", "one\ttwo\tthree"])
def test_tsv_line_without_exactly_one_tab_names_file_and_line(tmp_path, write_lines, line):
    write_lines(tmp_path / "t.tsv", ["a\tb", "", line])
    with pytest.raises(DataError, match=r"t\.tsv:3: expected source<TAB>target"):
        corpora.load_split(_data(train=[str(tmp_path / "t.tsv")]), "train")


def test_jsonl_objects_of_each_kind(tmp_path, write_lines):
    lines = [json.dumps({"document": "a long text", "summary": "short", "id": 7}),
             "",
             json.dumps({"source": "xin chao", "target": "hello"}),
             json.dumps({"context": "how are you", "response": "fine"}),
             json.dumps({"context": ["hi", "hello", "how are you"], "response": "fine"}),
             json.dumps({"document": "", "summary": "dropped: empty side"})]
    write_lines(tmp_path / "s.jsonl", lines)
    data = _data(train=[str(tmp_path / "s.jsonl")], validation_fraction=0.0, context_turns=2)
    assert corpora.load_split(data, "train") == [("a long text", "short"), ("xin chao", "hello"),
                                                 ("how are you", "fine"), ("hello SEP how are you", "fine")]


def test_jsonl_conversations_become_context_response_examples(tmp_path, write_lines):
    write_lines(tmp_path / "chats.json", [json.dumps(["hi", "hello", "how are you?", "fine"]),
                                          json.dumps(["bye", "see you"])])
    data = _data(train=[str(tmp_path / "chats.json")], validation_fraction=0.0, context_turns=2,
                 turn_separator="<sep>")
    assert corpora.load_split(data, "train") == [
        ("hi", "hello"), ("hi <sep> hello", "how are you?"), ("hello <sep> how are you?", "fine"),
        ("bye", "see you")]


@pytest.mark.parametrize("line, expected", [
    ("{not json", "not valid JSON"),
    (json.dumps({"question": "a", "answer": "b"}), "expected an object with the keys"),
    (json.dumps({"source": "a", "target": 3}), "must be strings"),
    (json.dumps(["only one turn"]), "list of at least two strings"),
    (json.dumps(["a", 2]), "list of at least two strings"),
    (json.dumps("just a string"), "got str"),
])
def test_jsonl_bad_lines_name_file_and_line(tmp_path, write_lines, line, expected):
    write_lines(tmp_path / "bad.jsonl", [json.dumps({"source": "a", "target": "b"}), line])
    with pytest.raises(DataError) as err:
        corpora.load_split(_data(train=[str(tmp_path / "bad.jsonl")]), "train")
    assert "bad.jsonl:2:" in str(err.value) and expected in str(err.value)


def test_one_file_of_an_unknown_kind_says_what_is_read(tmp_path, write_lines):
    write_lines(tmp_path / "train.txt", ["a b c"])
    with pytest.raises(DataError, match="two line-aligned files"):
        corpora.load_split(_data(train=[str(tmp_path / "train.txt")]), "train")


def test_held_out_splits_are_disjoint_seeded_and_stable(tmp_path, write_lines):
    data = _data(train=_parallel(tmp_path, write_lines, n=400), validation_fraction=0.1, test_fraction=0.2)
    splits = {s: corpora.load_split(data, s) for s in ("train", "validation", "test")}
    sets = {s: set(p) for s, p in splits.items()}
    assert not sets["train"] & sets["validation"] and not sets["train"] & sets["test"]
    assert not sets["validation"] & sets["test"]
    assert sum(len(p) for p in splits.values()) == 400
    # About the asked shares (a hash decides each example, so not exactly).
    assert 20 <= len(splits["validation"]) <= 60 and 50 <= len(splits["test"]) <= 110
    # The same config gives the same split; another seed another one.
    assert {s: corpora.load_split(data, s) for s in splits} == splits
    reseeded = corpora.load_split(data.__class__(**{**data.__dict__, "seed": 99}), "validation")
    assert set(reseeded) != sets["validation"]
    # The training pairs keep their file order, and ``limit`` takes the first ones.
    assert splits["train"] == sorted(splits["train"], key=lambda p: int(p[0].split()[1]))
    assert corpora.load_split(data, "train", limit=5) == splits["train"][:5]


def test_held_out_split_does_not_change_when_the_file_grows(tmp_path, write_lines):
    small = _data(train=_parallel(tmp_path, write_lines, n=200))
    validation = set(corpora.load_split(small, "validation"))
    (tmp_path / "big").mkdir()
    big = _data(train=_parallel(tmp_path / "big", write_lines, n=400))
    assert validation <= set(corpora.load_split(big, "validation"))


def test_a_conversation_is_held_out_whole(tmp_path, write_lines):
    chats = [[f"hello {i}", f"hi {i}", f"how are you {i}", f"fine {i}"] for i in range(100)]
    write_lines(tmp_path / "c.jsonl", [json.dumps(c) for c in chats])
    data = _data(train=[str(tmp_path / "c.jsonl")], validation_fraction=0.2)
    numbers = {s: {p[1].split()[-1] for p in corpora.load_split(data, s)} for s in ("train", "validation")}
    assert numbers["validation"] and not numbers["train"] & numbers["validation"]
    assert len(corpora.load_split(data, "validation")) == 3 * len(numbers["validation"])


def test_no_test_split_says_what_to_set(tmp_path, write_lines):
    data = _data(train=_parallel(tmp_path, write_lines, n=50))
    with pytest.raises(DataError, match="set data.test .*or data.test_fraction"):
        corpora.load_split(data, "test")
    with pytest.raises(DataError, match="set data.validation .*or data.validation_fraction"):
        corpora.load_split(_data(train=data.train, validation_fraction=0.0), "validation")


def test_a_held_out_share_that_comes_out_empty_is_an_error(tmp_path, write_lines):
    data = _data(train=_parallel(tmp_path, write_lines, n=2), validation_fraction=0.01, seed=1)
    # The premise: neither pair falls in the 1 % share.
    assert {files.assign_split(f"nguon {i}", 1, 0.01, 0.0) for i in range(2)} == {"train"}
    with pytest.raises(DataError, match="came out empty"):
        corpora.load_split(data, "validation")


def test_given_validation_and_test_files_hold_nothing_out(tmp_path, write_lines):
    train = _parallel(tmp_path, write_lines, n=100)
    write_lines(tmp_path / "dev.tsv", ["a\tb"])
    write_lines(tmp_path / "test.tsv", ["c\td"])
    data = _data(train=train, validation=[str(tmp_path / "dev.tsv")], test=[str(tmp_path / "test.tsv")],
                 validation_fraction=0.3, test_fraction=0.3)
    assert len(corpora.load_split(data, "train")) == 100
    assert corpora.load_split(data, "validation") == [("a", "b")]
    assert corpora.load_split(data, "test") == [("c", "d")]


def test_paths_are_read_relative_to_the_config_folder(tmp_path, write_lines, monkeypatch):
    folder = tmp_path / "project"
    (folder / "data").mkdir(parents=True)
    write_lines(folder / "data" / "train.tsv", [f"s{i}\tt{i}" for i in range(60)])
    write_lines(folder / "data" / "dev.jsonl", [json.dumps({"source": "x", "target": "y"})])
    (folder / "config.yaml").write_text("data:\n  corpus: files\n  source_lang: xx\n  target_lang: yy\n"
                                        "  train: data/train.tsv\n  validation: [data/dev.jsonl]\n",
                                        encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # anywhere but the config's folder
    monkeypatch.setenv("TFS2S_DATA_DIR", str(tmp_path / "empty"))
    cfg = load_config(str(folder / "config.yaml"))
    assert cfg.data.train == (str(folder / "data" / "train.tsv"),)
    assert len(corpora.load_split(cfg.data, "train")) == 60
    assert corpora.load_split(cfg.data, "validation") == [("x", "y")]


def test_unknown_split_and_no_train(tmp_path, write_lines):
    with pytest.raises(DataError, match="not 'dev'"):
        corpora.load_split(_data(train=_parallel(tmp_path, write_lines, n=3)), "dev")
    with pytest.raises(DataError, match="needs data.train"):
        corpora.load_split(_data(), "train")
    write_lines(tmp_path / "empty.tsv", [""])
    with pytest.raises(DataError, match="no .source, target. pairs"):
        corpora.load_split(_data(train=[str(tmp_path / "empty.tsv")], validation_fraction=0.0), "train")
