"""A user with only their own files trains, evaluates, exports and uses a model through the command line.

The configs and files are ``tests/data/own`` (synthetic), copied to a temporary folder; ``TFS2S_DATA_DIR`` points
to an empty folder and the working directory is elsewhere, so nothing reads ``../shared`` and the config's
relative paths are read from its own folder.
"""

import json
import os
import shutil

import pytest

from tfs2s.cli import main
from tfs2s.core.config import load_config
from tfs2s.data import corpora

OWN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "own")
TINY = ["--set", "model.embedding_dim=16", "--set", "model.hidden=32", "--set", "model.attention_units=16",
        "--set", "training.steps_per_epoch=3", "--set", "training.bleu_sentences=10"]


def _run(*argv) -> int:
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    return done.value.code


def _json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """The user's project folder (a copy of tests/data/own), and a work folder to run from, with no data dir."""
    root = tmp_path_factory.mktemp("own")
    project = root / "my project"
    shutil.copytree(OWN, project)
    (root / "empty").mkdir()
    (root / "work").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFS2S_DATA_DIR", str(root / "empty"))
        patch.chdir(root / "work")
        yield project


@pytest.fixture(scope="module")
def translation_run(own):
    """``tfs2s train`` on the two line-aligned files of translation.yaml (two tiny epochs); the run folder."""
    assert _run("train", "--config", str(own / "translation.yaml"), "--run-dir", "run",
                "--set", "training.epochs=2", *TINY) == 0
    return os.path.abspath("run")


def test_translation_on_own_files(own, translation_run, capsys):
    summary = _json(os.path.join(translation_run, "summary.json"))
    assert summary["epochs_run"] == 2 and summary["source_vocab_size"] > 10
    assert summary["val_bleu_curve"][-1]["sentences"] == 10

    # Test on the held-out test share: every one of its pairs, none of them in training.
    cfg = load_config(str(own / "translation.yaml"))
    test_pairs = corpora.load_split(cfg.data, "test")
    assert test_pairs and not set(test_pairs) & set(corpora.load_split(cfg.data, "train"))
    assert _run("evaluate", "--run-dir", translation_run, "--split", "test", "--strategies", "greedy",
                "--output", "scores.json") == 0
    scores = _json("scores.json")
    assert scores["split"] == "test" and scores["sentences"] == len(test_pairs)
    assert scores["greedy"]["examples"][0]["source"] == test_pairs[0][0]

    capsys.readouterr()
    assert _run("translate", "--run-dir", translation_run, "con mèo đen ngủ .", "hai con chim nhỏ hát .") == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


@pytest.mark.slow  # 1 minute on 2 CPU cores, nearly all of it `tfs2s export` (exports are tested in the default suite)
def test_translation_export_on_own_files(own, translation_run, capsys):
    capsys.readouterr()
    assert _run("export", "--run-dir", translation_run, "--export-dir", "saved_models") == 0
    out = capsys.readouterr().out
    export = json.loads(out[out.index("{"):])["export"]
    assert export.endswith(os.path.join("toy_vi_en", "1")) and os.path.exists(os.path.join(export, "saved_model.pb"))
    sentences = ["con mèo đen ngủ .", "hai con chim nhỏ hát ."]
    outputs = []
    for source in (["--run-dir", translation_run], ["--model", export]):
        assert _run("translate", *source, *sentences) == 0
        outputs.append(capsys.readouterr().out.splitlines())
    assert len(outputs[0]) == 2 and outputs[0] == outputs[1]  # the export answers as the run folder does


def test_a_missing_split_or_a_bad_file_is_a_one_line_error(own, capsys):
    config = str(own / "translation.yaml")
    assert _run("train", "--config", config, "--run-dir", "r1", "--set", "data.validation_fraction=0") == 2
    err = capsys.readouterr().err
    assert "set data.validation" in err and "data.validation_fraction" in err
    bad = own.parent / "bad"
    shutil.copytree(own, bad)
    (bad / "train.en").write_text("one line only\n", encoding="utf-8")
    assert _run("train", "--config", str(bad / "translation.yaml"), "--run-dir", "r2") == 2
    err = capsys.readouterr().err
    assert "train.vi has 375 lines" in err and "train.en has 1 lines" in err
    assert "Traceback" not in err and not os.path.exists(os.path.join("r2", "summary.json"))


def test_conversations_on_own_json_lines(own, capsys):
    """JSON lines, one conversation a line: (last two turns -> reply) examples, whole conversations held out."""
    assert _run("train", "--config", str(own / "dialogue.yaml"), "--run-dir", "chat_run",
                "--set", "training.epochs=1", *TINY) == 0
    cfg = load_config(str(own / "dialogue.yaml"))
    validation = corpora.load_split(cfg.data, "validation")
    assert validation[1][0] == "hello SEP hi !"  # context_turns: 2, joined by the turn separator
    assert _run("evaluate", "--run-dir", "chat_run", "--split", "validation", "--strategies", "greedy",
                "--output", "chat_scores.json") == 0
    assert _json("chat_scores.json")["sentences"] == len(validation)
    capsys.readouterr()
    assert _run("translate", "--run-dir", "chat_run", "hello", "hi SEP how are you ?") == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
