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


def vary_weights(translator) -> None:
    """Makes a 3-step model's outputs worth comparing: random weights (varied words, not "a a a ...") and an
    output bias that favours ``<unk>`` (some outputs hold one), so ``<unk>`` replacement is exercised."""
    import numpy as np

    from tfs2s.core import features as F
    from tfs2s.core.models.output_bias import output_layer

    rng = np.random.default_rng(0)
    models = translator.models
    models.training.set_weights([w + rng.normal(0, 0.8, w.shape).astype(np.float32)
                                 for w in models.training.get_weights()])
    layer = output_layer(models.decoder_step)
    bias = np.zeros(layer.bias.shape, np.float32)
    bias[F.UNK_ID] = 3.0
    layer.bias.assign(bias)


@pytest.fixture(scope="session")
def client_export(tmp_path_factory, tiny_text_config):
    """``(export folder, translator)``: one tiny word export with attention for the ``runtimes`` tests (Node,
    the browser, every runtime through the bad-input corpus), with the greedy ids graph tfs2s writes and the
    beam ids and text graphs tf2onnx converts (about 80 s on 2 cores). Beam width 3, n-best 2; read-only."""
    from tfs2s.export.onnx.convert import ONNX_GRAPHS, export_onnx
    from tfs2s.tasks import export, load, train

    run_dir = str(tmp_path_factory.mktemp("client_run") / "run")
    cfg = tiny_text_config("clients", **{"data.limit": 200, "training.steps_per_epoch": 3,
                                        "data.max_source_length": 12, "decoding.beam_width": 3,
                                        "decoding.n_best": 2})
    train(cfg, run_dir, verbose=0)
    translator = load(run_dir)
    vary_weights(translator)
    path = export(translator, str(tmp_path_factory.mktemp("client_exports")), "clients", onnx=False)
    graphs = {k: ONNX_GRAPHS[k] for k in ("translate_ids_greedy", "translate_ids", "translate_text")}
    export_onnx(path, os.path.join(path, "onnx"), graphs=graphs, models=translator.models,
                decoding=translator.config.decoding)
    return path, translator
