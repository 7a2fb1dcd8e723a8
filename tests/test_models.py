import numpy as np
import pytest
import tensorflow as tf
import keras

from tfs2s.core import features as F
from tfs2s.core.config import ModelConfig
from tfs2s.core import models as M
from tfs2s.core.models import build_models

CASES = [dict(cell="gru", attention="bahdanau", bidirectional=True, layers=1),
         dict(cell="lstm", attention="none", bidirectional=False, layers=2),
         dict(cell="gru", attention="luong", bidirectional=True, layers=2),
         dict(cell="lstm", attention="bahdanau", bidirectional=True, layers=1),
         dict(cell="gru", attention="none", bidirectional=True, layers=1)]

SRC = np.array([[5, 6, 7, 3, 0], [8, 3, 0, 0, 0]], np.int32)
DEC = np.array([[2, 5, 6, 7], [2, 9, 4, 0]], np.int32)


def _models(**kwargs):
    keras.utils.set_random_seed(0)
    cfg = ModelConfig(embedding_dim=8, hidden=16, attention_units=8, dropout=0.0, **kwargs)
    return build_models(cfg, 30, 25)


def _check_step_matches_teacher_forcing(m, source, source_name=F.ENCODER_TOKEN_IDS):
    """Step by step, the one-step decoder gives the teacher-forced logits (with <pad> and <s> banned); returns
    the last step's state."""
    logits = m.training({source_name: source, F.DECODER_TOKEN_IDS: DEC}).numpy()
    state = m.initial_state(tf.constant(source))
    for t in range(DEC.shape[1]):
        step_logits, state = m.step(tf.constant(DEC[:, t]), state)
        expected = logits[:, t].copy()
        expected[:, [F.PAD_ID, F.BOS_ID]] -= 1e9  # the step bans <pad> and <s>
        np.testing.assert_allclose(step_logits.numpy(), expected, atol=1e-4)
    return state


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_step_decoder_reproduces_teacher_forced_logits(case):
    m = _models(**case)
    state = _check_step_matches_teacher_forcing(m, SRC)
    assert ("alignment" in state) == (case["attention"] != "none")


def test_models_share_named_layers():
    m = _models(cell="gru", attention="bahdanau", bidirectional=True, layers=1)
    for name in ("target_embedding", "attention", "output_projection"):
        assert m.training.get_layer(name) is m.decoder_step.get_layer(name)
    # The step model calls the recurrent layer's cell: the same weights, without the time loop.
    assert m.training.get_layer("decoder_rnn_0").cell in m.decoder_step.layers
    assert m.training.get_layer("source_embedding") is m.encoder.get_layer("source_embedding")


def test_padding_does_not_change_encoding():
    m = _models(cell="gru", attention="bahdanau", bidirectional=True, layers=1)
    short = m.encoder(tf.constant([[5, 6, 3]]))
    padded = m.encoder(tf.constant([[5, 6, 3, 0, 0, 0]]))
    np.testing.assert_allclose(short["state_0"], padded["state_0"], atol=1e-5)
    np.testing.assert_allclose(short["memory"], padded["memory"][:, :3], atol=1e-5)


@pytest.mark.parametrize("case", CASES[:3], ids=lambda c: "-".join(str(v) for v in c.values()))
def test_keras_file_round_trip(case, tmp_path):
    m = _models(**case)
    inputs = {F.ENCODER_TOKEN_IDS: SRC, F.DECODER_TOKEN_IDS: DEC}
    path = str(tmp_path / "model.keras")
    m.training.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored(inputs).numpy(), m.training(inputs).numpy(), atol=1e-5)


