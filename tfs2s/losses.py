"""Training losses."""

import keras
from keras import ops

from tfs2s import features as F


@keras.saving.register_keras_serializable(package="tfs2s")
class MaskedCrossEntropy(keras.losses.Loss):
    """Token cross-entropy from logits with optional label smoothing, averaged over real (non-padding) tokens.

    Padding targets (id 0) contribute nothing. With the dataset's 0/1 ``sample_weight`` and the default
    ``mean_with_sample_weight`` reduction, the loss is the mean over target tokens, whatever the padding.

    Args:
        label_smoothing: Mass moved from the true token to a uniform distribution over the vocabulary.
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "masked_cross_entropy",
                 reduction: str = "mean_with_sample_weight", **kwargs):
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        log_probs = ops.log_softmax(y_pred, axis=-1)
        nll = -ops.squeeze(ops.take_along_axis(log_probs, ops.expand_dims(y_true, -1), axis=-1), -1)
        if self.label_smoothing:
            uniform = -ops.mean(log_probs, axis=-1)
            nll = (1.0 - self.label_smoothing) * nll + self.label_smoothing * uniform
        return nll * ops.cast(ops.not_equal(y_true, F.PAD_ID), nll.dtype)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
