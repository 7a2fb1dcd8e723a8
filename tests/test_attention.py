import numpy as np
import keras
import pytest

from tfs2s.core.layers.attention import BahdanauAttention, LuongAttention
from tfs2s.core.layers.projection import TiedEmbedding, VocabularyProjection
from tfs2s.core.layers.sequence import BroadcastOverTime, FullMask, LastStep, LevelShift, PaddingMask, WindowLinear


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(2, 3, 6)).astype("float32")
    keys = rng.normal(size=(2, 5, 4)).astype("float32")
    values = rng.normal(size=(2, 5, 7)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    return query, keys, values, mask


@pytest.mark.parametrize("layer", [BahdanauAttention(4), LuongAttention(scale=0.5)])
def test_masked_positions_get_zero_weight_and_do_not_matter(layer):
    query, keys, values, mask = _inputs()
    if isinstance(layer, LuongAttention):
        keys = np.concatenate([keys, keys[..., :2]], -1)  # Luong scores need query size == key size
    context, weights = layer(query, keys, values, key_mask=mask)
    w = np.asarray(weights)
    assert w.shape == (2, 3, 5)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
    assert np.all(w[0, :, 3:] == 0.0)
    # Changing keys/values under the mask changes nothing.
    keys2, values2 = keys.copy(), values.copy()
    keys2[0, 3:] += 100.0
    values2[0, 3:] -= 50.0
    context2, weights2 = layer(query, keys2, values2, key_mask=mask)
    np.testing.assert_allclose(np.asarray(context2), np.asarray(context), atol=1e-5)
    np.testing.assert_allclose(np.asarray(context), w @ values, atol=1e-5)


@pytest.mark.parametrize("cls,kwargs", [(BahdanauAttention, {"units": 4}), (LuongAttention, {"scale": 0.25}),
                                        (PaddingMask, {}), (BroadcastOverTime, {}),
                                        (VocabularyProjection, {"vocab_size": 7}),
                                        (TiedEmbedding, {"vocab_size": 7, "dim": 5})])
def test_config_round_trip(cls, kwargs):
    layer = cls(name="x", **kwargs)
    config = layer.get_config()
    again = cls.from_config(config)
    assert again.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is cls and restored.get_config() == config


def test_bahdanau_score_matches_formula():
    query, keys, values, _ = _inputs(1)
    layer = BahdanauAttention(4)
    _, weights = layer(query, keys, values)
    wq, v, b = (np.asarray(x) for x in (layer.query_dense.kernel, layer.v, layer.bias))
    scores = np.tanh((query @ wq)[:, :, None, :] + keys[:, None, :, :] + b) @ v
    expected = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(weights), expected, atol=1e-5)


@pytest.mark.parametrize("cls,kwargs", [(FullMask, {}), (LastStep, {}), (WindowLinear, {"horizon": 4})])
def test_sequence_layers_config_round_trip(cls, kwargs):
    layer = cls(name="x", **kwargs)
    x = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(np.float32)
    out = layer(x)
    assert out.shape == {FullMask: (2, 6), LastStep: (2, 3), WindowLinear: (2, 4, 3)}[cls]
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is cls and restored.get_config() == layer.get_config()
    restored(x)
    if layer.weights:
        restored.set_weights(layer.get_weights())
    np.testing.assert_allclose(restored(x), out)


def test_level_shift_round_trip():
    values = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    level = values[:, -1]
    down = LevelShift(-1.0, name="down")
    relative = down(values, level).numpy()
    np.testing.assert_allclose(relative[:, -1], 0.0, atol=1e-7)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(LevelShift(1.0, name="up")))
    assert restored.sign == 1.0
    np.testing.assert_allclose(restored(relative, level), values, atol=1e-6)


# Constructor arguments of every custom layer; a layer added to tfs2s.core.layers needs an entry here.
LAYER_ARGUMENTS = {"BahdanauAttention": {"units": 4}, "LuongAttention": {"scale": 0.25}, "PaddingMask": {},
                   "BroadcastOverTime": {}, "FullMask": {}, "LastStep": {}, "WindowLinear": {"horizon": 4},
                   "LevelShift": {"sign": 1.0}, "VocabularyProjection": {"vocab_size": 7},
                   "TiedEmbedding": {"vocab_size": 7, "dim": 5},
                   "LockedDropout": {"rate": 0.25}, "WordDropout": {"rate": 0.25, "vocab_size": 7},
                   "DropConnectGRUCell": {"units": 3, "weight_dropout": 0.25},
                   "DropConnectLSTMCell": {"units": 3, "weight_dropout": 0.25},
                   "DropConnectRNN": {"units": 3, "cell_type": "lstm", "weight_dropout": 0.25},
                   "CopyGenerator": {}, "ExtendedIdsToUnk": {"vocab_size": 7}}


def test_every_registered_layer_is_exported_and_listed_here():
    """The layers registered from tfs2s.core.layers are those it exports, and each has arguments above."""
    import tfs2s.core.layers as layers

    registered = {name.split(">", 1)[1] for name, obj in keras.saving.get_custom_objects().items()
                  if name.startswith("tfs2s>") and obj.__module__.startswith("tfs2s.core.layers")}
    assert registered == set(layers.__all__)
    assert set(LAYER_ARGUMENTS) == set(layers.__all__)


@pytest.mark.parametrize("name", sorted(LAYER_ARGUMENTS))
def test_every_custom_layer_round_trips_through_keras_serialization(name):
    import tfs2s.core.layers as layers

    cls = getattr(layers, name)
    assert keras.saving.get_registered_name(cls) == f"tfs2s>{name}"  # the name saved .keras files refer to
    layer = cls(name="x", **LAYER_ARGUMENTS[name])
    config = layer.get_config()
    for key, value in LAYER_ARGUMENTS[name].items():
        assert config[key] == value
    assert cls.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is cls and restored.get_config() == config
