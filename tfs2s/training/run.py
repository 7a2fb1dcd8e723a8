"""Training: a run folder, ``model.fit`` with the usual callbacks, resumption, and time-boxed validation BLEU.

A run folder holds everything needed to resume or reuse a model::

    run_dir/
      config.json                     the full Config
      source_vocab.txt, source_tokenizer.json, target_vocab.txt, target_tokenizer.json
      checkpoints/best.weights.h5     best validation loss so far
      checkpoints/last.weights.h5     end of the last epoch
      backup/                         BackupAndRestore state (removed when training ends normally)
      logs/                           TensorBoard
      history.jsonl                   one JSON line per epoch / BLEU evaluation
      summary.json                    figures of the finished run
      summary.previous.json           the summary before the last ``extend`` (see ``open_run``)

Starting ``train`` again on the same folder resumes an interrupted run from ``backup/``; with ``extend=True``
(``tfs2s train --extend``) a finished run trains on from ``checkpoints/last.weights.h5`` (weights and optimizer
state) under a larger ``training.max_minutes`` or ``training.epochs``. Either way the configuration may change
only in ``RESUMABLE_FIELDS``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfs2s.data import corpora
from tfs2s.core import text_data as data
from tfs2s.core.config import Config, ConfigError, TrainingConfig, load_config, save_config
from tfs2s.core.losses import MaskedCrossEntropy
from tfs2s.core.metrics import Perplexity, TokenAccuracy, bleu_scores
from tfs2s.core.models import Seq2SeqModels, build_models, set_unigram_output_bias
from tfs2s.core.optimizers import LazyAdam
from tfs2s.core.tokenizers import Tokenizer, learn_tokenizer, load_tokenizer

logger = logging.getLogger(__name__)

SOURCE, TARGET = "source", "target"

# Config fields a resumed or extended run may change: how long it trains, how it is watched, where its data lives
# and how it decodes (the whole ``decoding`` section). Any other change would not match the vocabularies, weights
# and optimizer state in the run folder.
RESUMABLE_FIELDS = ("name", "data.data_dir", "training.epochs", "training.max_minutes",
                    "training.early_stopping_patience", "training.bleu_every_minutes", "training.bleu_sentences",
                    "decoding")


def _log_jsonl(path: str, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def prepare_tokenizers(cfg: Config, run_dir: str, train_pairs: Sequence[tuple[str, str]]) -> tuple[Tokenizer, Tokenizer]:
    """Loads the run's tokenizers, or learns them from the training pairs and saves them into ``run_dir``."""
    if os.path.exists(os.path.join(run_dir, f"{TARGET}_tokenizer.json")):
        return load_tokenizer(run_dir, SOURCE), load_tokenizer(run_dir, TARGET)
    d = cfg.data
    tokenizers = []
    for prefix, index, size in ((SOURCE, 0, d.source_vocab_size), (TARGET, 1, d.target_vocab_size)):
        tok = learn_tokenizer(d.tokenizer, (p[index] for p in train_pairs), os.path.join(run_dir, f"{prefix}_vocab.txt"),
                              size, d.min_frequency, d.lowercase, name=f"{prefix}_tokenizer")
        tok.save(run_dir, prefix)
        tokenizers.append(tok)
    logger.info("vocabularies: source %d, target %d", tokenizers[0].vocab_size, tokenizers[1].vocab_size)
    return tokenizers[0], tokenizers[1]


