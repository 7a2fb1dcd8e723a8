"""The ONNX encoder (ONNX GRU/LSTM operators) computes what the Keras encoder computes."""

import numpy as np
import pytest
import keras

from tfs2s.core.config import ModelConfig
from tfs2s.core.models import build_models
from tfs2s.export.onnx.encoder import UnsupportedEncoder, build_encoder

ort = pytest.importorskip("onnxruntime")

CASES = [dict(cell="gru", attention="bahdanau", bidirectional=True, layers=1),
         dict(cell="lstm", attention="none", bidirectional=False, layers=2),
         dict(cell="gru", attention="luong", bidirectional=True, layers=2),
         dict(cell="lstm", attention="bahdanau", bidirectional=True, layers=1),
         dict(cell="gru", attention="none", bidirectional=False, layers=1)]

# Rows of different lengths, one of padding only (zero final states in Keras).
IDS = np.array([[5, 6, 7, 3, 0, 0], [8, 3, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [9, 9, 4, 12, 17, 3]], np.int32)


def _models(scale=0.5, **kwargs):
    """Tiny models with random weights of standard deviation ``scale`` everywhere (the ONNX decoder's tests use
    them too): non-zero biases, so a bias in the wrong place or a wrong gate order shows."""
    keras.utils.set_random_seed(0)
    m = build_models(ModelConfig(embedding_dim=8, hidden=16, attention_units=8, dropout=0.0, **kwargs), 30, 25)
    rng = np.random.default_rng(1)
    m.training.set_weights([rng.normal(0, scale, w.shape).astype(np.float32) for w in m.training.get_weights()])
    return m


def _run(model, ids):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"encoder_token_ids": ids})))


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_onnx_encoder_matches_keras(case):
    m = _models(**case)
    got = _run(build_encoder(m), IDS)
    expected = {k: np.asarray(v) for k, v in m.encoder(IDS, training=False).items()}
    assert sorted(got) == sorted(expected)
    mask = IDS != 0
    np.testing.assert_array_equal(got["mask"], mask)
    for name, value in expected.items():
        if name == "mask":
            continue
        if name in ("memory", "keys"):  # padding positions are never attended to (see the module docstring)
            value, other = value[mask], got[name][mask]
        else:
            other = got[name]
        np.testing.assert_allclose(other, value, atol=1e-5, err_msg=name)


def test_onnx_encoder_pads_an_input_without_columns():
    m = _models(**CASES[0])
    got = _run(build_encoder(m), np.zeros((2, 0), np.int32))
    assert got["memory"].shape == (2, 1, 32) and not got["mask"].any()
    np.testing.assert_allclose(got["state_0"], np.asarray(m.encoder(np.zeros((2, 1), np.int32))["state_0"]),
                               atol=1e-6)


def test_onnx_encoder_refuses_non_token_sources():
    cfg = ModelConfig(embedding_dim=8, hidden=16, input_encoder="vectors", output_head="regression")
    with pytest.raises(UnsupportedEncoder, match="tf2onnx"):
        build_encoder(build_models(cfg, source_features=3, target_features=3))


def test_onnx_encoder_answers_an_empty_batch():
    """ONNX Runtime's recurrent kernels crash on zero rows: the graph pads one and cuts the outputs back."""
    m = _models(**CASES[1])
    got = _run(build_encoder(m), np.zeros((0, 4), np.int32))
    assert got["memory"].shape == (0, 4, 16) and got["state_0_h"].shape == (0, 16) and got["mask"].shape == (0, 4)


def test_written_graphs_use_the_one_opset():
    """The hand-written graphs and tf2onnx's conversions share ``graph.ONNX_OPSET``, so they join into one."""
    from tfs2s.core.config import DecodingConfig
    from tfs2s.export.onnx.graph import ONNX_OPSET
    from tfs2s.export.onnx.greedy import build_greedy_decoder

    m = _models(**CASES[0])
    for model in (build_encoder(m), build_greedy_decoder(m, DecodingConfig())):
        assert [(o.domain, o.version) for o in model.opset_import] == [("", ONNX_OPSET)]
    assert ONNX_OPSET == 17
