"""Keras functional encoder-decoder models, built from a ``ModelConfig``.

``build_models`` returns three models that share the same named layers (never looked up by index):

* ``training``: ``{encoder_token_ids, decoder_token_ids} -> logits [B, T, V]`` (teacher forcing); with a sampled
  softmax it outputs the output layer's inputs ``[B, T, H]`` instead and computes its own loss (see
  ``SampledSoftmaxTrainingModel``), while ``teacher_forced`` still gives the logits;
* ``encoder``: ``encoder_token_ids -> {memory, keys, mask, context, states...}``;
* ``decoder_step``: one target token and the decoder state -> ``logits [B, V]``, new state, alignment.

The source need not be text (``model.input_encoder``): ``encoder_image [B, H, W, C]`` goes through a small
convolutional encoder whose feature map is read column by column, ``encoder_values [B, L, F]`` through a dense
projection; either way the same recurrent encoder follows. The target need not be tokens
(``model.output_head: regression``): the decoder then reads ``decoder_values [B, T, F]`` (the previous steps'
values) and predicts real values; ``Seq2SeqModels.value_step`` is its step, ``RegressionTrainingModel`` its
training model.

Architecture. Encoder: embedding -> ``layers`` (bi)GRU/LSTM layers. Its final states are bridged (``tanh``
dense) to the decoder's initial states when the encoder is bidirectional; a unidirectional encoder hands its
states over unchanged (Sutskever et al. 2014). Decoder: embedding -> ``layers`` GRU/LSTM layers -> attention
over the encoder states -> ``tanh`` combination of RNN output and context (Luong et al. 2015's attentional
hidden state) -> vocabulary projection. Attention is computed from each decoder RNN output rather than fed back
into the recurrence, so training runs the whole target through fused RNN layers. With ``attention: none``
(Cho et al. 2014) a fixed summary vector of the source feeds every decoder step, as input and to the output layer.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from keras import layers as L

from tfs2s.core import features as F
from tfs2s.core.config import ModelConfig
from tfs2s.core.decoding import regress
from tfs2s.core.layers import (BahdanauAttention, BroadcastOverTime, FullMask, LastStep, LevelShift, LuongAttention,
                          PaddingMask, TiedEmbedding, VocabularyProjection, WindowLinear)

MEMORY, KEYS, MASK, CONTEXT = "memory", "keys", "mask", "context"
BASELINE, LAST_VALUES = "baseline", "last_values"  # regression head: linear forecast, last observed values
VALUES = "values"  # the regression step's output
TIED_EMBEDDING = "tied_embedding"  # model.tie_embeddings: the target embedding that is also the output layer


def _tied_or(model: keras.Model, name: str) -> keras.layers.Layer:
    tied = [layer for layer in model.layers if layer.name == TIED_EMBEDDING]
    return tied[0] if tied else model.get_layer(name)


def output_layer(model: keras.Model) -> keras.layers.Layer:
    """``model``'s output layer: ``output_projection``, or the ``TiedEmbedding`` with ``tie_embeddings``."""
    return _tied_or(model, "output_projection")


def target_embedding_layer(model: keras.Model) -> keras.layers.Layer:
    """``model``'s target embedding (``.embeddings`` is its ``[V, E]`` matrix), tied or not."""
    return _tied_or(model, "target_embedding")


