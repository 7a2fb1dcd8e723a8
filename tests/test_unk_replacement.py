"""<unk> in a word model's output becomes the attended source word, in-graph: the same words from
``Translator.translate``, the SavedModel's text signatures (traced here without saving) and the ONNX text graph
(tests/test_export.py); the config key turns it off, and where it does not apply nothing is replaced."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.core.config import load_config
from tfs2s.core.decoding.unk import replace_unknown_words
from tfs2s.core.errors import InputError
from tfs2s.core.models import build_models
from tfs2s.core.models.output_bias import output_layer
from tfs2s.core.tokenizers import join_tokens
from tfs2s.tasks.text.predictor import Translator
from tfs2s.tasks.text.serving import TextServingModule

SOURCES = ["ein mann fährt schnell", "zwei hunde", "eine frau singt ein hund läuft", "", "   "]


@pytest.fixture(scope="module")
def tiny_vocab(tmp_path_factory):
    """conftest's word tokenizer pair, once for the module (its translators then share their traced graphs)."""
    from tfs2s.core.tokenizers import learn_tokenizer

    folder = tmp_path_factory.mktemp("vocab")
    src = ["ein mann fährt", "zwei hunde spielen", "ein hund läuft schnell", "eine frau singt"]
    tgt = ["a man drives", "two dogs play", "a dog runs fast", "a woman sings"]
    return (learn_tokenizer("word", src, str(folder / "s.txt"), 100, name="source_tokenizer"),
            learn_tokenizer("word", tgt, str(folder / "t.txt"), 100, name="target_tokenizer"), None)


@pytest.fixture(scope="module")
def translator(tiny_vocab):
    return _translator(tiny_vocab)


def _translator(tiny_vocab, attention="bahdanau", reverse=False, replace=True, max_source_length=4):
    s, t, _ = tiny_vocab
    cfg = load_config(None, {"model.hidden": 16, "model.embedding_dim": 8, "model.attention_units": 8,
                             "model.attention": attention, "data.reverse_source": reverse,
                             "data.max_source_length": max_source_length, "decoding.beam_width": 3,
                             "decoding.replace_unknown": replace})
    keras.utils.set_random_seed(0)
    models = build_models(cfg.model, s.vocab_size, t.vocab_size)
    # An untrained model whose output favours <unk>, then a few words, then </s>: outputs full of <unk>.
    bias = np.zeros(t.vocab_size, np.float32)
    bias[F.UNK_ID], bias[F.EOS_ID], bias[4:7] = 3.0, 1.0, 2.6
    output_layer(models.teacher_forced).bias.assign(bias)
    return Translator(models, s, t, cfg)


def _reference(translator, strategy):
    """The Python reference on the unreplaced outputs and alignments of ``translate_batch``."""
    out = translator.translate_batch(SOURCES, strategy, alignment=True, replace_unknown=False)
    d = translator.config.data
    words = [[w.decode() for w in row] for row in translator.source_tokenizer.words(tf.constant(SOURCES)).to_list()]
    tokens = translator.target_tokenizer.id_tokens(out["tokens"][:, 0]).to_list()
    texts, unks = [], 0
    for i, row in enumerate(tokens):
        row = [t.decode() for t in row]
        source = [w for w in words[i] if w != F.PAD][: d.max_source_length - 1]
        unks += row.count(F.UNK) if source else 0  # an empty source translates to ""
        replaced = replace_unknown_words(row, out["alignment"][i, 0], source, F.UNK, d.reverse_source)
        texts.append(join_tokens(tf.constant([replaced or [""]]))[0].numpy().decode() if source else "")
    return texts, unks, list(out["text"][:, 0])


@pytest.mark.parametrize("strategy, reverse", [("greedy", False), ("beam", True)])
def test_translate_replaces_unknown_words_by_default(tiny_vocab, translator, strategy, reverse):
    if reverse:
        translator = _translator(tiny_vocab, reverse=reverse)
    expected, unks, plain = _reference(translator, strategy)
    assert unks >= 5 and sum(t.count(F.UNK) for t in plain) == unks  # the outputs do hold <unk>s
    got = translator.translate(SOURCES, strategy=strategy, batch_size=2)
    assert got == expected and not any(F.UNK in t for t in got)
    assert got[3:] == ["", ""]


def test_the_config_key_turns_replacement_off_and_the_argument_overrides_it(tiny_vocab):
    translator = _translator(tiny_vocab, replace=False)
    assert not translator.replaces_unknown and translator.can_replace_unknown
    assert F.UNK in translator.translate(SOURCES[:1], strategy="greedy")[0]
    expected, _, _ = _reference(translator, "greedy")
    assert translator.translate(SOURCES, strategy="greedy", replace_unknown=True) == expected


def test_without_attention_nothing_is_replaced_and_asking_is_an_error(tiny_vocab):
    translator = _translator(tiny_vocab, attention="none")
    assert not translator.replaces_unknown  # the config's True does not apply: no error, no replacement
    out = translator.translate(SOURCES[:2], strategy="greedy")
    assert F.UNK in out[0]
    with pytest.raises(InputError, match="attention"):
        translator.translate(SOURCES[:1], replace_unknown=True)


def test_serving_signatures_replace_like_translate_and_ids_stay_ids(translator):
    module = TextServingModule(translator, max_beam_width=4)
    assert module.replaces_unknown
    text = tf.constant(SOURCES)
    beam = translator.translate(SOURCES, strategy="beam")
    decoded = lambda t: [x.decode() for x in t.numpy()]  # noqa: E731
    assert decoded(module.serve(text)["text"]) == beam
    assert decoded(module.translate_text(text)["translation"]) == beam
    options = module.translate_options(text, tf.constant(3), tf.constant(1), tf.constant(0))
    assert decoded(options["text"]) == beam
    sampled = module.sample(text, tf.constant(1.0), tf.constant(0), tf.constant(0))
    assert (sampled["tokens"].numpy() == F.UNK_ID).any()  # the ids keep their <unk>; the text has none
    assert not any(F.UNK in t for t in decoded(sampled["text"])) and decoded(sampled["text"])[3:] == ["", ""]
