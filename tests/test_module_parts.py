"""Direct tests of modules otherwise reached only through their public entry points: the config file reader
and checks, the decoding buffers, the output bias and the training models' registration, the serving modules'
signature lists."""

import numpy as np
import pytest
import tensorflow as tf

from tfs2s.core.config import Config
from tfs2s.core.config_checks import validate
from tfs2s.core.config_file import deep_merge, parse_overrides
from tfs2s.core.decoding.buffers import per_input_limits, write_at
from tfs2s.core.errors import ConfigError


def test_config_file_parses_overrides_as_yaml_scalars_and_merges():
    # YAML 1.1 reads "1e-3" as a string; Config coerces it to the field's float type later.
    assert parse_overrides(["model.hidden=64", "training.learning_rate=0.001", "name=x", "x.y=1e-3"]) == {
        "model.hidden": 64, "training.learning_rate": 0.001, "name": "x", "x.y": "1e-3"}
    assert deep_merge({"model": {"hidden": 1, "cell": "gru"}}, {"model": {"hidden": 2}}) == {
        "model": {"hidden": 2, "cell": "gru"}}


def test_config_checks_name_the_bad_value():
    validate(Config())
    with pytest.raises(ConfigError, match="model.cell"):
        Config().replace(**{"model.cell": "rnn"})


def test_decoding_buffers_write_one_step_and_limit_per_input():
    buffer = write_at(tf.zeros([2, 4], tf.int32), tf.constant(2), tf.constant([7, 9]))
    np.testing.assert_array_equal(buffer.numpy(), [[0, 0, 7, 0], [0, 0, 9, 0]])
    limits, longest = per_input_limits(tf.constant([3, 5]), 2)
    assert limits.numpy().tolist() == [3, 5] and int(longest) == 5
    limits, longest = per_input_limits(4, 3)
    assert limits.numpy().tolist() == [4, 4, 4] and int(longest) == 4


def test_output_bias_and_registered_training_models():
    import keras

    from tfs2s.core.config import ModelConfig
    from tfs2s.core.models import build_models
    from tfs2s.core.models import keras_models
    from tfs2s.core.models.output_bias import output_layer, set_unigram_output_bias

    models = build_models(ModelConfig(hidden=8, embedding_dim=4, attention_units=4), 20, 10)
    counts = np.arange(10)
    set_unigram_output_bias(models, counts)
    bias = output_layer(models.training).bias.numpy()
    np.testing.assert_allclose(bias, np.log((counts + 1) / (counts + 1).sum()), atol=1e-5)
    for cls in (keras_models.Seq2SeqTrainingModel, keras_models.SampledSoftmaxTrainingModel,
                keras_models.RegressionTrainingModel):
        assert keras.saving.get_registered_name(cls) == f"tfs2s>{cls.__name__}"


def test_serving_modules_list_their_signatures():
    from tfs2s.tasks.image.serving import CaptionServingModule
    from tfs2s.tasks.series.serving import ForecastServingModule
    from tfs2s.tasks.text.serving import TextServingModule

    assert TextServingModule.SIGNATURES[0] == "serve" and {"translate_options", "translate_ids", "sample",
                                                           "decode_step", "logits"} <= set(TextServingModule.SIGNATURES)
    assert CaptionServingModule.SIGNATURES == ("serve", "caption_image", "caption_image_greedy", "caption_image_beam")
    assert ForecastServingModule.SIGNATURES == ("serve", "forecast", "forecast_normalized")