@dataclasses.dataclass
class Seq2SeqModels:
    """The three models returned by ``build_models`` (they share layers and so weights).

    Attributes:
        training: The model ``fit`` trains (equal to ``teacher_forced`` unless it trains with a sampled softmax).
        encoder: Source ids -> dict of encoder outputs (see ``state_names``).
        decoder_step: One decoding step.
        config: The model config.
        state_names: Names of the recurrent state tensors (``state_0``, or ``state_0_h``/``state_0_c``).
        teacher_forced: ``{encoder_token_ids, decoder_token_ids} -> logits [B, T, V]``.
    """

    training: keras.Model
    encoder: keras.Model
    decoder_step: keras.Model
    config: ModelConfig
    state_names: list[str]
    teacher_forced: keras.Model | None = None

    def __post_init__(self):
        if self.teacher_forced is None:
            self.teacher_forced = self.training

    @property
    def source_name(self) -> str:
        """Name of the encoder's input (``encoder_token_ids``, ``encoder_image`` or ``encoder_values``)."""
        return SOURCE_INPUTS[self.config.input_encoder]

    @property
    def target_name(self) -> str:
        """Name of the decoder's input (``decoder_token_ids`` or ``decoder_values``)."""
        return F.DECODER_VALUES if self.config.output_head == "regression" else F.DECODER_TOKEN_IDS

    def initial_state(self, source_ids, alignment: bool = True) -> dict:
        """Encodes ``source_ids [B, S]`` into the decoding state dict of the step contract.

        Args:
            source_ids: Padded source ids.
            alignment: Whether decoders should collect the attention weights (models with attention only);
                without them a decoding loop carries and reorders less.
        """
        encoded = self.encoder(source_ids, training=False)
        state = dict(encoded)
        if alignment and MEMORY in encoded and KEYS in encoded:
            # Zero alignment of the right shape, so decoders know to collect attention weights.
            state["alignment"] = tf.zeros_like(tf.cast(encoded[MASK], tf.float32))
        return state

    def step(self, ids, state: dict):
        """The step contract: ``(ids [N], state) -> (logits [N, V], state)`` (see ``tfs2s.decoding``)."""
        inputs = {F.DECODER_TOKEN_IDS: tf.expand_dims(tf.cast(ids, tf.int32), 1)}
        inputs.update({name: value for name, value in state.items() if name != "alignment"})
        outputs = self.decoder_step(inputs, training=False)
        new_state = dict(state)
        new_state.update({name: outputs[name] for name in self.state_names})
        if "alignment" in state:  # collected only when the caller asked for it (see initial_state)
            new_state["alignment"] = outputs["alignment"]
        # <pad> and <s> are never produced.
        logits = outputs["logits"]
        return logits + _banned_bias(logits), new_state

    def value_step(self, values, state: dict, training: bool = False):
        """The regression step: ``(previous values [N, F], state) -> (predicted values [N, F], state)``.

        ``state`` is ``initial_state``'s dict plus ``time`` (int32 scalar, the step being predicted), which
        picks the step's row of the linear forecast when the model has one (``model.linear_skip``).
        """
        inputs = {F.DECODER_VALUES: tf.expand_dims(values, 1)}
        inputs.update({name: value for name, value in state.items() if name in self.decoder_step.input})
        outputs = self.decoder_step(inputs, training=training)
        new_state = dict(state)
        new_state.update({name: outputs[name] for name in self.state_names})
        if "alignment" in state:
            new_state["alignment"] = outputs["alignment"]
        predicted = outputs[VALUES]
        if BASELINE in state:
            predicted = predicted + tf.gather(state[BASELINE], state["time"], axis=1)
        new_state["time"] = state["time"] + 1
        return predicted, new_state

    def unrolled(self, inputs: dict, sampling, training: bool = False):
        """Regression decoder run step by step: ``{encoder_values, decoder_values} -> [B, H, F]`` predictions.

        Step ``t`` reads the true values ``decoder_values[:, t]`` or, with probability ``sampling`` (per
        example), the model's own prediction for step ``t - 1`` (the first step always reads the last observed
        values). ``sampling = 1`` is a forecast. Differentiable, also through the fed-back predictions.
        """
        given = tf.convert_to_tensor(inputs[F.DECODER_VALUES])
        encoded = self.encoder(inputs[F.ENCODER_VALUES], training=training)
        return regress(lambda values, state: self.value_step(values, state, training=training), dict(encoded),
                       given[:, 0], tf.shape(given)[1], teacher=given, sampling=sampling)


SOURCE_INPUTS = {"tokens": F.ENCODER_TOKEN_IDS, "image": F.ENCODER_IMAGE, "vectors": F.ENCODER_VALUES}


