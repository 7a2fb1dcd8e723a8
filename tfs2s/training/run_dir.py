"""The run folder: create, resume, extend, check and read it back. One layout for every task.

A run folder holds everything needed to resume or reuse a model::

    run_dir/
      config.json                     the full Config
      *_vocab.txt, *_tokenizer.json   vocabularies (text and image runs); standardizer.json (forecasting)
      checkpoints/best.weights.h5     best validation loss so far (the run's final model; with
                                      training.average_checkpoints: N, the average of the last N epochs)
      checkpoints/last.weights.h5     end of the last epoch
      checkpoints/best_epoch.weights.h5, epoch_<n>.weights.h5, average.json
                                      training.average_checkpoints only: the epoch of best validation loss,
                                      the last N epochs' weights, what best.weights.h5 averages
      backup/                         BackupAndRestore state (removed when training ends normally)
      clock.json                      training time and steps so far
      logs/                           TensorBoard
      history.jsonl                   one JSON line per epoch / BLEU evaluation
      summary.json                    figures of the finished run
      summary.previous.json           the summary before the last ``extend`` (see ``open_run``)

Starting training again on the same folder resumes an interrupted run from ``backup/``; with ``extend=True``
(``tfs2s train --extend``) a finished run trains on from ``checkpoints/last.weights.h5`` (weights and optimizer
state) under a larger ``training.max_minutes`` or ``training.epochs``. Either way the configuration may change
only in ``RESUMABLE_FIELDS``.
"""

from __future__ import annotations

import json
import logging
import os

import keras

from tfs2s.core.config import Config, load_config, save_config
from tfs2s.core.errors import ConfigError, RunNotFoundError
from tfs2s.core.keras_compat import write_backup

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
HISTORY_FILE = "history.jsonl"
CLOCK_FILE = "clock.json"
BACKUP_DIR = "backup"
CHECKPOINT_DIR = "checkpoints"

# Config fields a resumed or extended run may change: how long it trains, how it is watched, where its data lives,
# how many epochs its final model averages (``tfs2s average`` rewrites it) and how it decodes (the whole
# ``decoding`` section). Any other change would not match the vocabularies, weights and optimizer state in the run
# folder.
RESUMABLE_FIELDS = ("name", "data.data_dir", "training.epochs", "training.max_minutes",
                    "training.early_stopping_patience", "training.bleu_every_minutes", "training.bleu_sentences",
                    "training.average_checkpoints", "decoding")


def checkpoint_path(run_dir: str, weights: str = "best") -> str:
    """``run_dir/checkpoints/<weights>.weights.h5`` (``best``, ``last`` or, averaging, ``best_epoch``)."""
    return os.path.join(run_dir, CHECKPOINT_DIR, f"{weights}.weights.h5")


def append_jsonl(path: str, record: dict) -> None:
    """Appends one JSON line to ``path``."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def epoch_records(history_path: str) -> list[dict]:
    """The ``epoch`` lines of a run's ``history.jsonl`` (none before the first epoch ends)."""
    if not os.path.exists(history_path):
        return []
    with open(history_path, encoding="utf-8") as f:
        return [r for r in map(json.loads, f) if r.get("event") == "epoch"]


def logged_val_losses(history_path: str) -> list[float]:
    """Validation losses of the epochs logged so far, in order."""
    return [r["val_loss"] for r in epoch_records(history_path) if "val_loss" in r]


def best_val_loss(history_path: str) -> float | None:
    """Best validation loss logged by earlier epochs of this run (so a resumed run keeps its best checkpoint)."""
    return min(logged_val_losses(history_path), default=None)


def trained_epochs(history_path: str) -> int:
    """Epochs a run folder has logged (the last one may have been cut short by ``training.max_minutes``)."""
    return max((r["epoch"] for r in epoch_records(history_path)), default=0)


def read_clock(path: str) -> tuple[float, int]:
    """``(training seconds, training steps)`` saved in a run's ``clock.json`` (zeros before the first save)."""
    if not os.path.exists(path):
        return 0.0, 0
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    return saved["train_seconds"], saved["train_steps"]


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


def prepare_extension(cfg: Config, run_dir: str) -> None:
    """Turns a finished run into an interrupted one that resumes from its last checkpoint: the checkpoint (weights
    and optimizer state) and the epoch count become the backup that training restores.

    Raises:
        ConfigError: ``cfg``'s budget allows no more training (the message suggests a larger one).
        RunNotFoundError: The last checkpoint is missing.
    """
    t = cfg.training
    epochs = trained_epochs(os.path.join(run_dir, HISTORY_FILE))
    minutes = read_clock(os.path.join(run_dir, CLOCK_FILE))[0] / 60.0
    if epochs >= t.epochs or (t.max_minutes and minutes >= t.max_minutes):
        hint = (f"training.epochs={2 * epochs}" if epochs >= t.epochs
                else f"training.max_minutes={max(2 * minutes, 1):.0f}")
        raise ConfigError(f"nothing to extend: {run_dir} has trained {epochs} epochs and {minutes:.1f} minutes, "
                          f"and training.epochs={t.epochs}, training.max_minutes={t.max_minutes:g} allow no more; "
                          f"raise them, e.g. --set {hint}")
    last = checkpoint_path(run_dir, "last")
    if not os.path.exists(last):
        raise RunNotFoundError(f"cannot extend {run_dir}: its last checkpoint {last} is missing")
    write_backup(os.path.join(run_dir, BACKUP_DIR), last, epochs)
    os.replace(os.path.join(run_dir, SUMMARY_FILE), os.path.join(run_dir, "summary.previous.json"))
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
    summary_path = os.path.join(run_dir, SUMMARY_FILE)
    config_path = os.path.join(run_dir, CONFIG_FILE)
    if os.path.exists(config_path):
        check_resumable(load_config(config_path), cfg, run_dir)
    if os.path.exists(summary_path):
        if not extend:
            # Training it again from scratch would overwrite its checkpoints.
            logger.info("%s already holds a finished run; returning its summary (train it further with --extend "
                        "and a larger training.max_minutes or training.epochs, or use a new --run-dir)", run_dir)
            with open(summary_path, encoding="utf-8") as f:
                return json.load(f)
        prepare_extension(cfg, run_dir)
    elif extend and not os.path.exists(config_path):
        raise ConfigError(f"nothing to extend: {run_dir} holds no training run")
    os.makedirs(run_dir, exist_ok=True)
    save_config(cfg, run_dir)
    keras.utils.set_random_seed(cfg.data.seed)
    return None


def write_summary(run_dir: str, summary: dict) -> None:
    """Writes ``summary.json``: the run is finished."""
    with open(os.path.join(run_dir, SUMMARY_FILE), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)


def read_run_config(run_dir: str) -> Config:
    """The ``config.json`` of a run folder.

    Raises:
        RunNotFoundError: The folder is not a tfs2s run folder (names the missing file).
    """
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise RunNotFoundError(f"{run_dir} is not a tfs2s run folder: {path} is missing")
    return load_config(path)


def require_files(run_dir: str, files: dict[str, str], kind: str = "trained") -> None:
    """Checks that a run folder holds ``files`` (``{what: path}``) before a model is read from it.

    Raises:
        RunNotFoundError: Names the first missing file and what it is.
    """
    for what, path in files.items():
        if not os.path.exists(path):
            raise RunNotFoundError(f"{run_dir} is not a {kind} run: its {what} ({path}) is missing; train first")
