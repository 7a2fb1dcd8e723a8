"""``build_models``: the training, encoder and one-step decoder models of a ``ModelConfig``, sharing layers.

The source encoder (``sources``) and the recurrent encoder (``encoder``) make the encoder model; the decoder's
layers (``decoder``) are called twice, over the whole target for the teacher-forced training model and over one
step for the one-step decoder. Layers and models are created in a fixed order: random initialisers draw their
seeds when they are created, so the same seed gives the same weights.
"""

from __future__ import annotations

import keras
from keras import layers as L

from tfs2s.core import features as F
from tfs2s.core.config import ModelConfig
from tfs2s.core.layers import LevelShift
from tfs2s.core.models.contract import (ALIGNMENT, BASELINE, CONTEXT, KEYS, LAST_VALUES, LOGITS, MASK, MEMORY,
                                        SOURCE_INPUTS, VALUES, Seq2SeqModels, state_names)
from tfs2s.core.models.decoder import Decoder
from tfs2s.core.models.encoder import encode_sequence
from tfs2s.core.models.keras_models import RegressionTrainingModel, SampledSoftmaxTrainingModel, Seq2SeqTrainingModel
from tfs2s.core.models.sources import encode_source


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
    source, x, mask = encode_source(cfg, source_vocab_size, image_shape, source_features, source_length)
    encoder_outputs, initial_states, attention = encode_sequence(cfg, source, x, mask, horizon)
    encoder = keras.Model(source, encoder_outputs, name="encoder")
    decoder = Decoder(cfg, attention, target_vocab_size, sampled_softmax, target_features)
    training, teacher_forced = _training_models(cfg, decoder, source, encoder_outputs, initial_states,
                                                sampled_softmax, target_features, horizon)
    decoder_step = _step_model(cfg, decoder, encoder_outputs, target_features, target_vocab_size)
    models = Seq2SeqModels(training, encoder, decoder_step, cfg, state_names(cfg), teacher_forced)
    if cfg.output_head == "regression":
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


def _training_models(cfg: ModelConfig, decoder: Decoder, source, encoder_outputs: dict, initial_states,
                     sampled_softmax: int, target_features, horizon) -> tuple[keras.Model, keras.Model]:
    """The model ``fit`` trains and the teacher-forced model (the same one unless ``sampled_softmax``)."""
    regression = cfg.output_head == "regression"
    if regression:
        decoder_ids = keras.Input(shape=(horizon if cfg.linear_skip else None, target_features),
                                  name=F.DECODER_VALUES)
    else:
        decoder_ids = keras.Input(shape=(None,), dtype="int32", name=F.DECODER_TOKEN_IDS)
    relative = regression and cfg.subtract_last
    level = encoder_outputs.get(LAST_VALUES)
    decoder_in = LevelShift(-1.0, name="decoder_relative")(decoder_ids, level) if relative else decoder_ids
    parts = decoder.decode_parts(decoder_in, initial_states, encoder_outputs)
    hidden = parts["hidden"]
    inputs = {SOURCE_INPUTS[cfg.input_encoder]: source, decoder_ids.name: decoder_ids}
    outputs = decoder.output(parts, encoder_outputs)
    if regression and cfg.linear_skip:
        outputs = L.Add(name="with_linear_skip")([outputs, encoder_outputs[BASELINE]])
    if relative:
        outputs = LevelShift(1.0, name="with_level")(outputs, level)
    teacher_forced = (RegressionTrainingModel if regression else Seq2SeqTrainingModel)(inputs, outputs,
                                                                                        name="seq2seq")
    training = teacher_forced
    if sampled_softmax:
        training = SampledSoftmaxTrainingModel(inputs, hidden, projection=decoder.projection,
                                               num_sampled=sampled_softmax, name="seq2seq_sampled")
    return training, teacher_forced


def _step_model(cfg: ModelConfig, decoder: Decoder, encoder_outputs: dict, target_features,
                target_vocab_size) -> keras.Model:
    """The one-step decoder: one target token (or value vector) and the decoder state -> output, new state."""
    regression = cfg.output_head == "regression"
    names = state_names(cfg)
    if regression:
        step_ids = keras.Input(shape=(1, target_features), name=F.DECODER_VALUES)
    else:
        step_ids = keras.Input(shape=(1,), dtype="int32", name=F.DECODER_TOKEN_IDS)
    step_states = [keras.Input(shape=(cfg.hidden,), name=name) for name in names]
    step_enc = {MEMORY: keras.Input(shape=(None, encoder_outputs[MEMORY].shape[-1]), name=MEMORY),
                MASK: keras.Input(shape=(None,), dtype="bool", name=MASK)}
    if decoder.attention is not None:
        step_enc[KEYS] = keras.Input(shape=(None, encoder_outputs[KEYS].shape[-1]), name=KEYS)
    else:
        step_enc[CONTEXT] = keras.Input(shape=(cfg.hidden,), name=CONTEXT)
    step_in = step_ids
    relative = regression and cfg.subtract_last
    if relative:
        step_enc[LAST_VALUES] = keras.Input(shape=(target_features,), name=LAST_VALUES)
        step_in = LevelShift(-1.0, name="step_relative")(step_ids, step_enc[LAST_VALUES])
    parts = decoder.decode_parts(step_in, step_states, step_enc, single_step=True)
    step_new_states, step_alignment = parts["states"], parts["alignment"]
    step_out = decoder.output(parts, step_enc)
    if relative:
        step_out = LevelShift(1.0, name="step_with_level")(step_out, step_enc[LAST_VALUES])
    # With copy attention the output grows with the source: V + S entries.
    output_size = target_features if regression else (-1 if cfg.copy else target_vocab_size)
    step_outputs = {VALUES if regression else LOGITS:
                    L.Reshape((output_size,), name="step_values" if regression else "step_logits")(step_out)}
    step_outputs.update(zip(names, step_new_states))
    if step_alignment is not None:
        step_outputs[ALIGNMENT] = L.Reshape((-1,), name="step_alignment")(step_alignment)
    return keras.Model({step_ids.name: step_ids, **dict(zip(names, step_states)), **step_enc}, step_outputs,
                       name="decoder_step")
