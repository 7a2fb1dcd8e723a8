"""Copy attention (``model.copy``, See et al. 2017's pointer-generator): the step's distribution, the training
labels, a tiny model that learns to copy names its vocabulary lacks, bad input, and copy off unchanged."""

import numpy as np
import pytest
import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.core import text_data as data
from tfs2s.core.config import ModelConfig, load_config
from tfs2s.core.models import build_models
from tfs2s.core.models.contract import COPY_GENERATOR, COPY_INPUT_IDS, LOGITS

TINY = dict(embedding_dim=8, hidden=16, attention_units=8, dropout=0.0)
V = 12


def _vary(models, seed=0):
    rng = np.random.default_rng(seed)
    models.training.set_weights([w + rng.normal(0, 0.5, w.shape).astype(np.float32)
                                 for w in models.training.get_weights()])


def _step_outputs(models, source, ids):
    state = models.initial_state(tf.constant(source, tf.int32), alignment=False)
    inputs = {F.DECODER_TOKEN_IDS: tf.constant(ids, tf.int32)[:, None], **state}
    return models.decoder_step(inputs, training=False)


@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
def test_step_distribution_sums_to_one_padding_gets_zero(attention):
    models = build_models(ModelConfig(copy=True, attention=attention, **TINY), 20, V)
    _vary(models)
    # Words, then </s>, then padding; the last row has no words (an empty text).
    source = [[5, 6, 1, 7, F.EOS_ID, 0], [1, 1, F.EOS_ID, 0, 0, 0], [F.EOS_ID, 0, 0, 0, 0, 0]]
    for ids in ([F.BOS_ID] * 3, [4, V + 1, V + 5]):  # extended ids (copies) are read as <unk>
        p = np.exp(_step_outputs(models, source, ids)[LOGITS].numpy())
        assert p.shape == (3, V + 6)
        np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
        copy = p[:, V:]
        assert np.all(copy[0, 4:] == 0) and np.all(copy[1, 2:] == 0) and np.all(copy[2] == 0)  # </s>, padding
        p_gen = p[:, :V].sum(-1)
        assert np.all((p_gen[:2] > 0) & (p_gen[:2] < 1)) and np.all(copy[:2, :2].sum(-1) > 0)
        np.testing.assert_allclose(p_gen[2], 1.0, atol=1e-6)  # nothing to copy: generate


def test_extended_input_reads_as_unk_and_teacher_forced_matches_step():
    models = build_models(ModelConfig(copy=True, **TINY), 20, V)
    _vary(models, 1)
    source = [[5, 6, 1, F.EOS_ID, 0]]
    unk = _step_outputs(models, source, [F.UNK_ID])[LOGITS].numpy()
    np.testing.assert_array_equal(_step_outputs(models, source, [V + 2])[LOGITS].numpy(), unk)
    forced = models.teacher_forced({F.ENCODER_TOKEN_IDS: tf.constant(source),
                                    F.DECODER_TOKEN_IDS: tf.constant([[F.BOS_ID]])}, training=False)
    np.testing.assert_allclose(forced.numpy()[:, 0], _step_outputs(models, source, [F.BOS_ID])[LOGITS].numpy(),
                               atol=1e-5)


def test_copy_off_builds_todays_layers():
    """Copy off adds nothing, and copy on leaves every other layer's initial weights as they are."""
    cfg = ModelConfig(**TINY)
    tf.keras.utils.set_random_seed(3)
    plain = build_models(cfg, 20, V)
    tf.keras.utils.set_random_seed(3)
    copying = build_models(ModelConfig(copy=True, **TINY), 20, V)
    names = {layer.name for layer in plain.training.layers}
    assert COPY_GENERATOR not in names and COPY_INPUT_IDS not in names and not plain.copies
    copy_names = {layer.name for layer in copying.training.layers}
    assert copy_names - names == {COPY_GENERATOR, COPY_INPUT_IDS}
    copying_weights = {w.path: w.numpy() for w in copying.training.weights}
    for w in plain.training.weights:
        np.testing.assert_array_equal(w.numpy(), copying_weights[w.path])
    assert plain.decoder_step.output[LOGITS].shape[-1] == V


def _tokenizers(tmp_path, sources, targets):
    from tfs2s.core.tokenizers import learn_tokenizer

    s = learn_tokenizer("word", sources, str(tmp_path / "s.txt"), 100, name="source_tokenizer")
    t = learn_tokenizer("word", targets, str(tmp_path / "t.txt"), 100, name="target_tokenizer")
    return s, t