@keras.saving.register_keras_serializable(package="tfs2s")
class Seq2SeqTrainingModel(keras.Model):
    """The functional training model, with two repairs that let ``fit`` run under ``MultiWorkerMirroredStrategy``.

    Keras 3.15's TF trainer breaks with that strategy (keras-team/keras#20585): before the first step ``fit``
    all-reduces a data batch to build the model (the model here is built already, and bucketed batches differ in
    shape between workers), and after each step it reduces every scalar metric along axis 0. Under that strategy
    the model skips the first and returns its step outputs with a leading axis of 1. Nothing changes otherwise.
    """

    def _multi_worker(self) -> bool:
        # The strategy the model was built under (fit itself runs outside its scope).
        return isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy)

    def _maybe_symbolic_build(self, *args, **kwargs):
        if not self._multi_worker():
            return super()._maybe_symbolic_build(*args, **kwargs)
        return None

    def _for_multi_worker(self, logs):
        if not self._multi_worker():
            return logs
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}

    def train_step(self, data):
        return self._for_multi_worker(super().train_step(data))

    def test_step(self, data):
        return self._for_multi_worker(super().test_step(data))


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
        from tfs2s.core.losses import sampled_softmax_loss

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
            if self._compile_metrics is not None and not self._compile_metrics.built:
                self._compile_metrics.build(y, y_pred)
            return {"loss": self._loss_tracker.result()}
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


def banned_token_bias(vocab: int, dtype=np.float32) -> np.ndarray:
    """``[vocab]`` logit bias that rules out ``<pad>`` and ``<s>`` (never produced by a decoder)."""
    bias = np.zeros(vocab, dtype)
    bias[[F.PAD_ID, F.BOS_ID]] = -1e9
    return bias


def set_unigram_output_bias(models: Seq2SeqModels, counts: np.ndarray) -> None:
    """Sets the output layer's bias to the log of the add-one smoothed target-token frequencies ``counts``.

    The untrained model then predicts the unigram distribution of the training targets. With a zero bias the
    first training steps must produce those logits from the hidden state instead; on DailyDialog (word targets,
    9k words) Adam's first steps did so by driving every tanh unit into saturation, where the gradients vanish
    and the model stayed, predicting "." at every position (token accuracy 8.6 % after 877 steps).

    Raises:
        ValueError: ``counts`` does not have one entry per output of the model's output layer.
    """
    bias = output_layer(models.teacher_forced).bias
    counts = np.asarray(counts, np.float64)
    if counts.shape != tuple(bias.shape):
        raise ValueError(f"{counts.shape[0] if counts.ndim == 1 else counts.shape} token counts for an output "
                         f"layer of {bias.shape[0]} words")
    smoothed = counts + 1.0
    bias.assign(np.log(smoothed / smoothed.sum()).astype(bias.dtype))


def _banned_bias(logits):
    """``banned_token_bias`` for ``logits``: a constant when ``V`` is static (always, for our models), so a
    decoding loop adds one vector per step instead of rebuilding it (a one-hot and a sum, in ONNX too)."""
    vocab = logits.shape[-1]
    if vocab is None:
        banned = tf.one_hot([F.PAD_ID, F.BOS_ID], tf.shape(logits)[-1], on_value=-1e9, dtype=logits.dtype)
        return tf.reduce_sum(banned, 0)
    return tf.constant(banned_token_bias(vocab, logits.dtype.as_numpy_dtype))


def _rnn(cfg: ModelConfig, name: str):
    cls = L.GRU if cfg.cell == "gru" else L.LSTM
    layer = cls(cfg.hidden, return_sequences=True, return_state=True, name=name)
    # The one-step decoder calls cells directly; distinct names keep a multi-layer step model valid.
    layer.cell.name = f"{name}_cell"
    return layer


def _state_names(cfg: ModelConfig) -> list[str]:
    suffixes = ["h", "c"] if cfg.cell == "lstm" else [""]
    return [f"state_{i}" + (f"_{s}" if s else "") for i in range(cfg.layers) for s in suffixes]


