"""SentencePiece subwords: learning, lossless round trips, special ids, shared vocabularies, errors, export."""

import gzip
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
from tfs2s.core.errors import ConfigError
from tfs2s.core.subwords import SentencePieceTokenizer, VocabularySizeError
from tfs2s.core.tokenizer_registry import TOKENIZERS, learn_tokenizer, load_tokenizer
from tfs2s.core.tokenizers import normalize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMBERS = "1234567890 3.14159 -42"
HELD_OUT = [NUMBERS, f"Frau Schmidt aus Köln zahlt {NUMBERS} Euro.", "  Zwei   Männer  spielen\tFußball. ", "",
            "Ein Mann namens Jürgen fährt 17 km nach Zürich."]


def _lines(data_dir, side, start, count):
    with gzip.open(os.path.join(data_dir, "multi30k", f"train.{side}.gz"), "rt", encoding="utf-8") as f:
        return [line.strip() for i, line in enumerate(f) if start <= i < start + count]


@pytest.fixture(scope="module")
def corpus(data_dir):
    """300 German Multi30k lines plus generated ones holding numbers and names (every digit, '.', '-')."""
    numbers = [f"Herr Müller aus Zürich zahlt {n} Euro, {n / 7:.5f} oder -{n % 97}." for n in range(0, 99999, 997)]
    return _lines(data_dir, "de", 0, 300) + numbers


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def tok(request, corpus, tmp_path_factory):
    path = str(tmp_path_factory.mktemp(request.param) / "source_vocab.txt")
    return learn_tokenizer("sentencepiece", corpus, path, 300, subword_model=request.param, name="source_tokenizer")


def _training_alphabet(corpus):
    return set("".join(corpus)) | {" "}


def test_registry_knows_sentencepiece():
    assert TOKENIZERS["sentencepiece"] is SentencePieceTokenizer and {"word", "wordpiece", "char"} <= set(TOKENIZERS)


def test_round_trip_is_lossless_on_held_out_text(tok, corpus, data_dir):
    alphabet = _training_alphabet(corpus)
    # Held-out Multi30k lines whose characters were all seen in training (others would hold <unk>).
    held_out = [t for t in _lines(data_dir, "de", 5000, 200) if set(t) <= alphabet][:100] + HELD_OUT
    assert len(held_out) > 50
    texts = tf.constant(held_out)
    ids = tok.tokenize(texts)
    back = [t.decode("utf-8") for t in tok.detokenize(ids.to_tensor()).numpy()]
    expected = [t.decode("utf-8") for t in normalize(texts, split_punctuation=False).numpy()]
    assert back == expected
    tail = back[-len(HELD_OUT):]
    assert tail[0] == NUMBERS and "Jürgen" in tail[-1] and tail[2] == "Zwei Männer spielen Fußball."
    flat = ids.flat_values.numpy()
    assert flat.min() >= F.UNK_ID and F.BOS_ID not in flat and F.EOS_ID not in flat and flat.max() < tok.vocab_size
    assert F.UNK_ID not in flat
    digits = [p.decode() for p in tok.id_tokens(tok.tokenize(tf.constant(["1234567890"])).to_tensor())[0].numpy()]
    assert "".join(digits).lstrip("\u2581") == "1234567890" and all(len(p.lstrip("\u2581")) <= 1 for p in digits)


def test_special_ids_and_text_that_spells_them(tok):
    pieces = [p.decode() for p in tok.id_to_token.lookup(tf.range(4, dtype=tf.int64)).numpy()]
    assert tuple(pieces) == F.SPECIAL_TOKENS
    ids = tok.tokenize(tf.constant(["<s> </s> <pad> Mann"])).flat_values.numpy()
    assert not set(ids.tolist()) & {F.PAD_ID, F.BOS_ID, F.EOS_ID}
    # Ids after </s> are cut, <pad>/<s> dropped; an unseen character is <unk>.
    man = tok.tokenize(tf.constant(["Mann"])).flat_values.numpy().tolist()
    row = [F.BOS_ID] + man + [F.EOS_ID] + man
    assert tok.detokenize(tf.constant([row]))[0].numpy().decode() == "Mann"
    assert tok.tokenize(tf.constant(["☃"])).flat_values.numpy().tolist()[-1] == F.UNK_ID