def test_sampled_softmax_training_model(tmp_path):
    """The sampled model outputs the output layer's inputs, trains the shared projection, evaluates in full."""
    from tfs2s.core.losses import MaskedCrossEntropy
    from tfs2s.core.metrics import Perplexity

    keras.utils.set_random_seed(0)
    cfg = ModelConfig(embedding_dim=8, hidden=16, attention_units=8, dropout=0.0)
    m = build_models(cfg, 30, 25, sampled_softmax=6)
    inputs = {F.ENCODER_TOKEN_IDS: SRC, F.DECODER_TOKEN_IDS: DEC}
    assert m.training is not m.teacher_forced
    hidden = m.training(inputs)
    assert hidden.shape == (2, 4, 16)
    projection = m.teacher_forced.get_layer("output_projection")
    np.testing.assert_allclose(projection(hidden).numpy(), m.teacher_forced(inputs).numpy(), atol=1e-5)
    np.testing.assert_allclose(m.step(tf.constant(DEC[:, 0]), m.initial_state(tf.constant(SRC)))[0].numpy()[:, 3:],
                               m.teacher_forced(inputs).numpy()[:, 0, 3:], atol=1e-4)

    targets = np.array([[5, 6, 7, 3], [9, 4, 3, 0]], np.int32)
    weight = (targets != 0).astype("float32")
    m.training.compile("adam", loss=MaskedCrossEntropy(), metrics=[Perplexity()])
    kernel_before = projection.kernel.numpy().copy()
    logs = m.training.fit(inputs, targets, sample_weight=weight, epochs=2, batch_size=2, verbose=0).history
    assert set(logs) == {"loss"}  # no full-softmax metrics while training
    assert not np.allclose(projection.kernel.numpy(), kernel_before)  # the shared output layer trains
    # Evaluation is the full softmax: its loss is the compiled cross-entropy of the full logits.
    evaluated = m.training.evaluate(inputs, targets, sample_weight=weight, verbose=0, return_dict=True)
    full = float(MaskedCrossEntropy()(targets, m.teacher_forced(inputs), sample_weight=weight))
    np.testing.assert_allclose(evaluated["loss"], full, rtol=1e-4)
    np.testing.assert_allclose(evaluated["perplexity"], np.exp(full), rtol=1e-4)

    path = str(tmp_path / "sampled.weights.h5")
    m.training.save_weights(path)
    keras.utils.set_random_seed(1)
    again = build_models(cfg, 30, 25, sampled_softmax=6)
    again.training.load_weights(path)
    np.testing.assert_allclose(again.teacher_forced(inputs).numpy(), m.teacher_forced(inputs).numpy(), atol=1e-6)

    # A .keras file revives it (output layer included) through its config.
    m.training.save(str(tmp_path / "sampled.keras"))
    restored = keras.saving.load_model(str(tmp_path / "sampled.keras"), compile=False)
    assert restored.num_sampled == 6
    np.testing.assert_allclose(restored.projection(restored(inputs)).numpy(), m.teacher_forced(inputs).numpy(),
                               atol=1e-5)

    with pytest.raises(ValueError, match="between 1 and 24 samples"):
        build_models(cfg, 30, 25, sampled_softmax=25)


# ---------------------------------------------------------------- tied target embedding and output layer

def _tied_models(tie=True, **kwargs):
    keras.utils.set_random_seed(0)
    cfg = ModelConfig(embedding_dim=16, hidden=16, attention_units=8, dropout=0.0, tie_embeddings=tie)
    return build_models(cfg, 30, 25, **kwargs)


