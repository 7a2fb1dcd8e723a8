"""The one fit skeleton every task trains with: run folder, distribution, ``model.fit`` with the run callbacks,
the best checkpoint, the summary.

A task hands ``train_run`` a ``TrainingJob``: its datasets, how to build, start and compile its models, the
callbacks it adds and what it adds to the summary. Everything else (resuming, extending, the training clock,
checkpoints, logs, multi-worker sharding, the summary file) is the same for every task and lives here.
"""

from __future__ import annotations

import abc
import logging
import os
import time
from typing import Callable, Sequence

import keras
import tensorflow as tf

from tfs2s.core.config import Config
from tfs2s.core.errors import ConfigError, DistributeError
from tfs2s.core.losses import MaskedCrossEntropy
from tfs2s.core.metrics import Perplexity, TokenAccuracy
from tfs2s.core.models import Seq2SeqModels
from tfs2s.core.optimizers import LazyAdam
from tfs2s.core.text_data import shard_batches
from tfs2s.training.callbacks import EpochProgbar, TrainingClock, run_callbacks
from tfs2s.training.distribute import make_strategy, worker_index
from tfs2s.training.precision import loss_scaled, policy_scope
from tfs2s.training.run_dir import (BACKUP_DIR, CLOCK_FILE, HISTORY_FILE, checkpoint_path, open_run,
                                    trained_epochs, write_summary)

logger = logging.getLogger(__name__)


