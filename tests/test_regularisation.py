"""The regularisation switches (model.variational_dropout, weight_dropout, embedding_dropout): each changes the
training computation, each leaves inference (encoder, one-step decoder, the written ONNX graphs) exactly the
computation without it, and all off builds today's models."""

import numpy as np
import pytest
import keras
import tensorflow as tf
from keras import layers as L

from tfs2s.core import features as F
from tfs2s.core.config import DecodingConfig, ModelConfig
from tfs2s.core.layers import (DropConnectGRUCell, DropConnectLSTMCell, DropConnectRNN, LockedDropout,
                               WordDropout)
from tfs2s.core.models import build_models

SRC = np.array([[5, 6, 7, 3, 0, 0], [8, 3, 0, 0, 0, 0], [9, 9, 4, 12, 17, 3]], np.int32)
DEC = np.array([[2, 5, 6, 7], [2, 9, 4, 0], [2, 4, 4, 8]], np.int32)
SWITCHES = {"variational": {"variational_dropout": 0.3}, "weight": {"weight_dropout": 0.4},
            "embedding": {"embedding_dropout": 0.3},
            "all": {"variational_dropout": 0.3, "weight_dropout": 0.4, "embedding_dropout": 0.3}}
ARCHITECTURES = [dict(cell="gru", attention="bahdanau", bidirectional=True, layers=2),
                 dict(cell="lstm", attention="none", bidirectional=False, layers=2),
                 dict(cell="lstm", attention="luong", bidirectional=True, layers=1, tie_embeddings=True)]

# The layers' round trip through Keras serialization is tests/test_attention.py's (LAYER_ARGUMENTS lists them).


def _build(arch: dict, **switches):
    keras.utils.set_random_seed(0)
    embedding = 16 if arch.get("tie_embeddings") else 8
    cfg = ModelConfig(embedding_dim=embedding, hidden=16, attention_units=8, dropout=0.0, **arch, **switches)
    return build_models(cfg, 30, 25)


def _with_weights_of(models, reference):
    """``models`` and ``reference`` given the same random weights (the switches add no weights, and theirs have
    the same paths)."""
    source = {w.path: w for w in reference.training.trainable_weights}
    target = {w.path: w for w in models.training.trainable_weights}
    assert sorted(source) == sorted(target)
    rng = np.random.default_rng(3)
    for path in sorted(source):
        s, t = source[path], target[path]
        value = rng.normal(0, 0.5, s.shape).astype(np.float32)
        s.assign(value)
        t.assign(value)
    return models


def _inference(m):
    """Encoder outputs, teacher-forced logits and one-step decoder outputs, all in inference mode."""
    enc = {k: np.asarray(v) for k, v in m.encoder(SRC, training=False).items()}
    logits = np.asarray(m.training({F.ENCODER_TOKEN_IDS: SRC, F.DECODER_TOKEN_IDS: DEC}, training=False))
    step_logits, state = m.step(tf.constant(DEC[:, 0]), m.initial_state(tf.constant(SRC)))
    step = {"logits": np.asarray(step_logits), **{k: np.asarray(v) for k, v in state.items()}}
    return enc, logits, step


def _training_logits(m):
    return np.asarray(m.training({F.ENCODER_TOKEN_IDS: SRC, F.DECODER_TOKEN_IDS: DEC}, training=True))




# Each switch on one architecture, all of them on each architecture.
SWITCH_CASES = ([(ARCHITECTURES[0], name) for name in sorted(SWITCHES) if name != "all"]
                + [(arch, "all") for arch in ARCHITECTURES])


def _assert_same(got, expected, name):
    # On a GPU the plain GRU/LSTM layers run cuDNN, the DropConnect layers the cells' own loop: equal up to
    # rounding there, bit for bit on a CPU (where both run the same loop).
    if tf.config.list_physical_devices("GPU"):
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=name)
    else:
        np.testing.assert_array_equal(got, expected, err_msg=name)


@pytest.mark.parametrize("arch,switch", SWITCH_CASES,
                         ids=["-".join(str(v) for v in a.values()) + f"-{s}" for a, s in SWITCH_CASES])
