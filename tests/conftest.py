import gzip
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from tfs2s.data.corpora import default_data_dir  # noqa: E402


@pytest.fixture(scope="session")
def data_dir():
    """The shared corpora (../shared/data); tests that need them skip loudly when it is absent."""
    path = default_data_dir()
    if path is None or not os.path.isdir(os.path.join(path, "multi30k")):
        pytest.skip("../shared/data/multi30k not found")
    return path


@pytest.fixture
def write_lines():
    """Writes lines to a text file, gzipped with ``gz=True`` (corpus files for the reader tests)."""
    def write(path, lines, gz=False):
        text = "\n".join(lines) + "\n"
        if gz:
            with gzip.open(path, "wt", encoding="utf-8") as f:
                f.write(text)
        else:
            path.write_text(text, encoding="utf-8")

    return write


@pytest.fixture
def tiny_vocab(tmp_path):
    """A word tokenizer pair learned from a handful of sentences."""
    from tfs2s.core.tokenizers import learn_tokenizer

    src = ["ein mann fährt", "zwei hunde spielen", "ein hund läuft schnell", "eine frau singt"]
    tgt = ["a man drives", "two dogs play", "a dog runs fast", "a woman sings"]
    s = learn_tokenizer("word", src, str(tmp_path / "s.txt"), 100, name="source_tokenizer")
    t = learn_tokenizer("word", tgt, str(tmp_path / "t.txt"), 100, name="target_tokenizer")
    return s, t, list(zip(src, tgt))


# The smallest text model the export and client tests train: a few steps, seconds.
TINY_TEXT_MODEL = {"data.batch_size": 16, "data.min_frequency": 1, "model.hidden": 16, "model.embedding_dim": 8,
                   "model.attention_units": 8, "training.epochs": 1, "training.bleu_sentences": 0,
                   "training.early_stopping_patience": 0}


@pytest.fixture(scope="session")
def tiny_text_config(data_dir):
    """``make(name, **overrides)``: a ``Config`` of ``TINY_TEXT_MODEL`` on Multi30k with dotted ``overrides``."""
    from tfs2s.core.config import load_config

    def make(name: str, **overrides):
        return load_config(None, {"data.data_dir": data_dir, **TINY_TEXT_MODEL, "name": name, **overrides})

    return make


@pytest.fixture
def run_cli(capsys):
    """``run(*argv) -> (exit code, stdout, stderr)`` of ``tfs2s`` in this process."""
    from tfs2s.cli import main

    def run(*argv):
        with pytest.raises(SystemExit) as done:
            main(list(argv))
        out = capsys.readouterr()
        return done.value.code, out.out, out.err

    return run
