"""The output layer and the target embedding, found by name whether tied or not, and the output layer's bias."""

from __future__ import annotations

import keras
import numpy as np

from tfs2s.core.models.contract import OUTPUT_PROJECTION, TARGET_EMBEDDING, TIED_EMBEDDING, Seq2SeqModels


def _tied_or(model: keras.Model, name: str) -> keras.layers.Layer:
    tied = [layer for layer in model.layers if layer.name == TIED_EMBEDDING]
    return tied[0] if tied else model.get_layer(name)


def output_layer(model: keras.Model) -> keras.layers.Layer:
    """``model``'s output layer: ``output_projection``, or the ``TiedEmbedding`` with ``tie_embeddings``."""
    return _tied_or(model, OUTPUT_PROJECTION)


def target_embedding_layer(model: keras.Model) -> keras.layers.Layer:
    """``model``'s target embedding (``.embeddings`` is its ``[V, E]`` matrix), tied or not."""
    return _tied_or(model, TARGET_EMBEDDING)


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
