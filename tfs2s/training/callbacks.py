"""The callbacks of every tfs2s run: training clock, resumable backups, checkpoints, logs, BLEU, monitoring.

Each counts from what the run folder already holds (``tfs2s.training.run_dir``), so an interrupted, resumed or
extended run goes on where it stopped: its clock, its best validation loss, its plateau and early-stopping counts.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from typing import Callable, Sequence

import keras

from tfs2s.core.config import Config, TrainingConfig
from tfs2s.core.keras_compat import EpochBoundaryBackup, is_improvement, prepare_monitor
from tfs2s.core.metrics import bleu_scores
from tfs2s.training.averaging import KeepLastEpochs
from tfs2s.training.run_dir import (BACKUP_DIR, CHECKPOINT_DIR, HISTORY_FILE, append_jsonl, best_val_loss,
                                    checkpoint_path, logged_val_losses, read_clock)

logger = logging.getLogger(__name__)


class TrainingClock(keras.callbacks.Callback):
    """Measures training time (excluding validation and BLEU passes), tokens/s, and stops at ``max_minutes``.

    Training time already spent by an interrupted run is read back from ``state_path``.
    """

    def __init__(self, max_minutes: float, tokens_per_step: float, state_path: str):
        super().__init__()
        self.max_seconds = max_minutes * 60.0
        self.tokens_per_step = tokens_per_step
        self.state_path = state_path
        self.elapsed = 0.0
        self.steps = 0
        self._started = None
        self.elapsed, self.steps = read_clock(state_path)

    def pause(self):
        if self._started is not None:
            self.elapsed += time.perf_counter() - self._started
            self._started = None

    def resume(self):
        self._started = time.perf_counter()

    @property
    def seconds(self) -> float:
        running = time.perf_counter() - self._started if self._started is not None else 0.0
        return self.elapsed + running

    @property
    def tokens_per_second(self) -> float:
        return self.steps * self.tokens_per_step / max(self.seconds, 1e-9)

    def save(self):
        with open(self.state_path, "w", encoding="utf-8") as f:
            json.dump({"train_seconds": self.seconds, "train_steps": self.steps}, f)

    def on_train_batch_begin(self, batch, logs=None):
        if self._started is None:
            self.resume()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.max_seconds and self.seconds >= self.max_seconds:
            self.model.stop_training = True

    def on_test_begin(self, logs=None):
        self.pause()

    def on_epoch_end(self, epoch, logs=None):
        self.pause()
        self.save()
        if logs is not None:
            logs["train_minutes"] = self.seconds / 60.0
            logs["train_tokens_per_second"] = self.tokens_per_second

    def on_train_end(self, logs=None):
        self.pause()
        self.save()


class EpochProgbar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, with a step count from the first epoch on.

    A full pass over a ``tf.data`` pipeline has no known cardinality (bucketing makes it vary a little), so
    Keras' own bar counts ``55/Unknown`` through the first epoch of every ``fit`` (a fresh run's and a resumed
    one's) and learns the count only at its end. The task counted its batches when it built the data
    (``TrainingJob.batches``): that count is the bar's target until Keras knows better. The bar is only a
    display: the epoch still ends when the data does (no ``assert_cardinality``, which would fail an epoch one
    batch longer or shorter).

    Args:
        expected_steps: Steps one epoch is expected to take.
    """

    def __init__(self, expected_steps: int):
        super().__init__()
        self.expected_steps = expected_steps
        self._counted = False

    def set_params(self, params):
        super().set_params(params)  # Keras' ProgbarLogger keeps no ``params``
        self._counted = params["steps"] is None
        if self._counted and self.expected_steps > 0:
            self.target = self.expected_steps

    def _finalize_progbar(self, logs):
        # The epoch's real count, for the next epoch's bar (Keras would keep the first guess).
        if self._counted and self.seen:
            self.target = self.seen
            if self.progbar is not None:
                self.progbar.target = self.seen
        super()._finalize_progbar(logs)


class ResumableBackup(EpochBoundaryBackup):
    """Backs up at every epoch end and every ``save_freq`` steps, with the training clock saved beside each
    backup (see ``tfs2s.core.keras_compat.EpochBoundaryBackup``)."""

    def __init__(self, backup_dir: str, save_freq: int, clock: TrainingClock):
        super().__init__(backup_dir, save_freq=save_freq)
        self.clock = clock

    def on_backup(self) -> None:
        self.clock.save()


class BleuEvaluator(keras.callbacks.Callback):
    """Greedy-decodes validation sentences and logs BLEU every ``every_minutes`` of training time.

    With ``every_minutes`` 0 it evaluates at the end of each epoch only.

    Args:
        translate: Greedy translation of a list of sources (the task's predictor over the model being trained).
        pairs: ``(source, reference)`` validation pairs.
        clock: The run's training clock (paused while translating).
        every_minutes: Training minutes between evaluations (0: at each epoch end).
        history_path: The run's ``history.jsonl``.
    """

    def __init__(self, translate: Callable[[list[str]], list[str]], pairs: Sequence[tuple[str, str]],
                 clock: TrainingClock, every_minutes: float, history_path: str):
        super().__init__()
        self.translate = translate
        self.pairs = list(pairs)
        self.clock = clock
        self.every_seconds = every_minutes * 60.0
        self.history_path = history_path
        self.next_at = self.every_seconds if every_minutes else math.inf
        while self.next_at <= clock.seconds:
            self.next_at += self.every_seconds
        self.results: list[dict] = []

    def evaluate(self, epoch: int | None) -> dict:
        self.clock.pause()
        hypotheses = self.translate([s for s, _ in self.pairs])
        scores = bleu_scores(hypotheses, [t for _, t in self.pairs])
        record = {"event": "bleu", "train_minutes": round(self.clock.seconds / 60.0, 2), "epoch": epoch,
                  "greedy_bleu": scores["bleu"], "greedy_bleu_lowercase": scores["bleu_lowercase"],
                  "chrf": scores["chrf"], "sentences": len(self.pairs)}
        append_jsonl(self.history_path, record)
        self.results.append(record)
        logger.info("validation BLEU %.2f (lowercased %.2f) after %.1f training minutes", scores["bleu"],
                    scores["bleu_lowercase"], self.clock.seconds / 60.0)
        return record

    def on_train_batch_end(self, batch, logs=None):
        if self.clock.seconds >= self.next_at:
            self.evaluate(None)
            self.next_at += self.every_seconds

    def on_epoch_end(self, epoch, logs=None):
        if not self.every_seconds:
            record = self.evaluate(epoch)
            if logs is not None:
                logs["val_bleu"] = record["greedy_bleu"]


