"""The encoder's recurrent layers written out in ONNX loops (``tfs2s.export.onnx.encoder_loop``), as the int8 greedy
graph has them: in float32 they compute what ONNX's fused GRU / LSTM nodes compute. Tiny random models: seconds."""

import numpy as np
import pytest

from tfs2s.export.onnx.encoder import build_encoder

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from test_onnx_decoder import _models, _run  # noqa: E402
from test_onnx_encoder import CASES, IDS  # noqa: E402
from test_onnx_int8 import MANY_IDS  # noqa: E402


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_looped_encoder_equals_the_fused_one(case):
    """The encoder's recurrent layers written out in loops (float32) = ONNX's fused GRU / LSTM nodes, edge batches
    (no rows, no columns, a row of padding only) included: the loop, the in-place reversal and the masking."""
    m = _models(**case)
    for ids in (MANY_IDS, IDS, np.zeros((0, 4), np.int32), np.zeros((2, 0), np.int32)):
        fused, looped = _run(build_encoder(m), ids), _run(build_encoder(m, looped=True), ids)
        assert sorted(fused) == sorted(looped)
        for key, value in fused.items():
            assert looped[key].shape == value.shape and looped[key].dtype == value.dtype, key
            np.testing.assert_allclose(looped[key], value, atol=1e-5, err_msg=key)
    with pytest.raises(ValueError, match="looped"):
        build_encoder(m, quantize="int8", looped=False)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_looped_encoder_has_one_loop_per_layer_and_no_fused_node(case):
    """``encoder_loop.looped_recurrent_layers`` writes one ``Loop`` per layer (both directions in it, the backward
    one between two ``ReverseSequence``) in place of the fused nodes."""
    model = build_encoder(_models(**case), looped=True)
    ops = [n.op_type for n in model.graph.node]
    assert not {"GRU", "LSTM"} & set(ops)
    assert ops.count("Loop") == case["layers"]
    assert ops.count("ReverseSequence") == (2 * case["layers"] if case["bidirectional"] else 0)
