"""Training losses."""

import keras
from keras import ops

from tfs2s.core import features as F

_POSSIBLE = -1e8  # log-probabilities at or below this are impossible entries, not part of the distribution


@keras.saving.register_keras_serializable(package="tfs2s")
class MaskedCrossEntropy(keras.losses.Loss):
    """Token cross-entropy from logits with optional label smoothing, averaged over real (non-padding) tokens.

    Padding targets (id 0) contribute nothing. With the dataset's 0/1 ``sample_weight`` and the default
    ``mean_with_sample_weight`` reduction, the loss is the mean over target tokens, whatever the padding.

    Logits may be log-probabilities with impossible entries (copy attention's padding positions, at
    ``tfs2s.core.layers.copy.IMPOSSIBLE_LOG_PROB``): label smoothing then spreads its mass over the possible
    entries only (the vocabulary and the source words).

    Args:
        label_smoothing: Mass moved from the true token to a uniform distribution over the vocabulary.
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "masked_cross_entropy",
                 reduction: str = "mean_with_sample_weight", **kwargs):
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        # 16-bit logits of a mixed-precision model: the softmax and the loss are float32.
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        nll = -ops.squeeze(ops.take_along_axis(log_probs, ops.expand_dims(y_true, -1), axis=-1), -1)
        if self.label_smoothing:
            uniform = -ops.mean(log_probs, axis=-1)
            possible = ops.cast(ops.greater(log_probs, _POSSIBLE), log_probs.dtype)
            over_possible = -ops.sum(log_probs * possible, axis=-1) / ops.maximum(ops.sum(possible, axis=-1), 1.0)
            # Where every entry is possible (every model but copy attention) this keeps the plain mean, exactly.
            uniform = ops.where(ops.all(ops.greater(log_probs, _POSSIBLE), axis=-1), uniform, over_possible)
            nll = (1.0 - self.label_smoothing) * nll + self.label_smoothing * uniform
        return nll * ops.cast(ops.not_equal(y_true, F.PAD_ID), nll.dtype)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def sampled_softmax_loss(hidden, labels, kernel, bias, num_sampled: int, sampled_values=None, seed=None):
    """Per-token sampled-softmax loss (Jean et al. 2015), without materialising the ``[N, V]`` logits.

    Equal to ``tf.nn.sampled_softmax_loss`` (log-uniform candidates, corrected by their expected counts, accidental
    hits removed); the gradient of ``kernel`` is an ``IndexedSlices`` over the true and sampled words only.
    The log-uniform sampler assumes ids sorted by decreasing frequency, as the word-level vocabularies are.

    Args:
        hidden: ``[N, H]`` float inputs of the output layer.
        labels: ``[N]`` integer target ids.
        kernel: ``[V, H]`` output-layer kernel (``VocabularyProjection``'s layout).
        bias: ``[V]`` output-layer bias.
        num_sampled: Negative classes sampled (shared by the ``N`` rows).
        sampled_values: Optional ``(sampled, true_expected_count, sampled_expected_count)`` from a TF candidate
            sampler (for tests); drawn with ``tf.random.log_uniform_candidate_sampler`` when ``None``.
        seed: Sampler seed.

    Returns:
        ``[N]`` losses.
    """
    import tensorflow as tf

    vocab = int(kernel.shape[0])  # static: the sampler needs a Python int
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int64)
    if sampled_values is None:
        sampled_values = tf.random.log_uniform_candidate_sampler(
            true_classes=labels[:, None], num_true=1, num_sampled=num_sampled, unique=True,
            range_max=vocab, seed=seed)
    sampled, true_expected, sampled_expected = (tf.stop_gradient(v) for v in sampled_values)
    true_expected = tf.reshape(true_expected, [-1])
    hidden = tf.cast(hidden, kernel.dtype)
    true_logits = (tf.reduce_sum(hidden * tf.gather(kernel, labels), -1) + tf.gather(bias, labels)
                   - tf.math.log(tf.cast(true_expected, kernel.dtype)))
    sampled_logits = (tf.matmul(hidden, tf.gather(kernel, sampled), transpose_b=True) + tf.gather(bias, sampled)
                      - tf.math.log(tf.cast(sampled_expected, kernel.dtype)))
    # A sampled class that is the row's own target is not a negative for that row.
    hits = tf.equal(labels[:, None], tf.cast(sampled, tf.int64)[None, :])
    sampled_logits = tf.where(hits, tf.cast(-1e9, sampled_logits.dtype), sampled_logits)
    logits = tf.concat([true_logits[:, None], sampled_logits], axis=1)
    return tf.reduce_logsumexp(logits, axis=1) - true_logits
