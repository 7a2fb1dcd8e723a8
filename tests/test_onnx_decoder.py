"""The hand-written ONNX greedy decoder decodes what TensorFlow's greedy search decodes."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from tfs2s.core import decoding
from tfs2s.core.config import DecodingConfig, ModelConfig
from tfs2s.core.models import build_models
from tfs2s.export.onnx.greedy import UnsupportedDecoder, build_greedy_decoder
from tfs2s.export.onnx.encoder import build_encoder, compose

ort = pytest.importorskip("onnxruntime")

# The configurations and ids (rows of different lengths, one of padding only) of the encoder's tests.
from test_onnx_encoder import CASES, IDS, _models as _encoder_test_models  # noqa: E402


def _models(**kwargs):
    # Large weights: outputs of varied lengths.
    return _encoder_test_models(scale=0.8, **kwargs)


def _expected(m, ids, dc):
    state = m.initial_state(tf.constant(ids), alignment=m.has_attention)
    limits = decoding.length_limits(np.sum(ids != 0, axis=1), dc.max_length_ratio, dc.max_length_offset)
    out = decoding.greedy_search(m.step, state, limits, dc.min_length)
    expected = {"tokens": out["tokens"].numpy(), "length": out["lengths"].numpy(), "scores": out["scores"].numpy()}
    if m.has_attention:
        expected["alignment"] = out["alignment"].numpy()
    return expected


def _run(model, ids):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"encoder_token_ids": ids})))


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_onnx_greedy_matches_tensorflow(case):
    m = _models(**case)
    dc = DecodingConfig(max_length_ratio=1.5, max_length_offset=3, min_length=2)
    expected = _expected(m, IDS, dc)
    got = _run(compose(build_encoder(m), build_greedy_decoder(m, dc)), IDS)
    assert got["tokens"].shape == expected["tokens"].shape
    np.testing.assert_array_equal(got["tokens"], expected["tokens"])
    np.testing.assert_array_equal(got["length"], expected["length"])
    np.testing.assert_allclose(got["scores"], expected["scores"], atol=1e-4)
    # Attention models return each step's attention weights (zero once a row is done), as greedy_search does.
    assert ("alignment" in got) == ("alignment" in expected)
    if "alignment" in expected:
        assert got["alignment"].shape == expected["alignment"].shape
        np.testing.assert_allclose(got["alignment"], expected["alignment"], atol=1e-5)
        assert expected["alignment"][0, 0, 0].sum() == pytest.approx(1.0, abs=1e-5)
    lengths = expected["length"][:, 0]
    assert len(set(lengths.tolist())) > 1 and (lengths >= 2).all()  # varied outputs; min_length holds


def test_onnx_greedy_edge_batches():
    m = _models(**CASES[0])
    dc = DecodingConfig(max_length_offset=0, min_length=0)
    model = compose(build_encoder(m), build_greedy_decoder(m, dc))
    empty = _run(model, np.zeros((0, 4), np.int32))
    assert empty["tokens"].shape == (0, 1, 0)
    # Offset 0: a row of padding only has no room at all, the others decode.
    got = _run(model, IDS)
    expected = _expected(m, IDS, dc)
    np.testing.assert_array_equal(got["tokens"], expected["tokens"])
    assert not got["tokens"][2].any() and got["length"][2, 0] == 0


def test_onnx_greedy_with_a_sampled_softmax_output_layer():
    """Sampled-softmax models store the output layer vocabulary-major; the graph holds it transposed."""
    keras.utils.set_random_seed(0)
    m = build_models(ModelConfig(embedding_dim=8, hidden=16, attention_units=8, dropout=0.0), 30, 25,
                     sampled_softmax=5)
    rng = np.random.default_rng(2)
    m.training.set_weights([rng.normal(0, 0.8, w.shape).astype(np.float32) for w in m.training.get_weights()])
    dc = DecodingConfig()
    got = _run(compose(build_encoder(m), build_greedy_decoder(m, dc)), IDS)
    expected = _expected(m, IDS, dc)
    np.testing.assert_array_equal(got["tokens"], expected["tokens"])
    np.testing.assert_allclose(got["scores"], expected["scores"], atol=1e-4)


def test_onnx_greedy_refuses_what_it_does_not_write():
    m = _models(**CASES[0])
    with pytest.raises(UnsupportedDecoder, match="repeat"):
        build_greedy_decoder(m, DecodingConfig(no_repeat_ngram_size=2))
    vectors = build_models(ModelConfig(embedding_dim=8, hidden=16, input_encoder="vectors", output_head="regression"),
                           source_features=3, target_features=3)
    with pytest.raises(UnsupportedDecoder, match="token-to-token"):
        build_greedy_decoder(vectors, DecodingConfig())


def test_onnx_greedy_matches_tensorflow_with_tied_embeddings():
    """One matrix embeds the input word (Gather) and scores the output words (MatMul of its transpose)."""
    keras.utils.set_random_seed(0)
    m = build_models(ModelConfig(embedding_dim=16, hidden=16, attention_units=8, dropout=0.0, tie_embeddings=True),
                     30, 25)
    rng = np.random.default_rng(1)
    m.training.set_weights([rng.normal(0, 0.8, w.shape).astype(np.float32) for w in m.training.get_weights()])
    dc = DecodingConfig(max_length_ratio=1.5, max_length_offset=3, min_length=2)
    expected = _expected(m, IDS, dc)
    got = _run(compose(build_encoder(m), build_greedy_decoder(m, dc)), IDS)
    np.testing.assert_array_equal(got["tokens"], expected["tokens"])
    np.testing.assert_array_equal(got["length"], expected["length"])
    np.testing.assert_allclose(got["scores"], expected["scores"], atol=1e-4)
    assert len(set(expected["length"][:, 0].tolist())) > 1
