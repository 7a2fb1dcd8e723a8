import pytest

from tfs2s.core.errors import DataError
from tfs2s.data import corpora
from tfs2s.data.corpora import load_pairs



def test_missing_data_names_expected_files_and_folder(tmp_path):
    with pytest.raises(DataError) as err:
        load_pairs("multi30k", "train", str(tmp_path), "de", "en")
    msg = str(err.value)
    assert "multi30k/train.de.gz" in msg and "multi30k/train.en.gz" in msg and str(tmp_path) in msg
    with pytest.raises(DataError, match="known corpora"):
        load_pairs("nope", "train", str(tmp_path), "de", "en")
    with pytest.raises(DataError, match="no language 'fr'"):
        load_pairs("multi30k", "train", str(tmp_path), "fr", "en")


def test_multi30k_real_counts(data_dir):
    assert len(load_pairs("multi30k", "validation", data_dir, "de", "en")) == 1014
    test = load_pairs("multi30k", "test", data_dir, "en", "de", limit=5)
    assert len(test) == 5 and test[0][0][0].isupper()


def test_spa_eng_split_is_disjoint_by_english_sentence(data_dir):
    splits = {s: load_pairs("spa_eng", s, data_dir, "en", "es") for s in ("train", "validation", "test")}
    assert sum(len(p) for p in splits.values()) == 118121
    # 96 / 2 / 2 % by sha256 of the English side (seed 1234): the figures every spa_eng run has used.
    assert {s: len(p) for s, p in splits.items()} == {"train": 113490, "validation": 2327, "test": 2304}
    assert load_pairs("spa_eng", "test", data_dir, "es", "en")[:3] == [(es, en) for en, es in splits["test"][:3]]
    english = {s: {e for e, _ in p} for s, p in splits.items()}
    assert not english["train"] & english["test"] and not english["train"] & english["validation"]
    assert 0.01 < len(splits["test"]) / 118121 < 0.03


def test_error_class_is_the_core_one_and_still_importable_here():
    from tfs2s.core import errors

    assert corpora.DataError is errors.DataError


def test_split_and_data_dir_errors(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="no split 'dev'; splits: train, validation, test"):
        load_pairs("multi30k", "dev", str(tmp_path), "de", "en")
    monkeypatch.setenv("TFS2S_DATA_DIR", str(tmp_path))
    assert corpora.default_data_dir() == str(tmp_path) == corpora.resolve_data_dir(None)
    assert corpora.resolve_data_dir("elsewhere") == "elsewhere"


def test_tfds_builder_reads_local_files_offline(tmp_path, write_lines):
    import tensorflow_datasets as tfds

    src = tmp_path / "src" / "multi30k"
    src.mkdir(parents=True)
    for stem, n in (("train", 5), ("val", 2), ("test_2016_flickr", 3)):
        write_lines(src / f"{stem}.de.gz", [f"satz {i}" for i in range(n)], gz=True)
        write_lines(src / f"{stem}.en.gz", [f"sentence {i}" for i in range(n)], gz=True)
    builder_cls = corpora.tfds_builders()["multi30k"]
    builder = builder_cls(data_dir=str(tmp_path / "tfds"), source_dir=str(tmp_path / "src"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    train = list(builder.as_dataset(split="train").as_numpy_iterator())
    assert len(train) == 5 and {ex["en"] for ex in train} == {f"sentence {i}".encode() for i in range(5)}
    ds = tfds.load("tfs2s_multi30k", split="test", data_dir=str(tmp_path / "tfds"), download=False)
    assert len(list(ds)) == 3


def test_every_download_lands_where_a_split_reads():
    """A registered download's path is one a split expects, so a fetched copy is read with no change."""
    for corpus in corpora.CORPORA.values():
        expected = {f for split in corpus.splits for f in corpus.expected_files(split)}
        for item in corpus.downloads:
            assert item.path in expected, (corpus.name, item.path)
            assert len(item.sha256) == 64 and "/master/" not in item.url  # pinned to a commit
    assert sum(len(c.downloads) for c in corpora.CORPORA.values()) == 9  # Multi30k 6, Topical-Chat 3
    for path, item in corpora.FILE_DOWNLOADS.items():
        assert item.path == path and len(item.sha256) == 64


def test_is_dialogue_names_the_dialogue_corpora():
    """Exports record a ``dialogue`` record for these (clients build the source from the conversation)."""
    assert [c for c in sorted(corpora.CORPORA) if corpora.is_dialogue(c)] == ["chatterbot", "dailydialog",
                                                                                "topical_chat"]
    assert not corpora.is_dialogue("files") and not corpora.is_dialogue("no_such_corpus")
