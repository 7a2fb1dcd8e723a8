"""The Keras private APIs tfs2s uses (tfs2s.core.keras_compat) still exist in the installed Keras, and each
helper still does what tfs2s relies on. A Keras release that renames one fails here, naming the attribute."""

import json
import os

import keras
import numpy as np
import pytest

from tfs2s.core import keras_compat


def _instance(cls, tmp_path):
    if cls is keras.callbacks.BackupAndRestore:
        return cls(str(tmp_path / "backup"))
    if cls is keras.Model:
        inputs = keras.Input((2,))
        model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
        model.compile("adam", "mse", metrics=["mae"])
        return model
    return cls()


@pytest.mark.parametrize("cls, name", keras_compat.PRIVATE_NAMES,
                         ids=[f"{c.__name__}.{n}" for c, n in keras_compat.PRIVATE_NAMES])
def test_every_private_name_exists(cls, name, tmp_path):
    obj = _instance(cls, tmp_path)
    assert hasattr(obj, name), (f"Keras {keras.__version__} has no {cls.__name__}.{name}, which "
                                f"tfs2s.core.keras_compat uses: adapt that module to this Keras release")


def test_write_backup_is_what_backup_and_restore_restores(tmp_path):
    """A seeded backup (how `tfs2s train --extend` goes on) restores the weights and the epoch to resume at."""
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile("adam", "mse")
    x = np.ones((4, 2), np.float32)
    model.fit(x, x[:, :1], epochs=1, verbose=0)
    weights = str(tmp_path / "w.weights.h5")
    model.save_weights(weights)
    keras_compat.write_backup(str(tmp_path / "backup"), weights, epochs_done=3)

    fresh = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    fresh.compile("adam", "mse")
    fresh.optimizer.build(fresh.trainable_variables)
    seen = []

    class Epochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    fresh.fit(x, x[:, :1], epochs=5, verbose=0,
              callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "backup")), Epochs()])
    assert seen == [3, 4]  # resumed after the three epochs the backup says were done


def test_epoch_boundary_backup_saves_at_each_epoch_end(tmp_path):
    calls = []

    class Recording(keras_compat.EpochBoundaryBackup):
        def on_backup(self):
            calls.append(json.load(open(os.path.join(self.backup_dir, "training_metadata.json")))["epoch"])

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    x = np.zeros((4, 2), np.float32)
    model.fit(x, x[:, :1], batch_size=4, epochs=2, verbose=0,
              callbacks=[Recording(str(tmp_path / "b"), save_freq=1000)])
    assert calls == [1, 2]  # one backup per epoch end, each recording the epochs done


def test_monitor_helpers_use_keras_comparison():
    stopping = keras.callbacks.EarlyStopping(monitor="val_loss", mode="min", min_delta=0.1)
    stopping.on_train_begin()
    keras_compat.prepare_monitor(stopping)
    stopping.best = 1.0
    assert keras_compat.is_improvement(stopping, 0.8) and not keras_compat.is_improvement(stopping, 0.95)


def test_compiled_metrics_and_loss_tracker():
    model = _instance(keras.Model, None)
    y = np.zeros((2, 1), np.float32)
    keras_compat.build_compiled_metrics(model, y, y)
    assert model._compile_metrics.built
    model.fit(np.ones((4, 2), np.float32), np.ones((4, 1), np.float32), verbose=0)
    assert float(keras_compat.loss_tracker_result(model)) > 0.0