def test_portable_graph_tokenizes_like_the_tracked_tokenizer(tok):
    texts = tf.constant([t.lower() for t in HELD_OUT] + ["Ein Hund."])
    assert tok.tokenize(texts, portable=True).to_list() == tok.tokenize(texts).to_list()


def test_learning_is_deterministic(corpus, tmp_path):
    a = learn_tokenizer("sentencepiece", corpus, str(tmp_path / "a_vocab.txt"), 200)
    b = learn_tokenizer("sentencepiece", corpus, str(tmp_path / "b_vocab.txt"), 200)
    assert a.model == b.model and a.vocab_size == 200


def test_save_and_load_round_trip(tok, tmp_path):
    tok.save(str(tmp_path), "target")
    again = load_tokenizer(str(tmp_path), "target")
    assert isinstance(again, SentencePieceTokenizer) and again.model == tok.model
    assert again.get_config() == tok.get_config()
    assert json.load(open(tmp_path / "target_tokenizer.json"))["subword_model"] == tok.subword_model
    texts = tf.constant(HELD_OUT)
    assert again.tokenize(texts).to_list() == tok.tokenize(texts).to_list()


def _cfg(data_dir, **overrides):
    return load_config(None, {"data.data_dir": data_dir, "data.tokenizer": "sentencepiece", **overrides})


def test_vocabulary_larger_than_the_data_is_a_config_error(data_dir, corpus, tmp_path):
    from tfs2s.tasks.base import prepare_tokenizer

    with pytest.raises(ConfigError, match=r"data.target_vocab_size is 100000, .* at most (\d+)") as info:
        prepare_tokenizer(_cfg(data_dir), str(tmp_path), "target", corpus, 100000)
    assert isinstance(info.value, VocabularySizeError) and 300 < info.value.bound < 100000
    with pytest.raises(ConfigError, match=r"data.source_vocab_size is 10, .* at least"):
        prepare_tokenizer(_cfg(data_dir), str(tmp_path), "source", corpus, 10)
    assert not os.path.exists(tmp_path / "target_tokenizer.json")
    # The bound is a size that works.
    assert prepare_tokenizer(_cfg(data_dir), str(tmp_path), "target", corpus, info.value.bound).vocab_size == \
        info.value.bound


def test_shared_vocab_is_one_model_learned_from_both_sides(data_dir, tmp_path):
    from tfs2s.tasks.base import prepare_text_tokenizers

    pairs = list(zip(_lines(data_dir, "de", 0, 300), _lines(data_dir, "en", 0, 300)))
    cfg = _cfg(data_dir, **{"data.shared_vocab": True, "data.source_vocab_size": 500,
                            "data.target_vocab_size": 400, "data.subword_model": "bpe"})
    source, target = prepare_text_tokenizers(cfg, str(tmp_path), pairs)
    assert source.model == target.model and source.vocab_size == target.vocab_size == 500
    assert source.get_config()["shared"] and target.get_config()["subword_model"] == "bpe"
    texts = tf.constant(["A man in a blue shirt.", "Ein Mann mit einem Hut."])
    assert source.tokenize(texts).to_list() == target.tokenize(texts).to_list()
    assert F.UNK_ID not in source.tokenize(texts).flat_values.numpy()
    again = prepare_text_tokenizers(cfg, str(tmp_path), [])  # reloaded, not learned again
    assert again[1].model == source.model
    # Separate models: the English-only pieces are not in the German model.
    sizes = {"data.source_vocab_size": 300, "data.target_vocab_size": 300}
    separate = prepare_text_tokenizers(_cfg(data_dir, **sizes), str(tmp_path / "separate"), pairs)
    assert separate[0].model != separate[1].model


def test_tokenizer_travels_with_a_moved_savedmodel(tok, tmp_path):
    """The model (graph constant and asset) and the vocabulary (asset) need nothing from the run folder."""
    class Module(tf.Module):
        def __init__(self, tokenizer):
            super().__init__()
            self.tokenizer = tokenizer

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def round_trip(self, texts):
            ids = self.tokenizer.tokenize(texts)
            return {"ids": ids.to_tensor(), "text": self.tokenizer.detokenize(ids.to_tensor())}

    copy = tmp_path / "copy"
    tok.save(str(copy), "source")
    own = load_tokenizer(str(copy), "source")
    tf.saved_model.save(Module(own), str(tmp_path / "first"), signatures={})
    shutil.copytree(tmp_path / "first", tmp_path / "moved")
    shutil.rmtree(tmp_path / "first")
    shutil.rmtree(copy)
    assert os.path.exists(tmp_path / "moved" / "assets" / "source_sentencepiece.model")
    loaded = tf.saved_model.load(str(tmp_path / "moved"))
    out = loaded.round_trip(tf.constant(HELD_OUT))
    assert out["ids"].numpy().tolist() == tok.tokenize(tf.constant(HELD_OUT)).to_tensor().numpy().tolist()
    assert [t.decode() for t in out["text"].numpy()] == [
        t.decode() for t in normalize(tf.constant(HELD_OUT), split_punctuation=False).numpy()]


