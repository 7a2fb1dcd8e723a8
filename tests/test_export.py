"""Export: SavedModel layout, signatures, relocation, plain-TensorFlow loading, ONNX parity and bad input."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.core.config import load_config
from tfs2s.core.errors import ExportError
from tfs2s.export.onnx.convert import ONNX_GRAPHS, export_onnx
from tfs2s.export.savedmodel import next_version, read_metadata, verify_export
from tfs2s.tasks import export, load, train, verify
from tfs2s.tasks.text.predictor import Translator
from tfs2s.tasks.text.task import TextTask

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SENTENCES = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau mit einem Hut.", "Kinder."]
LONG = " ".join(["Hund"] * 10000)
# A NUL inside a sentence: onnxruntime-extensions' regex op cut strings at their first NUL (OnnxTranslator folds it).
BAD = ["", "   ", LONG, "😀 日本語 ✓", "Ein Mann.", "Zwei junge Männer spielen auf einer grünen Wiese Fußball.",
       "Ein\x00Hund spielt."]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    path = str(tmp_path_factory.mktemp("run") / "run")
    cfg = load_config(None, {"data.data_dir": data_dir, "data.limit": 300, "data.batch_size": 16,
                             "data.min_frequency": 1, "model.hidden": 32, "model.embedding_dim": 16,
                             # A small target vocabulary: the model writes <unk>, which text outputs replace.
                             "data.target_vocab_size": 40,
                             "model.attention_units": 16, "training.epochs": 2, "training.bleu_sentences": 10,
                             "training.early_stopping_patience": 0, "decoding.n_best": 2, "name": "tiny"})
    train(cfg, path, verbose=0)
    return path


@pytest.fixture(scope="module")
def translator(run_dir):
    return load(run_dir)


@pytest.fixture(scope="module")
def exported(translator, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("saved_models"))
    return export(translator, root, "tiny", onnx=True, max_beam_width=8)


def test_layout_versions_and_overwrite(exported, translator):
    model_dir = os.path.dirname(exported)
    assert os.path.basename(exported) == "1"
    for name in ("saved_model.pb", "variables", "assets/source_vocab.txt", "assets/target_vocab.txt",
                 "assets.extra/config.json", "onnx/translate_text.onnx", "onnx/decoder_step.onnx"):
        assert os.path.exists(os.path.join(exported, name)), name
    meta = read_metadata(exported)
    assert meta["requires_tensorflow_text"] is False and "serving_default" in meta["signatures"]
    import tfs2s

    # Which tfs2s wrote it and when (UTC): clients and benchmark records name the export they ran.
    assert meta["tfs2s"] == tfs2s.__version__ and meta["exported"].endswith("+00:00"), meta["exported"]
    assert not [n for n in os.listdir(model_dir) if n.startswith(".")]  # no temporary folder left behind
    # The ids graphs hold the encoder written with ONNX operators; greedy decoding is written too.
    import onnx

    greedy = onnx.load(os.path.join(exported, "onnx", "translate_ids_greedy.onnx")).graph
    prefixes = {node.name.split("/")[0] for node in greedy.node}
    assert {"tfs2s_encoder", "tfs2s_greedy"} <= prefixes, prefixes
    assert next_version(model_dir) == 2
    with pytest.raises(ExportError, match="already exists"):
        export(translator, os.path.dirname(model_dir), "tiny", version=1)


def test_serving_default_and_bad_input(exported, translator):
    loaded = tf.saved_model.load(exported)
    serve = loaded.signatures["serving_default"]
    out = serve(text=tf.constant(BAD))
    assert out["text"].shape == (len(BAD),) and out["translations"].shape == (len(BAD), 2)
    assert out["tokens"].shape[:2] == (len(BAD), 2) and out["scores"].shape == (len(BAD), 2)
    texts = [t.decode() for t in out["text"].numpy()]
    assert texts[0] == "" and texts[1] == ""
    # The long input is truncated to data.max_source_length, so decoding stays bounded.
    assert out["tokens"].shape[2] <= int(np.ceil(1.5 * translator.config.data.max_source_length)) + 10
    # Invalid UTF-8 and an empty batch.
    bad_bytes = serve(text=tf.constant([b"caf\xc3 \xff\xfe Hund"]))
    assert bad_bytes["text"].shape == (1,)
    empty = serve(text=tf.constant([], dtype=tf.string))
    assert empty["text"].shape == (0,) and empty["tokens"].shape[:2] == (0, 2)
    # Same answers as the in-memory translator.
    assert texts[2:] == translator.translate(BAD[2:], strategy="beam")


def test_translate_greedy_signature(exported, translator):
    greedy = tf.saved_model.load(exported).signatures["translate_greedy"]
    out = greedy(text=tf.constant(SENTENCES + BAD[:2]))
    assert [t.decode() for t in out["text"].numpy()] == translator.translate(SENTENCES + BAD[:2], strategy="greedy")
    assert out["scores"].shape == (len(SENTENCES) + 2, 1)


def test_translate_options(exported):
    options = tf.saved_model.load(exported).signatures["translate_options"]
    text = tf.constant(SENTENCES)
    out = options(text=text, beam_width=tf.constant(4), n_best=tf.constant(3), max_length=tf.constant(0))
    assert out["scores"].shape == (4, 3)
    assert (np.diff(out["scores"].numpy(), axis=1) <= 1e-6).all()
    clipped = options(text=text, beam_width=tf.constant(1000), n_best=tf.constant(50), max_length=tf.constant(3))
    assert clipped["scores"].shape == (4, 8) and clipped["tokens"].shape[2] <= 3


def test_relocated_export_loads_in_plain_tensorflow(exported, run_dir, tmp_path):
    """Move the export, hide the training run, and load it in a process that imports only tensorflow."""
    moved = str(tmp_path / "elsewhere" / "7")
    shutil.copytree(exported, moved)
    expected = tf.saved_model.load(exported).signatures["translate_ids_greedy"](
        **{F.ENCODER_TOKEN_IDS: tf.constant([[5, 6, 7, 3], [8, 3, 0, 0]])})
    hidden = run_dir + ".hidden"
    os.rename(run_dir, hidden)
    try:
        script = textwrap.dedent(f"""
            import json, sys
            import tensorflow as tf
            m = tf.saved_model.load({moved!r})
            out = m.signatures["translate_ids_greedy"](encoder_token_ids=tf.constant([[5, 6, 7, 3], [8, 3, 0, 0]]))
            text = m.signatures["serving_default"](text=tf.constant(["Ein Mann.", ""]))["text"]
            bad = [m for m in ("tensorflow_text", "tfs2s") if m in sys.modules]
            print(json.dumps({{"tokens": out["tokens"].numpy().tolist(), "text": [t.decode() for t in text.numpy()],
                              "bad": bad}}))
        """)
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                              cwd=str(tmp_path), env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    finally:
        os.rename(hidden, run_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["bad"] == []
    assert result["tokens"] == expected["tokens"].numpy().tolist()
    assert result["text"][1] == ""


def test_verify_export_detects_a_different_model(exported, translator):
    report = verify(exported, translator)
    assert report["translate_ids"]["examples"] == 4 and report["translate_ids"]["max_diff"] < 1e-4
    weights = translator.models.training.get_weights()
    try:
        translator.models.training.set_weights([w * 1.5 for w in weights])
        with pytest.raises(AssertionError, match="differ"):
            verify(exported, translator)
    finally:
        translator.models.training.set_weights(weights)


def test_onnx_parity_without_tensorflow(exported, translator, tmp_path):
    """ONNX graphs in onnxruntime (a process without TensorFlow) give TF's ids, scores and logits."""
    loaded = tf.saved_model.load(exported)
    sources = SENTENCES + BAD[2:]
    ids = translator.encode(tf.constant(sources)).numpy()
    decoder_ids = np.array([[F.BOS_ID, 5, 6, 7], [F.BOS_ID, 9, 4, 0]] * 4, np.int32)[: len(sources)]
    expected = {
        "greedy": loaded.signatures["translate_ids_greedy"](encoder_token_ids=tf.constant(ids)),
        "beam": loaded.signatures["translate_ids"](encoder_token_ids=tf.constant(ids)),
        "text": loaded.signatures["translate_text"](text=tf.constant(sources)),
        "logits": loaded.signatures["logits"](encoder_token_ids=tf.constant(ids[: len(decoder_ids)]),
                                              decoder_token_ids=tf.constant(decoder_ids)),
    }
    np.savez(tmp_path / "inputs.npz", ids=ids, decoder_ids=decoder_ids)
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from tfs2s.export.onnx.runtime import OnnxTranslator
        t = OnnxTranslator({exported!r})
        data = np.load({str(tmp_path / "inputs.npz")!r})
        ids = data["ids"]
        out = {{}}
        for strategy in ("greedy", "beam"):
            r = t.translate_ids(ids, strategy)
            out[strategy] = {{"tokens": r["tokens"].tolist(), "scores": r["scores"].tolist(),
                              "alignment": r["alignment"].tolist()}}
        host = t.greedy_host_loop(ids, max_length=t.max_length(ids))
        out["host"] = {{"tokens": host["tokens"].tolist(), "scores": host["scores"].tolist()}}
        out["text"] = t.translate({sources!r})
        out["bad"] = t.translate({BAD!r} + [b"caf\\xc3 \\xff Hund"])
        out["empty"] = t.translate([])
        out["only_empty"] = t.translate(["", " \\t\\n\\r "])
        out["empty_ids"] = list(t.translate_ids(np.zeros((0, 3), np.int32))["tokens"].shape)
        logits = t.session("logits").run(["logits"], {{"encoder_token_ids": ids[:len(data["decoder_ids"])],
                                                      "decoder_token_ids": data["decoder_ids"]}})[0]
        np.save({str(tmp_path / "logits.npy")!r}, logits)
        out["tensorflow_imported"] = "tensorflow" in sys.modules
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["tensorflow_imported"] is False
    for strategy in ("greedy", "beam"):
        np.testing.assert_array_equal(got[strategy]["tokens"], expected[strategy]["tokens"].numpy())
        np.testing.assert_allclose(got[strategy]["scores"], expected[strategy]["scores"].numpy(), atol=1e-4)
        # The ids graphs' attention weights (clients replace <unk> and plot alignments with them).
        np.testing.assert_allclose(got[strategy]["alignment"], expected[strategy]["alignment"].numpy(), atol=1e-4)
    tf_greedy = expected["greedy"]["tokens"].numpy()[:, 0]
    host = np.array(got["host"]["tokens"])
    np.testing.assert_array_equal(host, tf_greedy[:, : host.shape[1]])
    assert not tf_greedy[:, host.shape[1]:].any()
    np.testing.assert_allclose(got["host"]["scores"], expected["greedy"]["scores"].numpy()[:, 0], atol=1e-4)
    assert got["text"] == [t.decode() for t in expected["text"]["translation"].numpy()]
    assert len(got["bad"]) == len(BAD) + 1 and got["bad"][0] == "" and got["bad"][1] == ""
    assert got["empty"] == [] and got["empty_ids"] == [0, 1, 0] and got["only_empty"] == ["", ""]
    # <unk> replaced by the attended source word in the ONNX text graph as in Translator.translate.
    assert any(F.UNK in t for t in translator.translate(sources, strategy="beam", replace_unknown=False))
    assert got["text"] == translator.translate(sources, strategy="beam")
    assert not any(F.UNK in t for t in got["text"])
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), expected["logits"]["logits"].numpy(), atol=1e-4)