def test_tied_embeddings_use_one_matrix_for_input_words_and_output_scores(tmp_path):
    from tfs2s.core.layers import TiedEmbedding
    from tfs2s.core.models import output_layer, target_embedding_layer

    m = _tied_models()
    tied = output_layer(m.training)
    assert isinstance(tied, TiedEmbedding)
    assert target_embedding_layer(m.decoder_step) is tied and output_layer(m.teacher_forced) is tied
    names = {layer.name for layer in m.training.layers}
    assert not names & {"target_embedding", "output_projection"}
    # One [V, E] matrix in the whole model; untied has a second vocabulary-sized kernel.
    untied = _tied_models(tie=False)
    assert untied.training.count_params() - m.training.count_params() == 25 * 16
    # Both roles read the same matrix: the embedding of a word is its row, the logits are rows . hidden + bias.
    kernel = tied.embeddings.numpy()
    np.testing.assert_allclose(tied(DEC, mode="embed").numpy(), kernel[DEC])
    hidden = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    np.testing.assert_allclose(tied(hidden).numpy(), hidden @ kernel.T + tied.bias.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="mode must be"):
        tied(hidden, mode="other")
    _check_step_matches_teacher_forcing(m, SRC)
    inputs = {F.ENCODER_TOKEN_IDS: SRC, F.DECODER_TOKEN_IDS: DEC}
    # Changing one word's row changes what the model does after reading it (embedding) and its score (output).
    row = 7
    reads_row = {F.ENCODER_TOKEN_IDS: SRC, F.DECODER_TOKEN_IDS: np.array([[2, row], [2, 9]], np.int32)}
    before = m.training(reads_row).numpy()
    tied.embeddings.assign(tf.tensor_scatter_nd_add(tied.embeddings, [[row]], [np.full(16, 0.5, np.float32)]))
    after = m.training(reads_row).numpy()
    others = np.arange(25) != row
    # First position: only the word's own score moves; second (after reading it as input): every score moves.
    np.testing.assert_allclose(after[:, 0, others], before[:, 0, others], atol=1e-6)
    assert not np.allclose(after[:, 0, row], before[:, 0, row])
    assert not np.allclose(after[0, 1, others], before[0, 1, others])
    np.testing.assert_allclose(after[1, 1, others], before[1, 1, others], atol=1e-6)  # row 1 never reads it
    # A .keras file revives the layer in both roles.
    m.training.save(str(tmp_path / "tied.keras"))
    restored = keras.saving.load_model(str(tmp_path / "tied.keras"))
    np.testing.assert_allclose(restored(inputs).numpy(), m.training(inputs).numpy(), atol=1e-5)
    assert sum(1 for w in restored.weights if tuple(w.shape) == (25, 16)) == 1


def test_tied_embeddings_train_with_a_sampled_softmax():
    from tfs2s.core.losses import MaskedCrossEntropy
    from tfs2s.core.models import output_layer, set_unigram_output_bias

    m = _tied_models(sampled_softmax=6)
    tied = output_layer(m.training)
    assert m.training.projection is tied
    counts = np.arange(25)
    set_unigram_output_bias(m, counts)
    np.testing.assert_allclose(np.exp(tied.bias.numpy()), (counts + 1) / (counts + 1).sum(), rtol=1e-5)
    inputs = {F.ENCODER_TOKEN_IDS: SRC, F.DECODER_TOKEN_IDS: DEC}
    targets = np.array([[5, 6, 7, 3], [9, 4, 3, 0]], np.int32)
    m.training.compile("adam", loss=MaskedCrossEntropy())
    before = tied.embeddings.numpy().copy()
    m.training.fit(inputs, targets, sample_weight=(targets != 0).astype("float32"), epochs=2, batch_size=2,
                   verbose=0)
    moved = np.any(tied.embeddings.numpy() != before, axis=1)
    # Rows of decoder input words (<s> = 2, never a target) move through the embedding role.
    assert moved[F.BOS_ID] and moved[[5, 6, 9]].all()


# ---------------------------------------------------------------- image input, regression head

IMAGE = np.random.default_rng(0).random((2, 16, 32, 1), dtype=np.float32)
PAST = np.random.default_rng(1).standard_normal((3, 12, 2)).astype(np.float32)
FUTURE = np.random.default_rng(2).standard_normal((3, 5, 2)).astype(np.float32)