# --------------------------------------------------------------------------- a tiny model, exported
SENTENCES = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Drei Kinder mit 12 Bällen.", ""]


@pytest.fixture(scope="module")
def translator(tmp_path_factory, data_dir):
    from tfs2s.tasks import load, train

    path = str(tmp_path_factory.mktemp("sp_run") / "run")
    cfg = _cfg(data_dir, **{"data.limit": 200, "data.batch_size": 16, "data.source_vocab_size": 300,
                            "data.target_vocab_size": 300, "model.hidden": 16, "model.embedding_dim": 8,
                            "model.attention_units": 8, "training.epochs": 1, "training.bleu_sentences": 5,
                            "training.early_stopping_patience": 0, "name": "sp"})
    train(cfg, path, verbose=0)
    return load(path)


@pytest.fixture(scope="module")
def exported(translator, tmp_path_factory):
    from tfs2s.tasks import export

    root = str(tmp_path_factory.mktemp("sp_saved_models"))
    return export(translator, root, "sp", onnx=False, max_beam_width=4)


@pytest.mark.slow  # training and exporting a tiny model take about 100 s here
def test_savedmodel_moved_translates_like_the_translator(translator, exported, tmp_path):
    from tfs2s.export.savedmodel import read_metadata
    from tfs2s.tasks import verify

    meta = read_metadata(exported)
    assert meta["requires"] == ["tensorflow_text"] and meta["tokenizer"] == "sentencepiece"
    assert meta["host_tokenizers"]["source"]["assets"]["model"] == "source_sentencepiece.model"
    assert "translate_text.onnx" in meta["onnx_graphs"]
    assert os.path.exists(os.path.join(exported, "assets", "source_sentencepiece.model"))
    moved = str(tmp_path / "moved")
    shutil.copytree(exported, moved)
    shutil.rmtree(exported)  # nothing may point back at the first folder (or the run folder's files)
    loaded = tf.saved_model.load(moved)
    served = [t.decode() for t in loaded.signatures["serving_default"](text=tf.constant(SENTENCES))["text"].numpy()]
    assert served == translator.translate(SENTENCES, strategy="beam")
    assert served[-1] == "" and any(served)
    assert verify(moved, translator)


@pytest.mark.slow  # the tf2onnx conversions take about a minute here
def test_onnx_ids_and_text_graphs_agree_with_tensorflow(translator, tmp_path):
    from tfs2s.tasks import export

    path = export(translator, str(tmp_path), "sp", onnx=True, max_beam_width=4)
    loaded = tf.saved_model.load(path)
    ids = translator.encode(tf.constant(SENTENCES)).numpy()
    expected_greedy = loaded.signatures["translate_ids_greedy"](encoder_token_ids=tf.constant(ids))["tokens"].numpy()
    expected_text = [t.decode() for t in loaded.signatures["translate_text"](text=tf.constant(SENTENCES))[
        "translation"].numpy()]
    np.save(tmp_path / "ids.npy", ids)
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from tfs2s.export.onnx.runtime import OnnxTranslator
        from tfs2s.export.onnx.host_subwords import HostSentencePiece
        t = OnnxTranslator({path!r})
        host = HostSentencePiece.from_export({path!r}, "source")
        ids = host.encode_batch({SENTENCES!r}, t.metadata["max_source_length"], t.metadata["reverse_source"])
        out = {{"greedy": t.translate_ids(ids, "greedy")["tokens"].tolist(), "host_ids": ids.tolist(),
                "text": t.translate({SENTENCES!r}), "tensorflow_imported": "tensorflow" in sys.modules}}
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["tensorflow_imported"] is False
    np.testing.assert_array_equal(got["host_ids"], ids)
    np.testing.assert_array_equal(got["greedy"], expected_greedy)
    assert got["text"] == expected_text and any(expected_text) and expected_text[-1] == ""