def make_optimizer(cfg: Config, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam (or lazy Adam) with the configured learning-rate schedule and gradient clipping; with
    ``training.precision: mixed_float16`` wrapped in dynamic loss scaling (``tfs2s.training.precision``)."""
    t = cfg.training
    lr = t.learning_rate
    if t.lr_schedule == "cosine":
        total = max(1, steps_per_epoch * t.epochs)
        lr = keras.optimizers.schedules.CosineDecay(0.0, decay_steps=max(1, total - t.warmup_steps),
                                                    warmup_target=t.learning_rate,
                                                    warmup_steps=min(t.warmup_steps, total))
    adam = LazyAdam if t.optimizer == "lazy_adam" else keras.optimizers.Adam
    return loss_scaled(adam(learning_rate=lr, clipnorm=t.clipnorm or None), t.precision)


def compile_model(models: Seq2SeqModels, cfg: Config, steps_per_epoch: int) -> keras.Model:
    """Compiles the training model of a vocabulary output with the masked loss, perplexity and token accuracy."""
    model = models.training
    model.compile(optimizer=make_optimizer(cfg, steps_per_epoch),
                  loss=MaskedCrossEntropy(label_smoothing=cfg.training.label_smoothing),
                  metrics=[Perplexity(), TokenAccuracy()], jit_compile=cfg.training.jit_compile)
    return model


class TrainingJob(abc.ABC):
    """What a task hands ``train_run``: its data and models, and the summary figures it adds.

    Subclasses set the four attributes in their constructor (which reads the data and prepares vocabularies or
    statistics in the run folder) and implement ``build``; the other hooks have defaults.

    Attributes:
        cfg: The run's config.
        run_dir: The run folder (a worker's own folder under multi-worker training).
        train: Training batches ``(features, targets[, sample_weight])``, one pass over the data.
        validation: Validation batches.
        batches: Batches in one pass over ``train``.
        tokens_per_step: Target tokens (or values) per step, for the clock's throughput figure.
    """

    def __init__(self, cfg: Config, run_dir: str):
        self.cfg = cfg
        self.run_dir = run_dir
        self.train: tf.data.Dataset | None = None
        self.validation: tf.data.Dataset | None = None
        self.batches = 0
        self.tokens_per_step = 0.0

    @abc.abstractmethod
    def build(self) -> Seq2SeqModels:
        """Builds the models (inside the distribution strategy's scope and the ``training.precision`` policy)."""

    def start(self, models: Seq2SeqModels, fresh: bool) -> None:
        """Sets starting weights (a resumed run's backup overwrites them); ``fresh``: no backup to resume from."""

    def compile(self, models: Seq2SeqModels, steps_per_epoch: int) -> keras.Model:
        """Compiles and returns the training model (default: masked cross-entropy, perplexity, accuracy)."""
        return compile_model(models, self.cfg, steps_per_epoch)

    def before_fit(self, model: keras.Model, fresh: bool) -> None:
        """Runs after compiling, before ``fit`` (e.g. to record the starting point as the best checkpoint)."""

    def callbacks(self, models: Seq2SeqModels, clock: TrainingClock) -> list[keras.callbacks.Callback]:
        """Callbacks the task adds (before the epoch log, so they can add to its metrics)."""
        return []

    def summary(self, models: Seq2SeqModels, model: keras.Model, clock: TrainingClock) -> dict:
        """The task's summary figures, computed with the best weights loaded."""
        return {}


def _check_strategy(cfg: Config, strategy: str) -> None:
    if strategy == "multi_worker" and cfg.training.max_minutes:
        # Each worker would stop on its own clock, at different steps, and the others would wait forever.
        raise ConfigError("training.max_minutes cannot bound multi_worker training (workers must stop at the same "
                          "step); bound it with training.epochs or training.steps_per_epoch")


def _fit(model: keras.Model, train, job: TrainingJob, steps_per_epoch: int | None, callbacks: list,
         verbose, worker: int, workers: int) -> None:
    try:
        model.fit(train, validation_data=job.validation, epochs=job.cfg.training.epochs,
                  steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose)
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError) as err:
        if workers == 1:
            raise
        raise DistributeError(f"worker {worker}: another worker stopped answering during training "
                              f"({type(err).__name__}); start all workers again with the same command to resume "
                              "from the last backup") from None


def train_run(cfg: Config, run_dir: str, make_job: Callable[[Config, str], TrainingJob], *,
              verbose: int | str = "auto", extra_callbacks: Sequence[keras.callbacks.Callback] = (),
              strategy: str = "default", connect_timeout: float = 120.0, extend: bool = False) -> dict:
    """Trains (or resumes, or extends) a run in ``run_dir`` and returns its summary.

    A run killed part-way (Ctrl-C, a lost machine) continues from its last backup when started again with the
    same ``run_dir``: weights, optimizer state, epoch and training clock are restored. A finished run returns its
    summary, or with ``extend`` trains further from its last checkpoint (see ``tfs2s.training.run_dir.open_run``).

    Args:
        cfg: The run's configuration.
        run_dir: Run folder (created; an existing one is resumed).
        make_job: ``(cfg, run_dir) -> TrainingJob``: the task's data and models (called once the folder is open).
        verbose: Keras progress display (``"auto"`` shows progress bars).
        extra_callbacks: More Keras callbacks for ``fit``.
        strategy: ``default`` (one device), ``mirrored`` (all local devices) or ``multi_worker`` (one process per
            machine, cluster from ``TF_CONFIG``; see ``tfs2s.training.distribute``). ``data.batch_size`` stays the
            global batch. With ``multi_worker`` the chief writes ``run_dir`` and worker ``i`` keeps its own
            checkpoints in ``run_dir/workers/i``.
        connect_timeout: ``multi_worker``: seconds to wait for the other workers (and for a collective step).
        extend: Train a finished run further under ``cfg``'s larger ``training.max_minutes`` / ``training.epochs``.

    ``training.precision`` other than ``float32`` builds the models under that Keras mixed-precision policy
    (``tfs2s.training.precision``): they train in 16 bits with float32 variables, and the returned models are
    those 16-bit models; ``tfs2s.tasks.load`` (and so every export) rebuilds the run in float32.

    Returns:
        Summary figures (also written to ``summary.json``).
    """
    _check_strategy(cfg, strategy)
    distribution = make_strategy(strategy, connect_timeout)
    worker, workers = worker_index(distribution)
    if worker:
        run_dir = os.path.join(run_dir, "workers", str(worker))
    finished = open_run(cfg, run_dir, extend)
    if finished is not None:
        return finished
    job = make_job(cfg, run_dir)
    train, batches, t = job.train, job.batches, cfg.training
    if workers > 1:
        train = train.apply(shard_batches(workers, worker, batches))
        # tf.distribute splits each batch among all replicas (data.batch_size is the global batch), so a worker
        # runs one step per piece of its share: an epoch keeps its step count, each step spread over the workers.
        batches = (batches // workers) * workers
    # Bucketing makes the batch count vary a little between epochs, so a full pass is left to the data;
    # only a capped epoch needs a repeated dataset and an explicit step count.
    steps_per_epoch = min(batches, t.steps_per_epoch) if t.steps_per_epoch else None
    if steps_per_epoch:
        train = train.repeat()
    fresh = not os.path.exists(os.path.join(run_dir, BACKUP_DIR))
    with distribution.scope():
        with policy_scope(t.precision):  # layers keep the policy they are created with; the global is restored
            models = job.build()
        job.start(models, fresh)
        model = job.compile(models, steps_per_epoch or batches)
        # Build the optimizer's variables now, so BackupAndRestore can load them into a fresh process.
        model.optimizer.build(model.trainable_variables)
    job.before_fit(model, fresh)
    clock = TrainingClock(t.max_minutes, job.tokens_per_step, os.path.join(run_dir, CLOCK_FILE))
    callbacks = run_callbacks(cfg, run_dir, clock, [*job.callbacks(models, clock), *extra_callbacks])
    if verbose != 0 and not steps_per_epoch:
        callbacks.append(EpochProgbar(batches))  # a bar that knows the epoch's length (Keras': "Unknown")
    started = time.perf_counter()
    _fit(model, train, job, steps_per_epoch, callbacks, verbose, worker, workers)
    wall = time.perf_counter() - started
    if os.path.exists(checkpoint_path(run_dir, "best")):  # keep the best weights in the returned models
        model.load_weights(checkpoint_path(run_dir, "best"))
    summary = {"name": cfg.name, "epochs_run": trained_epochs(os.path.join(run_dir, HISTORY_FILE)),
               "train_minutes": round(clock.seconds / 60.0, 2), "wall_minutes": round(wall / 60.0, 2),
               "train_steps": clock.steps, "train_tokens_per_second": round(clock.tokens_per_second, 1),
               "workers": workers, "parameters": int(model.count_params()),
               **job.summary(models, model, clock)}
    write_summary(run_dir, summary)
    return summary
