import numpy as np
import pytest
import tensorflow as tf
import keras

from tfs2s import features as F
from tfs2s.config import ModelConfig
from tfs2s.models import build_models

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


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_step_decoder_reproduces_teacher_forced_logits(case):
    m = _models(**case)
    logits = m.training({F.ENCODER_TOKEN_IDS: SRC, F.DECODER_TOKEN_IDS: DEC}).numpy()
    state = m.initial_state(tf.constant(SRC))
    for t in range(DEC.shape[1]):
        step_logits, state = m.step(tf.constant(DEC[:, t]), state)
        expected = logits[:, t].copy()
        expected[:, [F.PAD_ID, F.BOS_ID]] -= 1e9  # the step bans <pad> and <s>
        np.testing.assert_allclose(step_logits.numpy(), expected, atol=1e-4)
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
    from tfs2s.losses import MaskedCrossEntropy
    from tfs2s.metrics import Perplexity

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