@pytest.mark.parametrize("sampled", [0, 6], ids=["dense", "vocabulary_projection"])
def test_unigram_output_bias_makes_the_untrained_model_predict_target_frequencies(sampled):
    from tfs2s.core.models import set_unigram_output_bias

    keras.utils.set_random_seed(0)
    cfg = ModelConfig(embedding_dim=8, hidden=16, attention_units=8, dropout=0.0)
    m = build_models(cfg, 30, 25, sampled_softmax=sampled)
    counts = np.random.default_rng(1).integers(0, 500, 25)
    counts[[F.PAD_ID, F.BOS_ID]] = 0  # never targets
    set_unigram_output_bias(m, counts)
    bias = m.teacher_forced.get_layer("output_projection").bias.numpy()
    np.testing.assert_allclose(np.exp(bias), (counts + 1) / (counts + 1).sum(), rtol=1e-5)
    # The kernel's share is small next to the bias: the untrained model already prefers frequent words.
    logits = m.teacher_forced({F.ENCODER_TOKEN_IDS: SRC, F.DECODER_TOKEN_IDS: DEC}).numpy()
    assert np.corrcoef(logits.mean((0, 1)), np.log(counts + 1))[0, 1] > 0.9
    with pytest.raises(ValueError, match="24 token counts for an output layer of 25 words"):
        set_unigram_output_bias(m, counts[:24])


def _image_models(**kwargs):
    keras.utils.set_random_seed(0)
    cfg = ModelConfig(input_encoder="image", embedding_dim=8, hidden=16, attention_units=8, dropout=0.0,
                      conv_blocks=2, conv_filters=4, **kwargs)
    return build_models(cfg, target_vocab_size=12, image_shape=(16, 32, 1))


def _regression_models(**kwargs):
    keras.utils.set_random_seed(0)
    cfg = ModelConfig(input_encoder="vectors", output_head="regression", embedding_dim=8, hidden=16,
                      attention_units=8, dropout=0.0, **kwargs)
    m = build_models(cfg, source_features=2, source_length=12, target_features=2, horizon=5)
    # The output layer starts at zero (the model starts as its linear part); give the recurrent part a voice.
    head = m.training.get_layer("output_projection")
    assert not np.any(head.kernel.numpy())
    head.kernel.assign(np.random.default_rng(3).standard_normal(head.kernel.shape).astype(np.float32))
    return m


def _decoder_inputs(past, future):
    return np.concatenate([past[:, -1:], future[:, :-1]], axis=1)


@pytest.mark.parametrize("attention", ["bahdanau", "none"])
def test_image_encoder_reads_columns_and_step_matches_teacher_forcing(attention):
    m = _image_models(attention=attention)
    # Two 2x2 poolings: 32 columns -> 8 memory positions, one per 4-pixel-wide strip, left to right.
    assert m.encoder.output["memory"].shape[1] == 8 and m.source_name == F.ENCODER_IMAGE
    _check_step_matches_teacher_forcing(m, IMAGE, F.ENCODER_IMAGE)
    # Columns are read in order: changing only the rightmost strip changes only the last memory position's
    # convolutional input (the bidirectional RNN then spreads it, so compare the projected columns).
    columns = keras.Model(m.encoder.input, m.encoder.get_layer("source_projection").output)
    changed = IMAGE.copy()
    changed[:, :, -4:] = 1.0 - changed[:, :, -4:]
    diff = np.abs(columns(changed).numpy() - columns(IMAGE).numpy()).max(axis=(0, 2))
    assert diff[-1] > 1e-4 and np.all(diff[:-2] < 1e-6)


