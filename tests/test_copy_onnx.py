"""ONNX export of copy-attention models (``model.copy``): the ids graphs agree with the SavedModel (tokens, copied
ids included, scores and alignments), bad input gets an answer, and copied ids become the source words they copy
on the host (``tfs2s.export.onnx.runtime``) as in the SavedModel's text."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from test_copy_attention import _copy_config, _template_tokenizers, _vary  # noqa: E402
from tfs2s.core import features as F
from tfs2s.core.decoding.unk import copied_tokens
from tfs2s.core.models import build_models
from tfs2s.export.onnx.runtime import copied_words
from tfs2s.export.savedmodel import read_metadata
from tfs2s.tasks import export

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Copies of names neither vocabulary has, and bad input: an empty text, only unknown words, more words than
# data.max_source_length (8) and one very long word.
SOURCES = ["hallo anna bob", "ich heiße qqxzvb .", "das ist brkzmt und er lacht", "", "qqq www eee",
           "zzzz " * 40, "hallo " + "x" * 500, "brkzmt kommt aus berlin"]
STRATEGIES = {"greedy": "translate_ids_greedy", "beam": "translate_ids"}


def _translator(tmp_path, **overrides):
    from tfs2s.tasks.text.predictor import Translator

    s, t = _template_tokenizers(tmp_path)
    cfg = _copy_config(**overrides)
    models = build_models(cfg.model, s.vocab_size, t.vocab_size)
    _vary(models, 2)  # untrained, varied weights: some outputs copy (asserted below)
    return Translator(models, s, t, cfg)


def export_copy_model(folder, **overrides):
    """``(export folder, translator)``: a tiny copy model's SavedModel under ``folder`` and its greedy and beam ids
    graphs, both converted by tf2onnx (about 45 s on 2 cores). ``overrides``: dotted config keys."""
    from tfs2s.export.onnx.convert import ONNX_GRAPHS, export_onnx

    translator = _translator(folder / "vocab", **overrides)
    path = export(translator, str(folder / "exports"), "copy", onnx=False)
    export_onnx(path, os.path.join(path, "onnx"), graphs={k: ONNX_GRAPHS[k] for k in STRATEGIES.values()},
                models=translator.models, decoding=translator.config.decoding, workers=2)
    return path, translator


@pytest.fixture(scope="module")
def copy_export(tmp_path_factory):
    return export_copy_model(tmp_path_factory.mktemp("copy"))


def _host_words(translator, texts, ids):
    """Each text's normalised words as a host tokenizer has them (none for a text without words)."""
    read = (ids != F.PAD_ID).sum(axis=1) - 1
    words = translator.source_tokenizer.words(tf.constant(texts)).to_list()
    return [[w.decode() for w in row] if n > 0 else [] for row, n in zip(words, read)]