def build_models(cfg: ModelConfig, source_vocab_size: int | None = None, target_vocab_size: int | None = None,
                 sampled_softmax: int = 0, *, image_shape: tuple[int, int, int] | None = None,
                 source_features: int | None = None, source_length: int | None = None,
                 target_features: int | None = None, horizon: int | None = None) -> Seq2SeqModels:
    """Builds the training, encoder and one-step decoder models.

    What the source and the target are comes from ``cfg.input_encoder`` and ``cfg.output_head``; the
    recurrent encoder, the attention and the recurrent decoder are the same for all of them.

    Args:
        cfg: Model configuration.
        source_vocab_size: ``tokens`` input: source vocabulary size (ids ``[0, size)``, 0 = padding).
        target_vocab_size: ``softmax`` head: target vocabulary size.
        sampled_softmax: Words sampled per training step by a sampled softmax; 0 trains with the full softmax.
        image_shape: ``image`` input: ``(height, width, channels)``.
        source_features: ``vectors`` input: values per source step.
        source_length: ``vectors`` input: source steps (``None``: any; ``linear_skip`` needs it).
        target_features: ``regression`` head: values per target step.
        horizon: ``regression`` head with ``linear_skip``: target steps.

    Returns:
        A ``Seq2SeqModels`` whose three models share every layer.
    """
    _check_sizes(cfg, source_vocab_size, target_vocab_size, image_shape, source_features, source_length,
                 target_features, horizon)
    if sampled_softmax and not 0 < sampled_softmax < target_vocab_size:
        raise ValueError(f"a sampled softmax needs between 1 and {target_vocab_size - 1} samples (the target "
                         f"vocabulary has {target_vocab_size} words), got {sampled_softmax}")
    per_state = 2 if cfg.cell == "lstm" else 1
    state_names = _state_names(cfg)
    regression = cfg.output_head == "regression"

    # ---------------------------------------------------------------- encoder
    source, x, mask = _source_sequence(cfg, source_vocab_size, image_shape, source_features, source_length)
    x = L.Dropout(cfg.dropout, name="source_dropout")(x)
    final_states = []  # per layer: list of per-direction state lists
    for i in range(cfg.layers):
        rnn = _rnn(cfg, f"encoder_rnn_{i}")
        if cfg.bidirectional:
            outputs = L.Bidirectional(rnn, name=f"encoder_birnn_{i}")(x)
            x, states = outputs[0], outputs[1:]
            forward, backward = states[:per_state], states[per_state:]
            final_states.append([L.Concatenate(name=f"encoder_state_{i}_{j}")([f, b])
                                 for j, (f, b) in enumerate(zip(forward, backward))])
        else:
            outputs = rnn(x)
            x, states = outputs[0], list(outputs[1:])
            final_states.append(states)
        if i < cfg.layers - 1:
            x = L.Dropout(cfg.dropout, name=f"encoder_dropout_{i}")(x)
    memory = x
    if cfg.bidirectional:
        initial_states = [L.Dense(cfg.hidden, activation="tanh", name=f"bridge_{name}")(s)
                          for name, s in zip(state_names, (s for layer in final_states for s in layer))]
    else:
        initial_states = [s for layer in final_states for s in layer]

    encoder_outputs = {MEMORY: memory, MASK: mask}
    attention = None
    if cfg.attention == "bahdanau":
        attention = BahdanauAttention(cfg.attention_units, name="attention")
        encoder_outputs[KEYS] = L.Dense(cfg.attention_units, use_bias=False, name="attention_keys")(memory)
    elif cfg.attention == "luong":
        attention = LuongAttention(scale=cfg.hidden ** -0.5, name="attention")
        encoder_outputs[KEYS] = L.Dense(cfg.hidden, use_bias=False, name="attention_keys")(memory)
    else:
        # Cho et al.: a fixed-size summary c of the whole source (top layer's final state).
        encoder_outputs[CONTEXT] = L.Dense(cfg.hidden, activation="tanh", name="context_projection")(
            final_states[-1][0])
    encoder_outputs.update(zip(state_names, initial_states))
    if regression:
        level = encoder_outputs[LAST_VALUES] = LastStep(name="last_values")(source)
        if cfg.linear_skip:
            window = LevelShift(-1.0, name="skip_relative")(source, level) if cfg.subtract_last else source
            encoder_outputs[BASELINE] = WindowLinear(horizon, name="linear_skip")(window)
    encoder = keras.Model(source, encoder_outputs, name="encoder")

    # ---------------------------------------------------------------- decoder layers (shared)
    tied = None
    if regression:
        target_embedding = L.Dense(cfg.embedding_dim, name="target_projection")  # previous values -> input
    elif cfg.tie_embeddings:
        tied = TiedEmbedding(target_vocab_size, cfg.embedding_dim, name=TIED_EMBEDDING)

        def target_embedding(ids):
            return tied(ids, mode="embed")
    else:
        target_embedding = L.Embedding(target_vocab_size, cfg.embedding_dim, name="target_embedding")
    target_dropout = L.Dropout(cfg.dropout, name="target_dropout")
    decoder_rnns = [_rnn(cfg, f"decoder_rnn_{i}") for i in range(cfg.layers)]
    between_dropouts = [L.Dropout(cfg.dropout, name=f"decoder_dropout_{i}") for i in range(cfg.layers - 1)]
    combine = L.Dense(cfg.hidden, activation="tanh", name="attentional_hidden")
    output_dropout = L.Dropout(cfg.dropout, name="output_dropout")
    # A sampled softmax reads a few words' rows of the output layer: stored word-major, it gets sparse gradients.
    if regression:
        # Zero-initialised: the model starts as its linear part (or as persistence with subtract_last), and the
        # recurrent part grows from there instead of adding noise to a good forecast.
        projection = L.Dense(target_features, kernel_initializer="zeros", name="output_projection")
    elif tied is not None:
        projection = tied  # word-major like VocabularyProjection, so a sampled softmax reads it the same way
    elif sampled_softmax:
        projection = VocabularyProjection(target_vocab_size, name="output_projection")
    else:
        projection = L.Dense(target_vocab_size, name="output_projection")
    output_size = target_features if regression else target_vocab_size
    with_context = BroadcastOverTime(name="context_over_time")

    def decode(y, states, enc, single_step: bool = False):
        """Decoder over ``y [B, T]`` ids given encoder outputs; returns output-layer inputs, states, alignment.

        With ``single_step`` (``T == 1``) the recurrent layers' cells are called directly: the same weights, but
        no per-call time loop, which makes a decoding step much cheaper (in TF and in the ONNX graphs).
        """
        h = target_dropout(target_embedding(y))
        if attention is None:
            h = L.Concatenate(name="decoder_input_with_context")([h, with_context(enc[CONTEXT], h)])
        new_states = []
        if single_step:
            h = L.Reshape((h.shape[-1],), name="step_input")(h)
        for i, rnn in enumerate(decoder_rnns):
            layer_states = states[i * per_state:(i + 1) * per_state]
            if single_step:
                h, layer_states = rnn.cell(h, layer_states)
                layer_states = list(layer_states)
            else:
                outputs = rnn(h, initial_state=layer_states)
                h, layer_states = outputs[0], list(outputs[1:])
            new_states.extend(layer_states)
            if i < cfg.layers - 1:
                h = between_dropouts[i](h)
        if single_step:
            h = L.Reshape((1, cfg.hidden), name="step_output")(h)
        if attention is not None:
            context, alignment = attention(h, enc[KEYS], enc[MEMORY], key_mask=enc[MASK])
        else:
            context, alignment = with_context(enc[CONTEXT], h), None
        hidden = output_dropout(combine(L.Concatenate(name="rnn_output_with_context")([h, context])))
        return hidden, new_states, alignment

    # ---------------------------------------------------------------- training model
    if regression:
        decoder_ids = keras.Input(shape=(horizon if cfg.linear_skip else None, target_features),
                                  name=F.DECODER_VALUES)
    else:
        decoder_ids = keras.Input(shape=(None,), dtype="int32", name=F.DECODER_TOKEN_IDS)
    relative = regression and cfg.subtract_last
    decoder_in = LevelShift(-1.0, name="decoder_relative")(decoder_ids, level) if relative else decoder_ids
    hidden, _, _ = decode(decoder_in, initial_states, encoder_outputs)
    inputs = {SOURCE_INPUTS[cfg.input_encoder]: source, decoder_ids.name: decoder_ids}
    outputs = projection(hidden)
    if regression and cfg.linear_skip:
        outputs = L.Add(name="with_linear_skip")([outputs, encoder_outputs[BASELINE]])
    if relative:
        outputs = LevelShift(1.0, name="with_level")(outputs, level)
    teacher_forced = (RegressionTrainingModel if regression else Seq2SeqTrainingModel)(inputs, outputs,
                                                                                        name="seq2seq")
    training = teacher_forced
    if sampled_softmax:
        training = SampledSoftmaxTrainingModel(inputs, hidden, projection=projection, num_sampled=sampled_softmax,
                                               name="seq2seq_sampled")

    # ---------------------------------------------------------------- one-step decoder
    if regression:
        step_ids = keras.Input(shape=(1, target_features), name=F.DECODER_VALUES)
    else:
        step_ids = keras.Input(shape=(1,), dtype="int32", name=F.DECODER_TOKEN_IDS)
    step_states = [keras.Input(shape=(cfg.hidden,), name=name) for name in state_names]
    step_enc = {MEMORY: keras.Input(shape=(None, memory.shape[-1]), name=MEMORY),
                MASK: keras.Input(shape=(None,), dtype="bool", name=MASK)}
    if attention is not None:
        step_enc[KEYS] = keras.Input(shape=(None, encoder_outputs[KEYS].shape[-1]), name=KEYS)
    else:
        step_enc[CONTEXT] = keras.Input(shape=(cfg.hidden,), name=CONTEXT)
    step_in, step_out = step_ids, None
    if relative:
        step_enc[LAST_VALUES] = keras.Input(shape=(target_features,), name=LAST_VALUES)
        step_in = LevelShift(-1.0, name="step_relative")(step_ids, step_enc[LAST_VALUES])
    step_hidden, step_new_states, step_alignment = decode(step_in, step_states, step_enc, single_step=True)
    step_out = projection(step_hidden)
    if relative:
        step_out = LevelShift(1.0, name="step_with_level")(step_out, step_enc[LAST_VALUES])
    step_outputs = {VALUES if regression else "logits":
                    L.Reshape((output_size,), name="step_values" if regression else "step_logits")(step_out)}
    step_outputs.update(zip(state_names, step_new_states))
    if step_alignment is not None:
        step_outputs["alignment"] = L.Reshape((-1,), name="step_alignment")(step_alignment)
    decoder_step = keras.Model({step_ids.name: step_ids, **dict(zip(state_names, step_states)), **step_enc},
                               step_outputs, name="decoder_step")
    models = Seq2SeqModels(training, encoder, decoder_step, cfg, state_names, teacher_forced)
    if regression:
        teacher_forced.attach_unroll(models.unrolled)
    return models


