"""Mixed precision (``training.precision``): the dtype policy a run's models are built under, and loss scaling.

``float32`` (the default) changes nothing. ``mixed_bfloat16`` and ``mixed_float16`` are Keras mixed precision:
``train_run`` builds the models inside ``policy_scope``, so every layer computes in 16 bits while its variables
stay float32 (checkpoints are float32 and load into a float32 model). The scope sets Keras' global dtype policy
only while the layers are created and then restores it: a layer keeps the policy it was created with, and models
built later in the same process (another run, ``tfs2s.tasks.load``, tests) are not affected.

The rest of the code keeps the numerically delicate parts in float32 whatever the policy: the losses and the
token metrics cast the logits to float32 before their softmax, and ``Seq2SeqModels.initial_state`` / ``step``
hand the decoders float32 states and logits, so the searches' "impossible" scores (-1e9, -inf in float16)
stay finite. ``mixed_float16`` (whose range ends at 65,504) trains with dynamic loss scaling
(``keras.optimizers.LossScaleOptimizer``, see ``loss_scaled``); bfloat16 has float32's range and needs none.

What a mixed-precision run serves: ``tfs2s.tasks.load`` rebuilds a run's models in float32 and loads its
(float32) trained weights, so ``tfs2s translate``, ``evaluate`` and every export (SavedModel, ONNX) of such a run
are float32 models, exactly as for a float32 run: same graphs, same parity checks, the same clients. Only
training (and the validation BLEU decoded during training) runs in 16 bits.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import keras

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


@contextlib.contextmanager
def policy_scope(precision: str) -> Iterator[None]:
    """Layers created inside compute under ``precision`` (a Keras dtype policy name); the global policy is
    restored on exit.

    Raises:
        ValueError: An unknown precision (the config check names the valid ones first).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose {', '.join(PRECISIONS)}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def loss_scaled(optimizer: keras.optimizers.Optimizer, precision: str) -> keras.optimizers.Optimizer:
    """``optimizer`` wrapped in a dynamic ``LossScaleOptimizer`` for ``mixed_float16`` (unchanged otherwise).

    float16 gradients of small losses underflow to zero: the loss is multiplied by a scale before the
    gradients are taken and they are divided by it before the update; a step whose gradients overflow is
    skipped and halves the scale, and the scale doubles after 2,000 good steps (Keras' defaults).
    """
    if precision != "mixed_float16" or isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)