def _run_onnx(script: str, tmp_path) -> dict:
    """Runs ``script`` in a process without TensorFlow; returns the JSON of its last line."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.runtimes  # two tf2onnx conversions (~80 s on 2 cores): run after the default suite, as `.ci/run` does
def test_ids_graphs_agree_with_the_saved_model_bad_input_too(copy_export, tmp_path):
    path, translator = copy_export
    assert read_metadata(path)["copy"] is True
    vocab = translator.target_tokenizer.vocab_size
    ids = translator.encode(tf.constant(SOURCES)).numpy()
    assert ids.shape[1] == translator.config.data.max_source_length  # the long source was cut
    batches = {"texts": ids, "only_empty": np.array([[F.EOS_ID]], np.int32),
               # Ids longer than data.max_source_length (clients may send them): decoded, no crash.
               "long_ids": np.array([[5, 6, 7, 8, 9, 10, 5, 6, 7, 8, 9, 10, 4, F.EOS_ID]], np.int32)}
    np.savez(tmp_path / "inputs.npz", **batches)
    got = _run_onnx(f"""
        import json, sys
        import numpy as np
        from tfs2s.export.onnx.runtime import OnnxTranslator
        t = OnnxTranslator({path!r})
        batches = np.load({str(tmp_path / "inputs.npz")!r})
        out = {{}}
        for name in batches.files:
            for strategy in ("greedy", "beam"):
                r = t.translate_ids(batches[name], strategy)
                out[name + "/" + strategy] = {{k: v.tolist() for k, v in r.items()}}
                if name == "texts":
                    out["words/" + strategy] = t.words(r, {_host_words(translator, SOURCES, ids)!r})
        out["tensorflow_imported"] = "tensorflow" in sys.modules
        print(json.dumps(out))
    """, tmp_path)
    assert got["tensorflow_imported"] is False
    loaded = tf.saved_model.load(path)
    texts_served = {}
    for name, batch in batches.items():
        for strategy, signature in STRATEGIES.items():
            served = loaded.signatures[signature](encoder_token_ids=tf.constant(batch))
            onnx = got[f"{name}/{strategy}"]
            np.testing.assert_array_equal(onnx["tokens"], served["tokens"].numpy(), err_msg=f"{name}/{strategy}")
            np.testing.assert_array_equal(onnx["length"], served["length"].numpy())
            np.testing.assert_allclose(onnx["scores"], served["scores"].numpy(), atol=1e-4)
            np.testing.assert_allclose(onnx["alignment"], served["alignment"].numpy(), atol=1e-4)
            if name == "texts":  # the comparison is worth something: some outputs copy
                assert (served["tokens"].numpy() >= vocab).any(), strategy
                texts_served[strategy] = served
    # Copied ids become the words they copy on the host, as in the SavedModel's text (before joining).
    for strategy in STRATEGIES:
        tokens, lengths = texts_served[strategy]["tokens"], texts_served[strategy]["length"].numpy()
        flat = tf.reshape(tokens, [-1, tokens.shape[-1]])
        shown = translator.target_tokenizer.dense_tokens(tf.where(flat >= vocab, F.UNK_ID, flat))
        strings = copied_tokens(tf.reshape(shown, tf.shape(tokens)), tokens, vocab,
                                translator.source_tokenizer.words(tf.constant(SOURCES)),
                                (ids != F.PAD_ID).sum(axis=1) - 1).numpy()
        expected = [[[w.decode() for w in row[:n]] for row, n in zip(rows, ns)] for rows, ns in zip(strings, lengths)]
        assert got[f"words/{strategy}"] == expected
        assert any(w in ("anna", "bob", "qqxzvb", "brkzmt") for rows in expected for row in rows for w in row)


@pytest.mark.parametrize("reverse", [False, True])
def test_copied_words_follow_copied_tokens(reverse):
    """The host's rule (no TensorFlow) is the graph's: every position, past the words and past the source."""
    vocab, words = 20, ["anna", "bob", "carl", "dora"]
    rng = np.random.default_rng(int(reverse))
    for read in range(len(words) + 1):
        ids = rng.integers(0, vocab + 8, (1, 1, 12))
        tokens = np.where(ids >= vocab, F.UNK, np.char.add("w", ids.astype(str)))
        expected = copied_tokens(tf.constant(tokens), tf.constant(ids), vocab, tf.ragged.constant([words]),
                                 tf.constant([read]), reverse).numpy()[0, 0]
        got = copied_words(tokens[0, 0].tolist(), ids[0, 0].tolist(), vocab, words[:read], reverse)
        assert got == [w.decode() for w in expected]


@pytest.mark.slow  # the whole ONNX export (text graph included) through `export(onnx=True)`: 5 min on busy cores
def test_onnx_export_of_a_copy_model_translates_text_like_the_saved_model(tmp_path):
    """``export --onnx`` no longer refuses copy models; its text graph shows copied words as the SavedModel."""
    translator = _translator(tmp_path / "vocab", **{"data.reverse_source": True})
    path = export(translator, str(tmp_path / "exports"), "copy", onnx=True)
    texts = SOURCES + ["   ", "\ufffd\u0000 <s> </s> <pad>"]
    got = _run_onnx(f"""
        import json
        from tfs2s.export.onnx.runtime import OnnxTranslator
        print(json.dumps(OnnxTranslator({path!r}).translate({texts!r})))
    """, tmp_path)
    served = tf.saved_model.load(path).signatures["translate_text"](text=tf.constant(texts))
    assert got == [t.decode() for t in served["translation"].numpy()]
    assert got == translator.translate(texts, strategy="beam")
    assert any(name in " ".join(got) for name in ("anna", "bob", "qqxzvb", "brkzmt"))


def test_int8_greedy_graph_is_refused_with_a_clear_error(tmp_path):
    """`--quantize int8` writes greedy decoding by hand, which has no copy distribution: an ExportError, not a crash."""
    from tfs2s.core.errors import ExportError
    from tfs2s.export.onnx.convert import int8_greedy_model

    translator = _translator(tmp_path)
    with pytest.raises(ExportError, match="copy attention"):
        int8_greedy_model(translator.models, translator.config.decoding)