@pytest.mark.parametrize("linear_skip,subtract_last", [(False, False), (True, False), (True, True), (False, True)])
def test_regression_value_steps_match_teacher_forcing(linear_skip, subtract_last):
    m = _regression_models(linear_skip=linear_skip, subtract_last=subtract_last)
    assert m.target_name == F.DECODER_VALUES
    decoder_values = _decoder_inputs(PAST, FUTURE)
    predicted = m.training({F.ENCODER_VALUES: PAST, F.DECODER_VALUES: decoder_values}).numpy()
    assert predicted.shape == (3, 5, 2)
    state = dict(m.initial_state(tf.constant(PAST), alignment=False), time=tf.constant(0))
    np.testing.assert_allclose(state["last_values"], PAST[:, -1])
    for t in range(5):
        values, state = m.value_step(tf.constant(decoder_values[:, t]), state)
        np.testing.assert_allclose(values.numpy(), predicted[:, t], atol=1e-4)


def test_subtract_last_makes_forecasts_shift_equivariant():
    """Relative to the last observation, a series moved up by 5 is forecast moved up by 5."""
    m = _regression_models(linear_skip=True, subtract_last=True)
    x = {F.ENCODER_VALUES: PAST, F.DECODER_VALUES: _decoder_inputs(PAST, FUTURE)}
    moved = {k: v + 5.0 for k, v in x.items()}
    np.testing.assert_allclose(m.training(moved).numpy(), m.training(x).numpy() + 5.0, atol=1e-4)
    np.testing.assert_allclose(m.unrolled(moved, 1.0).numpy(), m.unrolled(x, 1.0).numpy() + 5.0, atol=1e-4)


def test_linear_skip_starts_as_persistence():
    m = _regression_models(linear_skip=True)
    baseline = m.encoder(tf.constant(PAST))["baseline"].numpy()
    np.testing.assert_allclose(baseline, np.repeat(PAST[:, -1:], 5, axis=1), atol=1e-6)


@pytest.mark.parametrize("kind", ["image", "regression"])
def test_new_models_keras_file_round_trip(kind, tmp_path):
    if kind == "image":
        m, inputs = _image_models(), {F.ENCODER_IMAGE: IMAGE, F.DECODER_TOKEN_IDS: DEC}
    else:
        m = _regression_models(linear_skip=True, subtract_last=True)
        m.training.scheduled_sampling = 0.25
        inputs = {F.ENCODER_VALUES: PAST, F.DECODER_VALUES: _decoder_inputs(PAST, FUTURE)}
    path = str(tmp_path / "model.keras")
    m.training.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(m.training)
    if kind == "regression":
        assert restored.scheduled_sampling == 0.25
    np.testing.assert_allclose(restored(inputs).numpy(), m.training(inputs).numpy(), atol=1e-5)


def test_scheduled_sampling_and_validation_forecast_free_running():
    """Sampling 1 in training, and every validation pass, feed the decoder its own predictions: the loss is then
    the forecast's (``decoding.regress``), not the teacher-forced one; sampling 0 trains teacher-forced."""
    from tfs2s.core import decoding

    m = _regression_models(linear_skip=True)
    model = m.training
    x = {F.ENCODER_VALUES: PAST, F.DECODER_VALUES: _decoder_inputs(PAST, FUTURE)}
    state = m.initial_state(tf.constant(PAST), alignment=False)
    forecast = decoding.regress(m.value_step, state, state["last_values"], 5).numpy()
    forecast_loss = float(np.mean((forecast - FUTURE) ** 2))
    teacher_loss = float(np.mean((model(x).numpy() - FUTURE) ** 2))
    assert abs(forecast_loss - teacher_loss) > 1e-4
    np.testing.assert_allclose(m.unrolled(x, 1.0).numpy(), forecast, atol=1e-5)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    np.testing.assert_allclose(model.evaluate(x, FUTURE, verbose=0), forecast_loss, rtol=1e-4)
    np.testing.assert_allclose(model.train_on_batch(x, FUTURE), teacher_loss, rtol=1e-4)
    model.scheduled_sampling = 1.0
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    np.testing.assert_allclose(model.train_on_batch(x, FUTURE), forecast_loss, rtol=1e-4)
    # Gradients reach the weights through the unrolled loop.
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.train_on_batch(x, FUTURE)
    assert all(np.abs(b - w.numpy()).max() > 0 for b, w in zip(before, model.trainable_weights))