@pytest.mark.slow  # about 65 s (its own export and ONNX conversions); n-gram blocking itself is tested in test_decoding
def test_no_repeat_ngram_export_agrees_in_tf_and_onnx(translator, tmp_path):
    cfg = translator.config.replace(**{"decoding.no_repeat_ngram_size": 1})
    blocked = Translator(translator.models, translator.source_tokenizer, translator.target_tokenizer, cfg)
    path = export(blocked, str(tmp_path), "norepeat", onnx=False)
    graphs = {k: ONNX_GRAPHS[k] for k in ("translate_ids_greedy", "translate_ids")}
    export_onnx(path, os.path.join(path, "onnx"), graphs=graphs)
    ids = blocked.encode(tf.constant(SENTENCES + BAD[2:])).numpy()
    loaded = tf.saved_model.load(path)
    served = {"greedy": loaded.signatures["translate_ids_greedy"](encoder_token_ids=tf.constant(ids)),
              "beam": loaded.signatures["translate_ids"](encoder_token_ids=tf.constant(ids))}
    for out in served.values():  # n = 1: no token twice in one output
        for tokens, length in zip(out["tokens"].numpy().reshape(-1, out["tokens"].shape[-1]),
                                  out["length"].numpy().reshape(-1)):
            assert len(set(tokens[:length].tolist())) == length
    import onnxruntime as ort

    for strategy, filename in (("greedy", ONNX_GRAPHS["translate_ids_greedy"][0]), ("beam", ONNX_GRAPHS["translate_ids"][0])):
        session = ort.InferenceSession(os.path.join(path, "onnx", filename), providers=["CPUExecutionProvider"])
        tokens = session.run(["tokens"], {"encoder_token_ids": ids})[0]
        np.testing.assert_array_equal(tokens, served[strategy]["tokens"].numpy())


