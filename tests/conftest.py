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