@pytest.mark.parametrize("reverse", [False, True])
def test_copy_labels_point_at_the_first_source_occurrence(tmp_path, reverse):
    s, t = _tokenizers(tmp_path, ["ich bin hier", "das ist gut"], ["i am here", "that is good"])
    pairs = [("ich bin anna anna", "i am anna"),  # anna: <unk> in the target vocabulary, in the source twice
             ("das ist here", "here is bob"),  # here: in the target vocabulary (generated); bob: not in the source
             ("", "anna"), ("anna ist gut eins zwei", "zwei anna")]  # empty source; zwei is cut (max length 4)
    ds = data.from_pairs(pairs).apply(data.tokenize_pairs(s, t, 4, reverse, copy=True))
    labels = [ex["target_out"].numpy().tolist() for ex in ds]
    unk, eos, vocab = F.UNK_ID, F.EOS_ID, t.vocab_size
    here = int(t.tokenize(tf.constant(["here"])).flat_values[0])
    i, am = (int(x) for x in t.tokenize(tf.constant(["i am"])).flat_values)
    first = (lambda pos, n: n - 1 - pos) if reverse else (lambda pos, n: pos)
    assert labels[0] == [i, am, vocab + first(2, 3), eos]
    assert labels[1][0] == here and labels[1][2] == unk
    assert labels[2] == [unk, eos]
    assert labels[3] == [unk, vocab + first(0, 3), eos]
    plain = data.from_pairs(pairs).apply(data.tokenize_pairs(s, t, 4, reverse))
    assert all(max(ex["target_out"].numpy()) < vocab for ex in plain)


# The synthetic copy task: names that neither vocabulary has, at varying positions.
TEMPLATES = [("ich heiße {} .", "my name is {} ."), ("{} kommt aus berlin", "{} comes from berlin"),
             ("das ist {} und er lacht", "this is {} and he laughs"), ("hallo {}", "hello {}")]


def _names(rng, n):
    letters = np.array(list("bcdfgklmnprstvz"))
    return ["".join(rng.choice(letters, 6)) for _ in range(n)]


def _copy_pairs(names, rng):
    pairs = []
    for name in names:
        src, tgt = TEMPLATES[rng.integers(len(TEMPLATES))]
        pairs.append((src.format(name), tgt.format(name)))
    return pairs


def _copy_config(**overrides):
    return load_config(None, {"model.copy": True, "model.embedding_dim": 16, "model.hidden": 32,
                              "model.attention_units": 16, "model.dropout": 0.0, "data.max_source_length": 8,
                              "training.learning_rate": 0.01, "decoding.beam_width": 3, "decoding.n_best": 2,
                              **overrides})


def _template_tokenizers(tmp):
    return _tokenizers(tmp, [a.format("") for a, _ in TEMPLATES], [b.format("") for _, b in TEMPLATES])


@pytest.fixture(scope="module")
def untrained_translator(tmp_path_factory):
    """An untrained copy model with varied weights (some outputs copy): seconds."""
    from tfs2s.tasks.text.predictor import Translator

    s, t = _template_tokenizers(tmp_path_factory.mktemp("untrained"))
    cfg = _copy_config()
    models = build_models(cfg.model, s.vocab_size, t.vocab_size)
    _vary(models, 2)
    return Translator(models, s, t, cfg)


@pytest.mark.parametrize("reverse", [False, True])
def test_translator_turns_copied_ids_into_their_source_words(tmp_path, reverse):
    from tfs2s.tasks.text.predictor import Translator

    s, t = _template_tokenizers(tmp_path)
    cfg = _copy_config(**{"data.reverse_source": reverse})
    translator = Translator(build_models(cfg.model, s.vocab_size, t.vocab_size), s, t, cfg)
    texts = tf.constant(["hallo anna bob", "", "ich heiße " + " ".join(f"w{i}" for i in range(12))])
    source_ids = translator.encode(texts)
    vocab, hello = t.vocab_size, int(t.tokenize(tf.constant(["hello"])).flat_values[0])
    at = (lambda pos, n: n - 1 - pos) if reverse else (lambda pos, n: pos)  # encoder position of word ``pos``
    tokens = tf.constant([[[hello, vocab + at(1, 3), vocab + at(2, 3), F.EOS_ID]],
                          [[vocab, vocab + 1, F.EOS_ID, 0]],  # nothing to copy from an empty source
                          [[vocab + at(6, 7), vocab + 7, vocab + 30, F.EOS_ID]]])  # past the words: <unk>
    result = {"tokens": tokens, "alignment": tf.zeros([3, 1, 4, tf.shape(source_ids)[1]])}
    for replace in (False, True):
        text = translator.finish(result, source_ids, texts, replace_unknown=replace)["text"].numpy()[:, 0]
        # A copy is replaced by the word it copies, never by <unk> replacement's attended word.
        assert [x.decode() for x in text] == ["hello anna bob", "", "w4 <unk> <unk>"]
    assert translator.finish(result, source_ids)["text"].numpy()[0, 0].decode() == "hello <unk> <unk>"


