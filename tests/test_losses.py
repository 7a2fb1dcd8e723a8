import numpy as np

from tfs2s.core.losses import MaskedCrossEntropy


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


def test_sampled_softmax_equals_tensorflow_reference():
    """Same value and gradients as tf.nn.sampled_softmax_loss given the same candidates (accidental hits too)."""
    import tensorflow as tf

    from tfs2s.core.losses import sampled_softmax_loss

    rng = np.random.default_rng(2)
    hidden = tf.constant(rng.normal(size=(7, 5)).astype("float32"))
    kernel = tf.Variable(rng.normal(size=(40, 5)).astype("float32"))
    bias = tf.Variable(rng.normal(size=(40,)).astype("float32"))
    labels = tf.constant([3, 4, 5, 9, 3, 20, 39], tf.int64)
    sampled = tf.random.log_uniform_candidate_sampler(labels[:, None], 1, 12, True, 40, seed=3)
    assert set(sampled[0].numpy()) & set(labels.numpy())  # the case of accidental hits is exercised
    with tf.GradientTape(persistent=True) as tape:
        ours = sampled_softmax_loss(hidden, labels, kernel, bias, 12, sampled_values=sampled)
        reference = tf.nn.sampled_softmax_loss(kernel, bias, labels[:, None], hidden, 12, 40,
                                               sampled_values=sampled, remove_accidental_hits=True)
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-5, atol=1e-5)
    for ours_grad, ref_grad in zip(tape.gradient(ours, [kernel, bias]), tape.gradient(reference, [kernel, bias])):
        np.testing.assert_allclose(tf.convert_to_tensor(ours_grad).numpy(), tf.convert_to_tensor(ref_grad).numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_sampled_softmax_approaches_full_softmax_when_sampling_everything():
    """Sampling every other word with a uniform proposal gives exactly the full cross-entropy."""
    import tensorflow as tf

    from tfs2s.core.losses import sampled_softmax_loss

    rng = np.random.default_rng(4)
    hidden = rng.normal(size=(6, 5)).astype("float32")
    kernel = rng.normal(size=(30, 5)).astype("float32")
    bias = rng.normal(size=(30,)).astype("float32")
    labels = np.array([1, 2, 3, 7, 29, 0])
    everything = (tf.range(30, dtype=tf.int64), tf.ones([6, 1]), tf.ones([30]))
    ours = sampled_softmax_loss(hidden, labels, kernel, bias, 30, sampled_values=everything).numpy()
    logits = hidden @ kernel.T + bias
    full = -np.take_along_axis(_log_softmax(logits), labels[:, None], -1)[:, 0]
    np.testing.assert_allclose(ours, full, rtol=1e-5)
