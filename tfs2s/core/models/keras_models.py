"""The ``keras.Model`` subclasses the builder makes its training models of (registered, so ``.keras`` files load).

They keep their class names and registration (``tfs2s>Seq2SeqTrainingModel`` and so on): ``.keras`` files saved
by any earlier layout of the package revive as these classes.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.core.keras_compat import MultiWorkerFitRepair, build_compiled_metrics, loss_tracker_result
from tfs2s.core.losses import sampled_softmax_loss


@keras.saving.register_keras_serializable(package="tfs2s")
class Seq2SeqTrainingModel(MultiWorkerFitRepair):
    """The functional training model; ``fit`` also runs under ``MultiWorkerMirroredStrategy`` (see
    ``tfs2s.core.keras_compat.MultiWorkerFitRepair``: Keras 3.15's trainer needs two repairs there)."""


@keras.saving.register_keras_serializable(package="tfs2s")
class SampledSoftmaxTrainingModel(Seq2SeqTrainingModel):
    """Functional training model whose output is the output layer's input; trains with a sampled softmax.

    Jean et al. (2015): the loss of each training step normalises over the target word and ``num_sampled``
    sampled words only, so the ``[B, T, V]`` logits are never computed while training. Evaluation (``evaluate``,
    validation passes) applies the full output layer and the compiled loss and metrics, so validation loss and
    perplexity are those of the full softmax, comparable with a model trained without sampling.

    Args:
        inputs: Functional inputs.
        outputs: Functional output, the ``[B, T, H]`` inputs of ``projection``.
        projection: The output layer (a ``VocabularyProjection``), shared with the decoder models.
        num_sampled: Negative words sampled per step.
    """

    def __init__(self, *args, projection=None, num_sampled: int = 0, **kwargs):
        # (*args, **kwargs) lets Keras revive it as a functional model from its config (see get_config).
        super().__init__(*args, **kwargs)
        if isinstance(projection, dict):  # from a saved config
            projection = keras.saving.deserialize_keras_object(projection)  # built from its saved build config
        if projection is None or num_sampled < 1:
            raise ValueError("SampledSoftmaxTrainingModel needs its output layer and num_sampled >= 1")
        self.projection = projection  # tracked, so its weights train and are saved with this model
        self.num_sampled = num_sampled
        self._in_train_step = False

    def train_step(self, data):
        # Python flag read while tracing, so compute_loss/compute_metrics know which step they are in.
        self._in_train_step = True
        try:
            return super().train_step(data)
        finally:
            self._in_train_step = False

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not training:
            return super().compute_loss(x, y, self.projection(y_pred), sample_weight, training)
        keep = tf.not_equal(y, F.PAD_ID)
        if sample_weight is not None:
            keep = tf.logical_and(keep, tf.cast(sample_weight, tf.bool))
        hidden = tf.boolean_mask(y_pred, keep)
        losses = sampled_softmax_loss(hidden, tf.boolean_mask(y, keep), self.projection.kernel,
                                      self.projection.bias, self.num_sampled)
        loss = tf.reduce_sum(losses) / tf.maximum(tf.cast(tf.size(losses), losses.dtype), 1.0)
        # As Keras' compiled losses do: replicas' gradients are summed, so each replica's loss is divided.
        loss = loss / tf.distribute.get_strategy().num_replicas_in_sync
        return loss + tf.add_n(self.losses) if self.losses else loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if self._in_train_step:
            # The token metrics need the full softmax, which is what a sampled step avoids; report the loss only.
            # (Keras still reads every metric at epoch end, so they must exist: building them computes nothing.)
            build_compiled_metrics(self, y, y_pred)
            return {"loss": loss_tracker_result(self)}
        return super().compute_metrics(x, y, self.projection(y_pred), sample_weight)

    def get_config(self):
        return {**super().get_config(), "projection": keras.saving.serialize_keras_object(self.projection),
                "num_sampled": self.num_sampled}


@keras.saving.register_keras_serializable(package="tfs2s")
class RegressionTrainingModel(Seq2SeqTrainingModel):
    """Functional training model of a regression head: scheduled sampling, and validation by forecasting.

    Teacher forcing feeds every decoder step the true previous values, which a forecast never has: a model
    trained only so learns to lean on them, and its errors compound when it reads its own predictions.
    Scheduled sampling (Bengio et al. 2015) feeds each step, with probability ``scheduled_sampling``, the
    model's own prediction for the previous step instead; the decoder is then run step by step (the shared
    one-step decoder in a ``tf.while_loop``) and gradients flow through the fed-back predictions. At 1 it is
    free-running training, exactly the computation of a forecast.

    Validation passes (``fit``'s validation, ``evaluate``) always forecast free-running, so the validation
    loss, and the best checkpoint chosen by it, measure forecasts rather than one-step-ahead predictions.
    Called directly (``model(x)``) the model is teacher-forced. The step-by-step decoder comes from
    ``build_models``: a model revived from a ``.keras`` file alone has none and trains and validates
    teacher-forced (rebuild with ``build_models`` and load the weights to train it further).

    Args:
        scheduled_sampling: Probability of feeding a step the model's own previous prediction (0: teacher forcing).
    """

    def __init__(self, *args, scheduled_sampling: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.scheduled_sampling = scheduled_sampling
        self._forecasting = False  # Python flag read while tracing a validation step

    def attach_unroll(self, unroll) -> None:
        """Gives the model the step-by-step decoder (``Seq2SeqModels.unrolled``); ``build_models`` does this."""
        object.__setattr__(self, "_unroll", unroll)  # a plain function, kept out of Keras' layer tracking

    def call(self, inputs, training=None, mask=None):
        sampling = 1.0 if self._forecasting else (self.scheduled_sampling if training else 0.0)
        unroll = getattr(self, "_unroll", None)
        if sampling > 0 and unroll is not None:
            return unroll(inputs, sampling, training=bool(training))
        return super().call(inputs, training=training, mask=mask)

    def test_step(self, data):
        self._forecasting = True
        try:
            return super().test_step(data)
        finally:
            self._forecasting = False

    def get_config(self):
        return {**super().get_config(), "scheduled_sampling": self.scheduled_sampling}