def test_switch_changes_training_and_leaves_inference_exact(arch, switch):
    off = _build(arch)
    on = _with_weights_of(_build(arch, **SWITCHES[switch]), off)
    for got, expected in zip(_inference(on), _inference(off)):
        if isinstance(expected, dict):
            assert sorted(got) == sorted(expected)
            for key in expected:
                _assert_same(got[key], expected[key], key)
        else:
            _assert_same(got, expected, "logits")
    # Off (dropout 0): training mode is the inference computation; on: each training pass draws new masks.
    np.testing.assert_array_equal(_training_logits(off), _inference(off)[1])
    first, second = _training_logits(on), _training_logits(on)
    assert np.abs(first - second).max() > 1e-4 and np.abs(first - _inference(on)[1]).max() > 1e-4


def test_all_switches_off_build_todays_layers():
    m = _build(ARCHITECTURES[0])
    classes = {type(layer) for model in (m.training, m.encoder, m.decoder_step) for layer in model.layers}
    assert not classes & {LockedDropout, WordDropout, DropConnectRNN}
    birnn = m.encoder.get_layer("encoder_birnn_0")
    assert type(birnn.forward_layer) is L.GRU and type(birnn.forward_layer.cell) is L.GRUCell
    assert type(m.training.get_layer("decoder_rnn_0")) is L.GRU
    assert type(m.training.get_layer("output_dropout")) is L.Dropout


def test_locked_dropout_keeps_one_mask_per_sequence():
    x = np.random.default_rng(0).uniform(1, 2, (4, 7, 6)).astype(np.float32)
    layer = LockedDropout(0.5, seed=1)
    y = np.asarray(layer(x, training=True))
    dropped = y == 0
    assert dropped.any() and (~dropped).any()
    assert (dropped == dropped[:, :1]).all()  # the same features dropped at every time step of a sequence
    assert not (dropped == dropped[:1]).all()  # and a different mask per sequence
    np.testing.assert_allclose(y[~dropped], x[~dropped] * 2.0, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    assert not np.array_equal(y, np.asarray(layer(x, training=True)))


def test_word_dropout_drops_whole_words_and_keeps_the_padding_mask():
    ids = np.array([[3, 4, 3, 5, 0], [4, 3, 6, 6, 0]], np.int32)
    embedded = np.random.default_rng(0).uniform(1, 2, (2, 5, 4)).astype(np.float32)
    layer = WordDropout(0.5, vocab_size=8, seed=2)
    seen = []
    for _ in range(8):
        y = np.asarray(layer(embedded, ids, training=True))
        zero = (y == 0).all(axis=-1)
        assert ((y == 0).any(axis=-1) == zero).all()  # a whole vector or nothing
        for word in np.unique(ids):
            assert len(set(zero[ids == word].tolist())) == 1  # every occurrence of a word together
        np.testing.assert_allclose(y[~zero], embedded[~zero] * 2.0, rtol=1e-6)
        seen.append(tuple(zero[ids != 0].tolist()))
    assert len(set(seen)) > 1  # a new mask per call (batch)
    np.testing.assert_array_equal(np.asarray(layer(embedded, ids, training=False)), embedded)


def test_padding_mask_reaches_the_encoder_with_every_switch_on():
    """Word and locked dropout pass the embedding's padding mask on: padding changes no encoder state."""
    m = _build(ARCHITECTURES[0], **SWITCHES["all"])
    short = m.encoder(tf.constant([[5, 6, 3]]))
    padded = m.encoder(tf.constant([[5, 6, 3, 0, 0, 0]]))
    np.testing.assert_allclose(short["state_0"], padded["state_0"], atol=1e-5)
    np.testing.assert_allclose(short["state_1"], padded["state_1"], atol=1e-5)


@pytest.mark.parametrize("cell_type", ["gru", "lstm"])
def test_drop_connect_uses_one_dropped_recurrent_kernel_per_batch(cell_type, monkeypatch):
    """The training output of a DropConnect layer is the plain layer's output with that batch's dropped
    recurrent kernel at every time step; inference is the plain layer's; the cell's own step equals Keras'."""
    x = np.random.default_rng(0).normal(0, 1, (3, 6, 4)).astype(np.float32)
    rnn = DropConnectRNN(5, cell_type, weight_dropout=0.5, return_sequences=True, return_state=True)
    plain = (L.GRU if cell_type == "gru" else L.LSTM)(5, return_sequences=True, return_state=True)
    rnn(x)
    plain(x)
    plain.set_weights(rnn.get_weights())
    np.testing.assert_array_equal(np.asarray(rnn(x)[0]), np.asarray(plain(x)[0]))
    drawn = []
    original = type(rnn.cell).drop_recurrent_kernel

    def record(cell):
        original(cell)
        drawn.append(np.asarray(cell.dropped_recurrent_kernel))

    monkeypatch.setattr(type(rnn.cell), "drop_recurrent_kernel", record)
    trained = np.asarray(rnn(x, training=True)[0])
    assert len(drawn) == 1 and rnn.cell.dropped_recurrent_kernel is None  # drawn once, cleared after the batch
    assert (drawn[0] == 0).mean() == pytest.approx(0.5, abs=0.15)
    plain.cell.recurrent_kernel.assign(drawn[0])
    np.testing.assert_allclose(trained, np.asarray(plain(x)[0]), atol=1e-5)
    assert np.abs(trained - np.asarray(rnn(x)[0])).max() > 1e-3
    # The cell's own step with the undropped kernel is Keras' cell step.
    cell = rnn.cell
    states = [tf.constant(np.random.default_rng(1).normal(0, 1, (3, 5)).astype(np.float32))
              for _ in cell.state_size] if cell_type == "lstm" else [tf.constant(np.ones((3, 5), np.float32))]
    expected, _ = (L.GRUCell if cell_type == "gru" else L.LSTMCell).call(cell, x[:, 0], states)
    cell.dropped_recurrent_kernel = cell.recurrent_kernel
    got, _ = cell.call(x[:, 0], states, training=True)
    cell.clear_dropped_kernel()
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-6)