def test_builder_names_missing_sizes():
    with pytest.raises(ValueError, match="image_shape"):
        build_models(ModelConfig(input_encoder="image"), target_vocab_size=10)
    with pytest.raises(ValueError, match="target_features"):
        build_models(ModelConfig(input_encoder="vectors", output_head="regression"), source_features=3)
    with pytest.raises(ValueError, match="linear_skip"):
        build_models(ModelConfig(input_encoder="vectors", output_head="regression", linear_skip=True),
                     source_features=3, target_features=3)


# ---------------------------------------------------------------- the contract: names, has_attention, registration

@pytest.mark.parametrize("attention", ["bahdanau", "luong", "none"])
def test_has_attention_matches_what_the_models_compute(attention):
    m = _models(cell="gru", attention=attention, bidirectional=False, layers=1)
    attends = attention != "none"
    assert m.has_attention is attends
    assert (M.KEYS in m.encoder.output) is attends and (M.CONTEXT in m.encoder.output) is not attends
    assert (M.ALIGNMENT in m.decoder_step.output) is attends
    assert (M.ALIGNMENT in m.initial_state(tf.constant(SRC))) is attends


def test_contract_names_find_the_layers():
    from tfs2s.core.layers import BahdanauAttention, LuongAttention, WindowLinear

    m = _models(cell="lstm", attention="bahdanau", bidirectional=True, layers=2)
    enc, step = m.encoder, m.decoder_step
    assert isinstance(enc.get_layer(M.SOURCE_EMBEDDING), keras.layers.Embedding)
    assert isinstance(enc.get_layer(M.ENCODER_BIRNN.format(i=1)), keras.layers.Bidirectional)
    assert enc.get_layer(M.BRIDGE.format(state="state_1_c")).units == 16
    assert isinstance(enc.get_layer(M.ATTENTION_KEYS), keras.layers.Dense)
    assert isinstance(step.get_layer(M.ATTENTION), BahdanauAttention)
    rnn = m.training.get_layer(M.DECODER_RNN.format(i=1))
    assert isinstance(rnn, keras.layers.LSTM) and step.get_layer(M.RNN_CELL.format(rnn=rnn.name)) is rnn.cell
    assert step.get_layer(M.ATTENTIONAL_HIDDEN) is m.training.get_layer(M.ATTENTIONAL_HIDDEN)
    assert M.output_layer(step) is step.get_layer(M.OUTPUT_PROJECTION)
    assert M.target_embedding_layer(step) is step.get_layer(M.TARGET_EMBEDDING)

    m = _models(cell="gru", attention="luong", bidirectional=False, layers=1)
    assert isinstance(m.encoder.get_layer(M.ENCODER_RNN.format(i=0)), keras.layers.GRU)
    assert isinstance(m.decoder_step.get_layer(M.ATTENTION), LuongAttention)
    m = _models(cell="gru", attention="none", bidirectional=False, layers=1)
    assert m.encoder.get_layer(M.CONTEXT_PROJECTION).output.name == m.encoder.output[M.CONTEXT].name
    m = _regression_models(linear_skip=True)
    assert isinstance(m.encoder.get_layer(M.LINEAR_SKIP), WindowLinear)
    assert isinstance(_image_models().encoder.get_layer(M.SOURCE_PROJECTION), keras.layers.Dense)


@pytest.mark.parametrize("cls", [M.Seq2SeqTrainingModel, M.SampledSoftmaxTrainingModel, M.RegressionTrainingModel],
                         ids=lambda cls: cls.__name__)
def test_training_models_keep_their_registered_names(cls):
    """.keras files written by any earlier layout refer to these names."""
    name = f"tfs2s>{cls.__name__}"
    assert keras.saving.get_registered_name(cls) == name
    assert keras.saving.get_registered_object(name) is cls