class EpochLogger(keras.callbacks.Callback):
    """Appends each epoch's metrics to ``history.jsonl``."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        record = {"event": "epoch", "epoch": epoch + 1}
        record.update({k: float(v) for k, v in (logs or {}).items()})
        append_jsonl(self.path, record)


def run_callbacks(cfg: Config, run_dir: str, clock: TrainingClock,
                  extra: Sequence[keras.callbacks.Callback] = ()) -> list[keras.callbacks.Callback]:
    """The callbacks of every tfs2s run: clock, resumable backup, best/last checkpoints, TensorBoard, the epoch
    log, and the configured learning-rate plateau and early stopping (``extra`` runs before the epoch log).

    ``run_dir/checkpoints/best.weights.h5`` keeps the weights of the lowest validation loss, also across an
    interrupted and resumed run (the best loss so far is read back from ``history.jsonl``). With
    ``training.average_checkpoints: N`` that epoch goes to ``best_epoch.weights.h5`` and ``best.weights.h5`` becomes
    the average of the last N epochs when training ends (``tfs2s.training.averaging``).
    """
    t = cfg.training
    os.makedirs(os.path.join(run_dir, CHECKPOINT_DIR), exist_ok=True)
    history_path = os.path.join(run_dir, HISTORY_FILE)
    # Before the backup: an epoch's weights are kept before the backup marks the epoch done.
    keep = [KeepLastEpochs(run_dir, t.average_checkpoints)] if t.average_checkpoints else []
    best = checkpoint_path(run_dir, "best_epoch" if keep else "best")
    callbacks = [
        clock,
        *keep,
        ResumableBackup(os.path.join(run_dir, BACKUP_DIR), save_freq=200, clock=clock),
        keras.callbacks.ModelCheckpoint(best, monitor="val_loss", save_best_only=True, save_weights_only=True,
                                        initial_value_threshold=best_val_loss(history_path)),
        keras.callbacks.ModelCheckpoint(checkpoint_path(run_dir, "last"), save_weights_only=True),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "logs"), update_freq=50),
        *extra,
        EpochLogger(history_path),
    ]
    return callbacks + monitor_callbacks(t, history_path)


def monitor_callbacks(t: TrainingConfig, history_path: str) -> list[keras.callbacks.Callback]:
    """The learning-rate plateau and early stopping of ``t``, both counting from the epochs already logged in
    ``history_path`` (so an interrupted, resumed or extended run keeps its best validation loss and patience)."""
    callbacks: list[keras.callbacks.Callback] = []
    if t.lr_schedule == "plateau":
        callbacks.append(ResumedPlateau(history_path, monitor="val_loss", mode="min", factor=0.5, patience=1,
                                        min_lr=1e-5))
    if t.early_stopping_patience:
        callbacks.append(ResumedEarlyStopping(history_path, monitor="val_loss", mode="min",
                                              patience=t.early_stopping_patience))
    return callbacks


class _ReplaysLoggedEpochs:
    """Mixin for Keras' monitoring callbacks, which reset their best value and patience count in
    ``on_train_begin``: after that reset, the run's logged validation losses are replayed through ``_replay``."""

    def __init__(self, history_path: str, **kwargs):
        super().__init__(**kwargs)
        self.history_path = history_path

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        prepare_monitor(self)  # Keras sets the comparison on the first epoch end; the replay needs it now
        for loss in logged_val_losses(self.history_path):
            self._replay(loss)

    def _improves(self, loss: float) -> bool:
        return is_improvement(self, loss)  # Keras' own test (mode, min_delta)


class ResumedPlateau(_ReplaysLoggedEpochs, keras.callbacks.ReduceLROnPlateau):
    """``ReduceLROnPlateau`` that starts from the epochs a run has already logged.

    Keras' own started every resumed run afresh: its first epoch counted as an improvement whatever its loss, and a
    plateau went unnoticed for ``patience`` more epochs. Replaying only moves the counters: the reductions the
    logged epochs caused are already in the restored optimizer's learning rate.
    """

    def _replay(self, loss: float) -> None:
        if self._improves(loss):
            self.best, self.wait = loss, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.wait = 0


class ResumedEarlyStopping(_ReplaysLoggedEpochs, keras.callbacks.EarlyStopping):
    """``EarlyStopping`` that starts from the epochs a run has already logged (see ``ResumedPlateau``): a run
    resumed or extended after ``k`` epochs without improvement stops after ``patience - k`` more."""

    def _replay(self, loss: float) -> None:
        self.wait += 1
        if self._improves(loss):
            self.best, self.wait = loss, 0