def test_drop_connect_cells_are_keras_cells_for_the_onnx_writers():
    """The writers read layer.cell's kernel, recurrent_kernel, bias, activations and reset_after."""
    m = _build(ARCHITECTURES[0], weight_dropout=0.4)
    birnn = m.encoder.get_layer("encoder_birnn_0")
    for layer in (birnn.forward_layer, birnn.backward_layer, m.training.get_layer("decoder_rnn_1")):
        assert isinstance(layer.cell, L.GRUCell) and isinstance(layer.cell, DropConnectGRUCell)
        assert layer.cell.reset_after and layer.cell.recurrent_kernel.shape == (16, 48)
    assert m.decoder_step.get_layer("decoder_rnn_1_cell") is m.training.get_layer("decoder_rnn_1").cell
    lstm = _build(ARCHITECTURES[1], weight_dropout=0.4)
    assert isinstance(lstm.training.get_layer("decoder_rnn_0").cell, DropConnectLSTMCell)


@pytest.mark.parametrize("arch", ARCHITECTURES[:2], ids=["gru-bahdanau-bi", "lstm-none"])
def test_written_onnx_greedy_decodes_tensorflows_ids_with_every_switch_on(arch):
    """The hand-written ONNX encoder + greedy decoder of a model with all switches on decode TensorFlow's greedy
    ids (the parts of every export path that read the recurrent layers' weights by name)."""
    ort = pytest.importorskip("onnxruntime")
    from tfs2s.core import decoding
    from tfs2s.export.onnx.encoder import build_encoder, compose
    from tfs2s.export.onnx.greedy import build_greedy_decoder

    m = _with_weights_of(_build(arch, **SWITCHES["all"]), _build(arch))
    dc = DecodingConfig(max_length_ratio=1.5, max_length_offset=3, min_length=1)
    state = m.initial_state(tf.constant(SRC), alignment=m.has_attention)
    limits = decoding.length_limits(np.sum(SRC != 0, axis=1), dc.max_length_ratio, dc.max_length_offset)
    expected = decoding.greedy_search(m.step, state, limits, dc.min_length)
    graph = compose(build_encoder(m), build_greedy_decoder(m, dc))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(names, {"encoder_token_ids": SRC})))
    np.testing.assert_array_equal(got["tokens"], expected["tokens"].numpy())
    np.testing.assert_array_equal(got["length"], expected["lengths"].numpy())
    assert expected["lengths"].numpy().max() > 1
