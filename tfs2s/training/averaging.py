"""Checkpoint averaging (``training.average_checkpoints``, ``tfs2s average``): the run's final model as the mean of
its last N epochs' weights.

With ``training.average_checkpoints: N`` a run keeps the weights of its last N epochs in
``checkpoints/epoch_<n>.weights.h5`` (``KeepLastEpochs``, written before the epoch's backup, so an interrupted run
loses none), keeps the single epoch of lowest validation loss in ``checkpoints/best_epoch.weights.h5``, and when
training ends writes the average of the kept epochs as ``checkpoints/best.weights.h5``, the weights every command
(``evaluate``, ``export``, ``translate``) loads. ``checkpoints/average.json`` records which epochs were averaged.
``tfs2s average --run-dir R [--last N]`` averages again afterwards, from the checkpoints the run kept.

Averaging works on the weight files themselves (every floating-point array is averaged, anything else is taken
from the newest checkpoint), so it needs no model and is the same for every task.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil

import keras
import numpy as np

from tfs2s.core.config import load_config, save_config
from tfs2s.core.errors import InputError, RunNotFoundError
from tfs2s.training.run_dir import (CHECKPOINT_DIR, CONFIG_FILE, SUMMARY_FILE, checkpoint_path,
                                    read_run_config)

logger = logging.getLogger(__name__)

AVERAGE_FILE = "average.json"  # in checkpoints/: the epochs and files the final model averages
OPTIMIZER_GROUP = "optimizer"  # where a Keras weights file keeps the optimizer's variables
_EPOCH_FILE = re.compile(r"^epoch_(\d+)\.weights\.h5$")


def epoch_checkpoint_path(run_dir: str, epoch: int) -> str:
    """``run_dir/checkpoints/epoch_<epoch>.weights.h5``: the weights at the end of ``epoch`` (from 1)."""
    return os.path.join(run_dir, CHECKPOINT_DIR, f"epoch_{epoch:04d}.weights.h5")


def kept_epochs(run_dir: str) -> list[int]:
    """The epochs whose weights the run folder keeps, in order."""
    folder = os.path.join(run_dir, CHECKPOINT_DIR)
    if not os.path.isdir(folder):
        return []
    return sorted(int(m.group(1)) for m in map(_EPOCH_FILE.match, os.listdir(folder)) if m)


def average_weight_files(paths: list[str], out_path: str) -> None:
    """Writes the element-wise mean of the Keras weight files ``paths`` (all of one model) to ``out_path``.

    Every floating-point array of the model is averaged (in float64, stored in its own dtype); other arrays
    (seed generator states) and the optimizer's state (which ``save_weights`` stores beside a compiled model's
    weights) are the last file's. ``out_path`` is replaced atomically.

    Raises:
        ValueError: The files do not hold the same arrays (not checkpoints of one model).
    """
    import h5py

    partial = os.path.join(os.path.dirname(out_path), ".averaging." + os.path.basename(out_path))
    shutil.copyfile(paths[-1], partial)
    sources = [h5py.File(p, "r") for p in paths]
    try:
        with h5py.File(partial, "r+") as out:
            def average(name, obj):
                if (not isinstance(obj, h5py.Dataset) or not np.issubdtype(obj.dtype, np.floating)
                        or name.split("/", 1)[0] == OPTIMIZER_GROUP):
                    return
                arrays = []
                for path, source in zip(paths, sources):
                    if name not in source or source[name].shape != obj.shape:
                        raise ValueError(f"{path} does not hold {name} of shape {obj.shape}: the checkpoints "
                                         "are not of one model")
                    arrays.append(np.asarray(source[name][()], np.float64))
                obj[...] = np.mean(arrays, axis=0).astype(obj.dtype)

            out.visititems(average)
    except BaseException:
        os.remove(partial)
        raise
    finally:
        for source in sources:
            source.close()
    os.replace(partial, out_path)


def average_last(run_dir: str, last: int) -> dict:
    """Makes ``checkpoints/best.weights.h5`` the average of the run's last ``last`` kept epochs (fewer if fewer
    are kept) and records it in ``checkpoints/average.json``; returns that record.

    Raises:
        RunNotFoundError: The run keeps no epoch checkpoints.
    """
    epochs = kept_epochs(run_dir)[-last:]
    if not epochs:
        raise RunNotFoundError(f"{run_dir} keeps no epoch checkpoints (checkpoints/epoch_*.weights.h5) to average")
    paths = [epoch_checkpoint_path(run_dir, e) for e in epochs]
    average_weight_files(paths, checkpoint_path(run_dir, "best"))
    record = {"averaged_epochs": epochs, "files": [os.path.basename(p) for p in paths],
              "weights": os.path.basename(checkpoint_path(run_dir, "best"))}
    with open(os.path.join(run_dir, CHECKPOINT_DIR, AVERAGE_FILE), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    logger.info("%s: the final model is the average of epochs %s", run_dir, ", ".join(map(str, epochs)))
    return record


def average_run(run_dir: str, last: int | None = None) -> dict:
    """``tfs2s average``: makes a finished (or interrupted) run's final model the average of its last ``last``
    kept epochs (default: the run's ``training.average_checkpoints``, else all it keeps).

    ``config.json`` then records ``training.average_checkpoints = last``, and ``summary.json`` (whose figures were
    measured on the model before) the averaged epochs.

    Raises:
        RunNotFoundError: Not a run folder, or it keeps no epoch checkpoints (it was trained without
            ``training.average_checkpoints``).
        InputError: ``last`` below 1 or above the epochs kept.
    """
    cfg = read_run_config(run_dir)
    kept = kept_epochs(run_dir)
    if not kept:
        raise RunNotFoundError(f"{run_dir} keeps no epoch checkpoints to average: train it with --set "
                               "training.average_checkpoints=N to keep its last N epochs' weights")
    last = last if last is not None else (cfg.training.average_checkpoints or len(kept))
    if last < 1:
        raise InputError(f"--last must be at least 1, got {last}")
    if last > len(kept):
        raise InputError(f"--last {last}: {run_dir} keeps {len(kept)} epoch checkpoint(s) (epochs "
                         f"{', '.join(map(str, kept))}); average at most {len(kept)}")
    record = average_last(run_dir, last)
    if cfg.training.average_checkpoints != last:
        save_config(load_config(os.path.join(run_dir, CONFIG_FILE), [f"training.average_checkpoints={last}"]),
                    run_dir)
    summary_path = os.path.join(run_dir, SUMMARY_FILE)
    if os.path.exists(summary_path):
        with open(summary_path, encoding="utf-8") as f:
            summary = json.load(f)
        summary.update(averaged_epochs=record["averaged_epochs"], averaged_after_training=True)
        with open(summary_path, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
    return {"run_dir": run_dir, **record}


class KeepLastEpochs(keras.callbacks.Callback):
    """Keeps the weights of the last ``keep`` epochs and, when training ends, makes their average the run's final
    model (``checkpoints/best.weights.h5``).

    It runs before the run's backup callback: an epoch's weights are on disk before the backup says the epoch is
    done, so a run killed in between redoes the epoch and writes them again. Files are written under a temporary
    name and renamed, so a kill never leaves a half-written checkpoint.

    Args:
        run_dir: The run folder.
        keep: Epochs kept (``training.average_checkpoints``).
    """

    def __init__(self, run_dir: str, keep: int):
        super().__init__()
        self.run_dir, self.keep = run_dir, keep

    def on_epoch_end(self, epoch, logs=None):
        path = epoch_checkpoint_path(self.run_dir, epoch + 1)
        partial = os.path.join(os.path.dirname(path), ".partial." + os.path.basename(path))
        self.model.save_weights(partial)
        os.replace(partial, path)
        for old in kept_epochs(self.run_dir)[:-self.keep]:
            os.remove(epoch_checkpoint_path(self.run_dir, old))

    def on_train_end(self, logs=None):
        if kept_epochs(self.run_dir):
            average_last(self.run_dir, self.keep)
        else:
            logger.warning("%s: no epoch ended, so there is nothing to average", self.run_dir)