def make_optimizer(cfg: Config, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam (or lazy Adam) with the configured learning-rate schedule and gradient clipping."""
    t = cfg.training
    lr = t.learning_rate
    if t.lr_schedule == "cosine":
        total = max(1, steps_per_epoch * t.epochs)
        lr = keras.optimizers.schedules.CosineDecay(0.0, decay_steps=max(1, total - t.warmup_steps),
                                                    warmup_target=t.learning_rate,
                                                    warmup_steps=min(t.warmup_steps, total))
    adam = LazyAdam if t.optimizer == "lazy_adam" else keras.optimizers.Adam
    return adam(learning_rate=lr, clipnorm=t.clipnorm or None)


def sampled_softmax_samples(cfg: Config, target_vocab_size: int) -> int:
    """Words sampled per training step (0: full softmax), checked against the learned target vocabulary.

    Raises:
        ConfigError: More samples than the vocabulary has words (it can be smaller than ``data.target_vocab_size``).
    """
    t = cfg.training
    if t.loss != "sampled_softmax":
        return 0
    if t.sampled_softmax_samples >= target_vocab_size:
        raise ConfigError(f"training.sampled_softmax_samples ({t.sampled_softmax_samples}) must be smaller than the "
                          f"target vocabulary, which has {target_vocab_size} words")
    return t.sampled_softmax_samples


def build_run_models(cfg: Config, source_vocab_size: int, target_vocab_size: int) -> Seq2SeqModels:
    """``build_models`` for a run's config: its model section and its training loss."""
    return build_models(cfg.model, source_vocab_size, target_vocab_size,
                        sampled_softmax=sampled_softmax_samples(cfg, target_vocab_size))


def compile_model(models: Seq2SeqModels, cfg: Config, steps_per_epoch: int) -> keras.Model:
    """Compiles the training model with the masked loss, perplexity and token accuracy."""
    model = models.training
    model.compile(optimizer=make_optimizer(cfg, steps_per_epoch),
                  loss=MaskedCrossEntropy(label_smoothing=cfg.training.label_smoothing),
                  metrics=[Perplexity(), TokenAccuracy()], jit_compile=cfg.training.jit_compile)
    return model


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
        if os.path.exists(state_path):
            with open(state_path, encoding="utf-8") as f:
                saved = json.load(f)
            self.elapsed, self.steps = saved["train_seconds"], saved["train_steps"]

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


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` that also backs up at every epoch end and saves the training clock with each backup.

    Keras' callback with an integer ``save_freq`` saves only inside epochs, so a run killed early in epoch
    ``n`` would redo epoch ``n - 1`` entirely; saving at the boundary makes it resume at epoch ``n``. It also
    records the epoch being trained from that epoch's start: Keras' own counter starts at 0 in every process, so
    a resumed run killed again before its first epoch end would restart at epoch 0.
    """

    def __init__(self, backup_dir: str, save_freq: int, clock: TrainingClock):
        super().__init__(backup_dir, save_freq=save_freq)
        self.clock = clock

    def _save_model(self):
        super()._save_model()
        self.clock.save()

    @staticmethod
    def seed(backup_dir: str, weights_path: str, epochs_done: int) -> None:
        """Writes ``weights_path`` (weights and optimizer state) into ``backup_dir`` as the backup taken after
        ``epochs_done`` epochs, in ``BackupAndRestore``'s own file names, for a run to resume from."""
        keras_backup = keras.callbacks.BackupAndRestore(backup_dir)
        os.makedirs(backup_dir, exist_ok=True)
        shutil.copyfile(weights_path, keras_backup._weights_path)
        with open(keras_backup._training_metadata_path, "w", encoding="utf-8") as f:
            json.dump({"epoch": epochs_done, "batch": 0}, f)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self._batches_seen_since_last_saving = 0
        self._save_model()


class BleuEvaluator(keras.callbacks.Callback):
    """Greedy-decodes validation sentences and logs BLEU every ``every_minutes`` of training time.

    With ``every_minutes`` 0 it evaluates at the end of each epoch only.
    """

    def __init__(self, translator, pairs: Sequence[tuple[str, str]], clock: TrainingClock, every_minutes: float,
                 history_path: str):
        super().__init__()
        self.translator = translator
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
        hypotheses = self.translator.translate([s for s, _ in self.pairs], strategy="greedy")
        scores = bleu_scores(hypotheses, [t for _, t in self.pairs])
        record = {"event": "bleu", "train_minutes": round(self.clock.seconds / 60.0, 2), "epoch": epoch,
                  "greedy_bleu": scores["bleu"], "greedy_bleu_lowercase": scores["bleu_lowercase"],
                  "chrf": scores["chrf"], "sentences": len(self.pairs)}
        _log_jsonl(self.history_path, record)
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
        _log_jsonl(self.path, record)


def _epoch_records(history_path: str) -> list[dict]:
    """The ``epoch`` lines of a run's ``history.jsonl`` (none before the first epoch ends)."""
    if not os.path.exists(history_path):
        return []
    with open(history_path, encoding="utf-8") as f:
        return [r for r in map(json.loads, f) if r.get("event") == "epoch"]


def _logged_val_losses(history_path: str) -> list[float]:
    """Validation losses of the epochs logged so far, in order."""
    return [r["val_loss"] for r in _epoch_records(history_path) if "val_loss" in r]


def _best_val_loss(history_path: str) -> float | None:
    """Best validation loss logged by earlier epochs of this run (so a resumed run keeps its best checkpoint)."""
    return min(_logged_val_losses(history_path), default=None)


def check_resumable(saved: Config, cfg: Config, run_dir: str) -> None:
    """Refuses to go on with ``run_dir`` (trained with ``saved``) under ``cfg`` if they differ outside
    ``RESUMABLE_FIELDS``.

    Raises:
        ConfigError: Names every changed field with both values.
    """
    old, new = saved.to_dotted(), cfg.to_dotted()
    changed = [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in sorted(old.keys() | new.keys())
               if old.get(key) != new.get(key) and key not in RESUMABLE_FIELDS
               and key.split(".")[0] not in RESUMABLE_FIELDS]
    if changed:
        raise ConfigError(f"{run_dir} was trained with another configuration ({'; '.join(changed)}); go on with "
                          f"its own (`tfs2s train --run-dir {run_dir}` without --config reads its config.json) or "
                          "train in a new --run-dir")


def trained_epochs(history_path: str) -> int:
    """Epochs a run folder has logged (the last one may have been cut short by ``training.max_minutes``)."""
    return max((r["epoch"] for r in _epoch_records(history_path)), default=0)


def _prepare_extension(cfg: Config, run_dir: str) -> None:
    """Turns a finished run into an interrupted one that resumes from its last checkpoint: the checkpoint (weights
    and optimizer state) and the epoch count become the backup that ``ResumableBackup`` restores."""
    t = cfg.training
    epochs = trained_epochs(os.path.join(run_dir, "history.jsonl"))
    minutes = TrainingClock(t.max_minutes, 0.0, os.path.join(run_dir, "clock.json")).seconds / 60.0
    if epochs >= t.epochs or (t.max_minutes and minutes >= t.max_minutes):
        hint = (f"training.epochs={2 * epochs}" if epochs >= t.epochs
                else f"training.max_minutes={max(2 * minutes, 1):.0f}")
        raise ConfigError(f"nothing to extend: {run_dir} has trained {epochs} epochs and {minutes:.1f} minutes, "
                          f"and training.epochs={t.epochs}, training.max_minutes={t.max_minutes:g} allow no more; "
                          f"raise them, e.g. --set {hint}")
    last = os.path.join(run_dir, "checkpoints", "last.weights.h5")
    if not os.path.exists(last):
        raise FileNotFoundError(f"cannot extend {run_dir}: its last checkpoint {last} is missing")
    ResumableBackup.seed(os.path.join(run_dir, "backup"), last, epochs)
    os.replace(os.path.join(run_dir, "summary.json"), os.path.join(run_dir, "summary.previous.json"))
    logger.info("extending %s from epoch %d (%.1f training minutes) to training.epochs=%d, training.max_minutes=%g",
                run_dir, epochs, minutes, t.epochs, t.max_minutes)


def open_run(cfg: Config, run_dir: str, extend: bool = False) -> dict | None:
    """Starts, resumes or extends a run folder; returns the summary of a finished run (which is not trained
    again unless ``extend``), else None after creating the folder, writing ``config.json`` and seeding Keras with
    ``data.seed``.

    Args:
        cfg: The configuration to train under; for an existing folder it may differ from the saved one only in
            ``RESUMABLE_FIELDS``.
        run_dir: The run folder.
        extend: Train a finished run further, from its last checkpoint, up to ``cfg``'s larger
            ``training.max_minutes`` / ``training.epochs`` (its summary moves to ``summary.previous.json``).

    Raises:
        ConfigError: ``cfg`` changes more than ``RESUMABLE_FIELDS``, or ``extend`` without a larger budget.
    """
    summary_path = os.path.join(run_dir, "summary.json")
    config_path = os.path.join(run_dir, "config.json")
    if os.path.exists(config_path):
        check_resumable(load_config(config_path), cfg, run_dir)
    if os.path.exists(summary_path):
        if not extend:
            # Training it again from scratch would overwrite its checkpoints.
            logger.info("%s already holds a finished run; returning its summary (train it further with --extend "
                        "and a larger training.max_minutes or training.epochs, or use a new --run-dir)", run_dir)
            with open(summary_path, encoding="utf-8") as f:
                return json.load(f)
        _prepare_extension(cfg, run_dir)
    elif extend and not os.path.exists(config_path):
        raise ConfigError(f"nothing to extend: {run_dir} holds no training run")
    os.makedirs(run_dir, exist_ok=True)
    save_config(cfg, run_dir)
    keras.utils.set_random_seed(cfg.data.seed)
    return None


def run_callbacks(cfg: Config, run_dir: str, clock: TrainingClock,
                  extra: Sequence[keras.callbacks.Callback] = ()) -> list[keras.callbacks.Callback]:
    """The callbacks of every tfs2s run: clock, resumable backup, best/last checkpoints, TensorBoard, the epoch
    log, and the configured learning-rate plateau and early stopping (``extra`` runs before the epoch log).

    ``run_dir/checkpoints/best.weights.h5`` keeps the weights of the lowest validation loss, also across an
    interrupted and resumed run (the best loss so far is read back from ``history.jsonl``).
    """
    t = cfg.training
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    os.makedirs(ckpt_dir, exist_ok=True)
    history_path = os.path.join(run_dir, "history.jsonl")
    callbacks = [
        clock,
        ResumableBackup(os.path.join(run_dir, "backup"), save_freq=200, clock=clock),
        keras.callbacks.ModelCheckpoint(os.path.join(ckpt_dir, "best.weights.h5"), monitor="val_loss",
                                        save_best_only=True, save_weights_only=True,
                                        initial_value_threshold=_best_val_loss(history_path)),
        keras.callbacks.ModelCheckpoint(os.path.join(ckpt_dir, "last.weights.h5"), save_weights_only=True),
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
        if self.monitor_op is None:  # Keras sets it on the first epoch end; the replay needs it now
            self._set_monitor_op()
        for loss in _logged_val_losses(self.history_path):
            self._replay(loss)

    def _improves(self, loss: float) -> bool:
        return bool(self._is_improvement(loss, self.best))  # Keras' own test (mode, min_delta)


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


def count_target_tokens(dataset: tf.data.Dataset, vocab_size: int) -> tuple[int, int, np.ndarray]:
    """(target tokens, batches, ``[vocab_size]`` count of each target id) in one pass over a ``(features,
    targets, sample_weight)`` dataset; padding (weight 0) is not counted."""
    tokens, batches = 0, 0
    counts = np.zeros(vocab_size, np.int64)
    for _, targets, weight in dataset:
        ids = targets.numpy()[weight.numpy() > 0]
        counts += np.bincount(ids.ravel(), minlength=vocab_size)[:vocab_size]
        tokens += ids.size
        batches += 1
    return tokens, batches, counts


def train(cfg: Config, run_dir: str, *, verbose: int | str = "auto",
          extra_callbacks: Sequence[keras.callbacks.Callback] = (), strategy: str = "default",
          connect_timeout: float = 120.0, extend: bool = False) -> dict:
    """Trains (or resumes) a model in ``run_dir`` and returns the run summary.

    A run killed part-way (Ctrl-C, a lost machine) continues from its last backup when started again with the
    same ``run_dir``: weights, optimizer state, epoch and training clock are restored. A finished run trains
    further with ``extend`` (see ``open_run``).

    Args:
        cfg: The run's configuration.
        run_dir: Run folder (created; an existing one is resumed).
        verbose: Keras progress display (``"auto"`` shows progress bars).
        extra_callbacks: More Keras callbacks for ``fit``.
        strategy: ``default`` (one device), ``mirrored`` (all local devices) or ``multi_worker`` (one process per
            machine, cluster from ``TF_CONFIG``; see ``tfs2s.distribute``). ``data.batch_size`` stays the global
            batch: each step splits it among the replicas. With ``multi_worker`` the chief writes ``run_dir``
            and worker ``i`` keeps its own checkpoints in ``run_dir/workers/i``.
        connect_timeout: ``multi_worker``: seconds to wait for the other workers (and for a collective step)
            before failing.
        extend: Train a finished run further under ``cfg``'s larger ``training.max_minutes`` /
            ``training.epochs``, from its last checkpoint.

    Returns:
        Summary figures (also written to ``summary.json``).
    """
    from tfs2s.training.distribute import make_strategy, worker_index
    from tfs2s.tasks.text.predictor import Translator

    if strategy == "multi_worker" and cfg.training.max_minutes:
        # Each worker would stop on its own clock, at different steps, and the others would wait forever.
        raise ConfigError("training.max_minutes cannot bound multi_worker training (workers must stop at the same "
                          "step); bound it with training.epochs or training.steps_per_epoch")
    distribution = make_strategy(strategy, connect_timeout)
    worker, workers = worker_index(distribution)
    if worker:
        run_dir = os.path.join(run_dir, "workers", str(worker))
    summary_path = os.path.join(run_dir, "summary.json")
    finished = open_run(cfg, run_dir, extend)
    if finished is not None:
        return finished
    d, t = cfg.data, cfg.training
    train_pairs = corpora.load_split(d, "train", d.limit)
    val_pairs = corpora.load_split(d, "validation")
    logger.info("%d training pairs, %d validation pairs", len(train_pairs), len(val_pairs))
    source_tok, target_tok = prepare_tokenizers(cfg, run_dir, train_pairs)

    common = dict(batch_size=d.batch_size, max_source_length=d.max_source_length,
                  max_target_length=d.max_target_length, reverse_source=d.reverse_source)
    train_ds = data.make_dataset(train_pairs, source_tok, target_tok, bucket_width=d.bucket_width, training=True,
                                 shuffle_buffer=d.shuffle_buffer, seed=d.seed, **common)
    val_ds = data.make_dataset(val_pairs, source_tok, target_tok, **common).apply(data.no_auto_shard())
    tokens, batches, target_counts = count_target_tokens(train_ds, target_tok.vocab_size)
    tokens_per_step = tokens / max(batches, 1)
    if workers > 1:
        train_ds = train_ds.apply(data.shard_batches(workers, worker, batches))
        # tf.distribute splits each batch among all replicas (data.batch_size is the global batch), so a worker
        # runs one step per piece of its share: an epoch keeps its step count, each step spread over the workers.
        batches = (batches // workers) * workers
    # Bucketing makes the batch count vary a little between epochs, so a full pass is left to the data;
    # only a capped epoch needs a repeated dataset and an explicit step count.
    steps_per_epoch = min(batches, t.steps_per_epoch) if t.steps_per_epoch else None
    if steps_per_epoch:
        train_ds = train_ds.repeat()

    with distribution.scope():
        models = build_run_models(cfg, source_tok.vocab_size, target_tok.vocab_size)
        if t.output_bias_init == "unigram":
            set_unigram_output_bias(models, target_counts)  # a resumed run's backup overwrites it
        model = compile_model(models, cfg, steps_per_epoch or batches)
        # Build the optimizer's variables now, so BackupAndRestore can load them into a fresh process.
        model.optimizer.build(model.trainable_variables)

    ckpt_dir = os.path.join(run_dir, "checkpoints")
    history_path = os.path.join(run_dir, "history.jsonl")
    clock = TrainingClock(t.max_minutes, tokens_per_step, os.path.join(run_dir, "clock.json"))
    translator = Translator(models, source_tok, target_tok, cfg)
    bleu_pairs = val_pairs[: t.bleu_sentences] if t.bleu_sentences else val_pairs
    evaluator = BleuEvaluator(translator, bleu_pairs, clock, t.bleu_every_minutes, history_path)
    callbacks = run_callbacks(cfg, run_dir, clock, [evaluator, *extra_callbacks])

    started = time.perf_counter()
    try:
        model.fit(train_ds, validation_data=val_ds, epochs=t.epochs, steps_per_epoch=steps_per_epoch,
                  callbacks=callbacks, verbose=verbose)
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError) as err:
        if workers == 1:
            raise
        from tfs2s.training.distribute import DistributeError

        raise DistributeError(f"worker {worker}: another worker stopped answering during training "
                              f"({type(err).__name__}); start all workers again with the same command to resume "
                              "from the last backup") from None
    wall = time.perf_counter() - started

    # Keep the best weights (by validation loss) in the returned models.
    best = os.path.join(ckpt_dir, "best.weights.h5")
    if os.path.exists(best):
        model.load_weights(best)
    if t.bleu_every_minutes and (not evaluator.results or evaluator.results[-1]["train_minutes"] < clock.seconds / 60 - 0.05):
        evaluator.evaluate(None)  # a final point at the end of training
    val_metrics = model.evaluate(val_ds, verbose=0, return_dict=True)
    summary = {
        "name": cfg.name, "epochs_run": trained_epochs(history_path),
        "train_minutes": round(clock.seconds / 60.0, 2), "wall_minutes": round(wall / 60.0, 2),
        "train_steps": clock.steps, "train_tokens_per_second": round(clock.tokens_per_second, 1), "workers": workers,
        "val_loss": round(float(val_metrics["loss"]), 4), "val_perplexity": round(float(val_metrics["perplexity"]), 3),
        "val_bleu_curve": evaluator.results, "source_vocab_size": source_tok.vocab_size,
        "target_vocab_size": target_tok.vocab_size, "parameters": int(model.count_params()),
    }
    with open(summary_path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    return summary


def load_run(run_dir: str, weights: str = "best"):
    """Loads a trained run: ``(config, models, source_tokenizer, target_tokenizer)``.

    Args:
        run_dir: A folder written by ``train``.
        weights: ``best`` or ``last`` checkpoint.

    Raises:
        FileNotFoundError: The folder is not a finished or running training run (names what is missing).
    """
    config_path = os.path.join(run_dir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{run_dir} is not a tfs2s run folder: {config_path} is missing")
    cfg = load_config(config_path)
    if cfg.model.input_encoder != "tokens":
        kind = {"image": "an image-to-text run (tfs2s.captioning.load_captioner, pipelines/caption.py)",
                "vectors": "a forecasting run (tfs2s.forecasting.load_forecaster, pipelines/forecast.py)"}
        raise ValueError(f"{run_dir} is {kind[cfg.model.input_encoder]}, not a text run; `tfs2s export` "
                         "exports it")
    source_tok, target_tok = load_tokenizer(run_dir, SOURCE), load_tokenizer(run_dir, TARGET)
    models = build_run_models(cfg, source_tok.vocab_size, target_tok.vocab_size)
    path = os.path.join(run_dir, "checkpoints", f"{weights}.weights.h5")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no {weights} checkpoint in {run_dir} (expected {path}); train first")
    models.training.load_weights(path)
    return cfg, models, source_tok, target_tok
