import numpy as np

from tfs2s.losses import MaskedCrossEntropy


def _log_softmax(x):
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_mean_over_real_tokens_only():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5)).astype("float32")
    targets = np.array([[1, 2, 0], [4, 0, 0]])
    weight = (targets != 0).astype("float32")
    lp = _log_softmax(logits)
    nll = -np.take_along_axis(lp, targets[..., None], -1)[..., 0]
    expected = (nll * weight).sum() / weight.sum()
    got = float(MaskedCrossEntropy()(targets, logits, sample_weight=weight))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Garbage logits at padded positions change nothing.
    logits2 = logits.copy()
    logits2[0, 2] = 100.0
    np.testing.assert_allclose(float(MaskedCrossEntropy()(targets, logits2, sample_weight=weight)), expected, rtol=1e-5)


def test_label_smoothing_formula_and_config():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(1, 2, 6)).astype("float32")
    targets = np.array([[3, 5]])
    weight = np.ones((1, 2), "float32")
    lp = _log_softmax(logits)
    nll = -np.take_along_axis(lp, targets[..., None], -1)[..., 0]
    expected = (0.9 * nll + 0.1 * -lp.mean(-1)).mean()
    loss = MaskedCrossEntropy(label_smoothing=0.1)
    np.testing.assert_allclose(float(loss(targets, logits, sample_weight=weight)), expected, rtol=1e-5)
    assert MaskedCrossEntropy.from_config(loss.get_config()).label_smoothing == 0.1