def _check_sizes(cfg: ModelConfig, source_vocab_size, target_vocab_size, image_shape, source_features,
                 source_length, target_features, horizon) -> None:
    needed = {"tokens": ("source_vocab_size", source_vocab_size), "image": ("image_shape", image_shape),
              "vectors": ("source_features", source_features)}[cfg.input_encoder]
    if needed[1] is None:
        raise ValueError(f"model.input_encoder={cfg.input_encoder!r} needs {needed[0]}")
    needed = {"softmax": ("target_vocab_size", target_vocab_size),
              "regression": ("target_features", target_features)}[cfg.output_head]
    if needed[1] is None:
        raise ValueError(f"model.output_head={cfg.output_head!r} needs {needed[0]}")
    if cfg.linear_skip and (source_length is None or horizon is None or source_features != target_features):
        raise ValueError("model.linear_skip needs source_length, horizon and as many target as source features")


def _source_sequence(cfg: ModelConfig, vocab_size, image_shape, features, length):
    """The source input, the sequence the recurrent encoder reads ``[B, S, D]`` and its mask ``[B, S]``."""
    if cfg.input_encoder == "tokens":
        source = keras.Input(shape=(None,), dtype="int32", name=F.ENCODER_TOKEN_IDS)
        x = L.Embedding(vocab_size, cfg.embedding_dim, mask_zero=True, name="source_embedding")(source)
        return source, x, PaddingMask(name="source_mask")(source)
    if cfg.input_encoder == "vectors":
        source = keras.Input(shape=(length, features), name=F.ENCODER_VALUES)
        x = source
        if cfg.subtract_last:
            x = LevelShift(-1.0, name="source_relative")(source, LastStep(name="source_level")(source))
        x = L.Dense(cfg.embedding_dim, name="source_projection")(x)
        return source, x, FullMask(name="source_mask")(x)
    # Image: conv blocks, then the feature map read left to right, one column (all rows' features) a step, so
    # the recurrent encoder and the attention see the image as a sequence of columns.
    source = keras.Input(shape=tuple(image_shape), name=F.ENCODER_IMAGE)
    x = source
    for i in range(cfg.conv_blocks):
        x = L.Conv2D(cfg.conv_filters * 2 ** i, 3, padding="same", activation="relu", name=f"conv_{i}")(x)
        x = L.MaxPooling2D(2, name=f"pool_{i}")(x)
    _, rows, columns, channels = x.shape
    x = L.Permute((2, 1, 3), name="columns_first")(x)
    x = L.Reshape((columns, rows * channels), name="feature_columns")(x)
    x = L.Dense(cfg.embedding_dim, activation="relu", name="source_projection")(x)
    return source, x, FullMask(name="source_mask")(x)