@pytest.mark.slow  # about a minute; tied greedy ONNX and tied models are tested fast in test_onnx_decoder/test_models
def test_tied_embeddings_export_agrees_in_tf_and_onnx(data_dir, tmp_path):
    """A model whose target embedding is its output layer exports, relocates, and decodes alike in TF and ONNX."""
    from tfs2s.export.onnx.runtime import OnnxTranslator

    cfg = load_config(None, {"data.data_dir": data_dir, "data.limit": 200, "data.batch_size": 16,
                             "data.min_frequency": 1, "model.hidden": 24, "model.embedding_dim": 24,
                             "model.tie_embeddings": True, "model.attention_units": 16, "training.epochs": 1,
                             "training.bleu_sentences": 0, "training.early_stopping_patience": 0, "name": "tied"})
    run = str(tmp_path / "run")
    train(cfg, run, verbose=0)
    translator = load(run)
    path = export(translator, str(tmp_path / "exports"), "tied", max_beam_width=8)
    # The graphs this test runs (the encoder and greedy decoding written by tfs2s, beam and text converted).
    export_onnx(path, os.path.join(path, "onnx"), graphs={k: ONNX_GRAPHS[k] for k in (
        "translate_ids_greedy", "translate_ids", "translate_text")}, models=translator.models,
        decoding=translator.config.decoding)
    moved = str(tmp_path / "moved")
    shutil.move(path, moved)
    checks = TextTask().export_checks(translator, SENTENCES)
    assert verify_export(moved, checks)["translate_ids"]["examples"] == len(SENTENCES)
    loaded = tf.saved_model.load(moved)
    ids = translator.encode(tf.constant(SENTENCES)).numpy()
    onnx = OnnxTranslator(moved)
    for signature, strategy in (("translate_ids_greedy", "greedy"), ("translate_ids", "beam")):
        served = loaded.signatures[signature](encoder_token_ids=tf.constant(ids))
        got = onnx.translate_ids(ids, strategy)
        np.testing.assert_array_equal(got["tokens"], served["tokens"].numpy())
        np.testing.assert_allclose(got["scores"], served["scores"].numpy(), atol=1e-4)
    assert onnx.translate(SENTENCES) == [x.decode() for x in
                                         loaded.signatures["translate_text"](text=tf.constant(SENTENCES))[
                                             "translation"].numpy()]


def test_onnx_text_graph_in_a_process_that_loaded_tensorflow_first(exported):
    """onnxruntime-extensions' regex op called TensorFlow's RE2 there and did nothing (text came out unnormalised
    and with the padding's spaces); the runner loads the library so that it works, or says why it cannot."""
    script = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        tf.strings.regex_replace(tf.constant(["a  b"]), " +", " ")  # TensorFlow's RE2 in use
        if sys.argv[1] == "late":
            import onnxruntime_extensions  # imported by the user after TensorFlow: cannot be mended
        from tfs2s.export.onnx.runtime import OnnxTranslator
        try:
            print(json.dumps(OnnxTranslator({exported!r}).translate({SENTENCES + BAD!r})))
        except RuntimeError as e:
            print(json.dumps(str(e)))
    """)
    expected = tf.saved_model.load(exported).signatures["translate_text"](text=tf.constant(SENTENCES + BAD))
    for case in ("runner_first", "late"):
        proc = subprocess.run([sys.executable, "-c", script, case], capture_output=True, text=True, timeout=600,
                              cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        if case == "late":
            assert "imported after TensorFlow" in got
        else:
            assert got == [t.decode() for t in expected["translation"].numpy()]