def test_bad_input_gets_an_answer(untrained_translator):
    translator = untrained_translator
    texts = ["", "   ", "qqq www eee", "zzzz " * 40, "\ufffd\u0000 <s> </s> <pad>", "hallo " + "x" * 500]
    # Each strategy traces its own decoding graph (seconds each): plain greedy and beam are the slow tests' too.
    for strategy, overrides in (("sample", {}), ("greedy", {"no_repeat_ngram_size": 2}), ("beam", {"min_length": 3})):
        out = translator.translate(texts, strategy=strategy, **overrides)
        assert len(out) == len(texts) and all(isinstance(o, str) for o in out)
        assert out[0] == "" and out[1] == ""


@pytest.fixture(scope="module")
def copy_translator(tmp_path_factory):
    """A tiny copy model trained 300 steps on the copy task (about 30 s here)."""
    from tfs2s.tasks.text.predictor import Translator
    from tfs2s.training.fit import compile_model

    s, t = _template_tokenizers(tmp_path_factory.mktemp("copy"))
    cfg = _copy_config()
    rng = np.random.default_rng(0)
    train = _copy_pairs(_names(rng, 2000), rng)
    ds = data.make_dataset(train, s, t, batch_size=32, max_source_length=8, max_target_length=10, training=True,
                           seed=0, copy=True)
    tf.keras.utils.set_random_seed(0)
    models = build_models(cfg.model, s.vocab_size, t.vocab_size)
    compile_model(models, cfg, 60).fit(ds.repeat().take(300), verbose=0)
    return Translator(models, s, t, cfg)


# Slow: about 75 s in all (30 s of training, 5-8 s per strategy). By default the step's distribution, the
# training labels, the Translator's copied words and bad input are covered by the tests above.
@pytest.mark.slow
@pytest.mark.parametrize("strategy, overrides", [("greedy", {}), ("beam", {}), ("sample", {"temperature": 0.05}),
                                                 ("greedy", {"no_repeat_ngram_size": 2}),
                                                 ("beam", {"min_length": 2})])
def test_a_tiny_model_learns_to_copy_unseen_names(copy_translator, strategy, overrides):
    translator = copy_translator
    names = _names(np.random.default_rng(7), 24)  # never seen in training, <unk> in both vocabularies
    assert all(translator.target_tokenizer.tokenize(tf.constant([n])).flat_values[0] == F.UNK_ID for n in names)
    test = _copy_pairs(names, np.random.default_rng(8))
    out = translator.translate([s for s, _ in test], strategy=strategy, **overrides)
    assert sum(name in text.split() for name, text in zip(names, out)) >= 20, out[:6]
    assert sum(text == tgt for (_, tgt), text in zip(test, out)) >= 16, list(zip(test, out))[:6]


@pytest.mark.slow  # shares the trained model of the test above
def test_n_best_and_tokens_carry_extended_ids(copy_translator):
    translator = copy_translator
    out = translator.translate_batch(["hallo qqxzvb", "ich heiße brkzmt ."], strategy="beam", beam_width=3, n_best=2)
    assert out["text"].shape == (2, 2)
    assert out["text"][0, 0] == "hello qqxzvb" and "brkzmt" in out["text"][1, 0]
    assert (out["tokens"] >= translator.target_tokenizer.vocab_size).any()


def test_label_smoothing_over_possible_entries_only():
    from tfs2s.core.losses import MaskedCrossEntropy

    logits = tf.maximum(tf.math.log(tf.constant([[[0.5, 0.25, 0.25, 0.0]]])), -1e9)  # as copy's padding
    y = tf.constant([[1]])
    smoothed = MaskedCrossEntropy(label_smoothing=0.1)(y, logits).numpy()
    expected = 0.9 * -np.log(0.25) + 0.1 * -np.mean(np.log([0.5, 0.25, 0.25]))
    np.testing.assert_allclose(smoothed, expected, rtol=1e-5)
    plain = tf.constant([[[1.0, 2.0, 0.5, -1.0]]])
    lp = tf.nn.log_softmax(plain).numpy()[0, 0]
    np.testing.assert_allclose(MaskedCrossEntropy(label_smoothing=0.1)(y, plain).numpy(),
                               0.9 * -lp[1] + 0.1 * -lp.mean(), rtol=1e-6)
