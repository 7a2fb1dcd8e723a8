"""Every use of a Keras private API in tfs2s, in one place.

Keras has no public way to do these things (see each entry). They can change in any Keras minor release, so
each name is listed in ``PRIVATE_NAMES`` and ``tests/test_keras_compat.py`` checks that the installed Keras still
has every one of them, naming the attribute when one has gone. Nothing else in tfs2s touches a Keras attribute
that starts with ``_``.
"""

from __future__ import annotations

import json
import os
import shutil

import keras
import tensorflow as tf

# (class, attribute) pairs used below, checked against the installed Keras by the tests.
PRIVATE_NAMES = (
    (keras.Model, "_maybe_symbolic_build"),  # MultiWorkerFitRepair overrides it
    (keras.Model, "_compile_metrics"),  # build_compiled_metrics
    (keras.Model, "_loss_tracker"),  # loss_tracker_result
    (keras.callbacks.BackupAndRestore, "_save_model"),  # EpochBoundaryBackup hooks it
    (keras.callbacks.BackupAndRestore, "_weights_path"),  # write_backup
    (keras.callbacks.BackupAndRestore, "_training_metadata_path"),  # write_backup
    (keras.callbacks.BackupAndRestore, "_current_epoch"),  # EpochBoundaryBackup
    (keras.callbacks.BackupAndRestore, "_batches_seen_since_last_saving"),  # EpochBoundaryBackup
    (keras.callbacks.EarlyStopping, "_set_monitor_op"),  # prepare_monitor
    (keras.callbacks.EarlyStopping, "_is_improvement"),  # is_improvement
    (keras.callbacks.ReduceLROnPlateau, "_set_monitor_op"),
    (keras.callbacks.ReduceLROnPlateau, "_is_improvement"),
)


class MultiWorkerFitRepair(keras.Model):
    """Lets ``fit`` run under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585).

    Keras 3.15's TF trainer breaks with that strategy: before the first step ``fit`` all-reduces a data batch to
    build the model (the model here is built already, and bucketed batches differ in shape between workers), and
    after each step it reduces every scalar metric along axis 0. Under that strategy the model skips the first
    (Keras' private ``_maybe_symbolic_build``) and returns its step outputs with a leading axis of 1. The build is
    skipped under every strategy with several replicas too (a batch of one row leaves a replica an empty share,
    and that all-reduce fails). Nothing changes otherwise.
    """

    def _multi_worker(self) -> bool:
        # The strategy the model was built under (fit itself runs outside its scope).
        return isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy)

    def _maybe_symbolic_build(self, *args, **kwargs):
        # Any strategy with several replicas: the all-reduce of that build batch also fails on one replica's empty
        # share (a token batch of one row on two devices: AddN of [1, T] and [0, T]).
        if not self._multi_worker() and self.distribute_strategy.num_replicas_in_sync <= 1:
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


def build_compiled_metrics(model: keras.Model, y, y_pred) -> None:
    """Builds the compiled metrics without updating them (Keras reads every compiled metric at epoch end, so a
    train step that skips them must still create them)."""
    metrics = model._compile_metrics
    if metrics is not None and not metrics.built:
        metrics.build(y, y_pred)


def loss_tracker_result(model: keras.Model):
    """The running mean of the training loss that Keras' own ``compute_metrics`` reports as ``loss``."""
    return model._loss_tracker.result()


class EpochBoundaryBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` that also backs up at every epoch end and calls ``on_backup`` after each backup.

    Keras' callback with an integer ``save_freq`` saves only inside epochs, so a run killed early in epoch ``n``
    would redo epoch ``n - 1`` entirely; saving at the boundary makes it resume at epoch ``n``. It also records the
    epoch being trained from that epoch's start: Keras' own counter starts at 0 in every process, so a resumed run
    killed again before its first epoch end would restart at epoch 0.
    """

    def on_backup(self) -> None:
        """Called after each backup is written (subclasses save their own state with it)."""

    def _save_model(self):
        super()._save_model()
        self.on_backup()

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self._batches_seen_since_last_saving = 0
        self._save_model()


def write_backup(backup_dir: str, weights_path: str, epochs_done: int) -> None:
    """Writes ``weights_path`` (weights and optimizer state) into ``backup_dir`` as the backup taken after
    ``epochs_done`` epochs, in ``BackupAndRestore``'s own file names, for a run to resume from."""
    keras_backup = keras.callbacks.BackupAndRestore(backup_dir)
    os.makedirs(backup_dir, exist_ok=True)
    shutil.copyfile(weights_path, keras_backup._weights_path)
    with open(keras_backup._training_metadata_path, "w", encoding="utf-8") as f:
        json.dump({"epoch": epochs_done, "batch": 0}, f)


def prepare_monitor(callback: keras.callbacks.Callback) -> None:
    """Sets a monitoring callback's comparison (mode, min_delta) now; Keras sets it on the first epoch end."""
    if callback.monitor_op is None:
        callback._set_monitor_op()


def is_improvement(callback: keras.callbacks.Callback, value: float) -> bool:
    """Keras' own test of whether ``value`` improves on the callback's best (its mode and min_delta)."""
    return bool(callback._is_improvement(value, callback.best))
