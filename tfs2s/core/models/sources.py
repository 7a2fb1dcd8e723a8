"""The source encoders in front of the recurrent encoder: tokens, an image, or real-valued vectors.

Each turns its input into the sequence the recurrent encoder reads, ``[B, S, D]``, and that sequence's mask
``[B, S]`` (True where a step is not padding).
"""

from __future__ import annotations

import keras
from keras import layers as L

from tfs2s.core import features as F
from tfs2s.core.config import ModelConfig
from tfs2s.core.layers import FullMask, LastStep, LevelShift, PaddingMask, WordDropout
from tfs2s.core.models.contract import SOURCE_EMBEDDING, SOURCE_PROJECTION


def encode_tokens(cfg: ModelConfig, vocab_size: int):
    """Token ids ``[B, S]`` (0 = padding) through an embedding (and word dropout with
    ``model.embedding_dropout``); returns the input, the sequence and its mask."""
    source = keras.Input(shape=(None,), dtype="int32", name=F.ENCODER_TOKEN_IDS)
    x = L.Embedding(vocab_size, cfg.embedding_dim, mask_zero=True, name=SOURCE_EMBEDDING)(source)
    if cfg.embedding_dropout:
        x = WordDropout(cfg.embedding_dropout, vocab_size, name="source_word_dropout")(x, source)
    return source, x, PaddingMask(name="source_mask")(source)


def encode_vectors(cfg: ModelConfig, features: int, length: int | None):
    """Real values ``[B, L, F]`` through a dense projection (relative to the last step with ``subtract_last``)."""
    source = keras.Input(shape=(length, features), name=F.ENCODER_VALUES)
    x = source
    if cfg.subtract_last:
        x = LevelShift(-1.0, name="source_relative")(source, LastStep(name="source_level")(source))
    x = L.Dense(cfg.embedding_dim, name=SOURCE_PROJECTION)(x)
    return source, x, FullMask(name="source_mask")(x)


def encode_image(cfg: ModelConfig, image_shape: tuple[int, int, int]):
    """An image ``[B, H, W, C]`` through conv blocks, its feature map read left to right, one column a step.

    Each step is one column of the feature map (all its rows' features), so the recurrent encoder and the
    attention see the image as a sequence of columns.
    """
    source = keras.Input(shape=tuple(image_shape), name=F.ENCODER_IMAGE)
    x = source
    for i in range(cfg.conv_blocks):
        x = L.Conv2D(cfg.conv_filters * 2 ** i, 3, padding="same", activation="relu", name=f"conv_{i}")(x)
        x = L.MaxPooling2D(2, name=f"pool_{i}")(x)
    _, rows, columns, channels = x.shape
    x = L.Permute((2, 1, 3), name="columns_first")(x)
    x = L.Reshape((columns, rows * channels), name="feature_columns")(x)
    x = L.Dense(cfg.embedding_dim, activation="relu", name=SOURCE_PROJECTION)(x)
    return source, x, FullMask(name="source_mask")(x)


def encode_source(cfg: ModelConfig, vocab_size, image_shape, features, length):
    """The source input of ``cfg.input_encoder``, the sequence the recurrent encoder reads and its mask."""
    if cfg.input_encoder == "tokens":
        return encode_tokens(cfg, vocab_size)
    if cfg.input_encoder == "vectors":
        return encode_vectors(cfg, features, length)
    return encode_image(cfg, image_shape)
