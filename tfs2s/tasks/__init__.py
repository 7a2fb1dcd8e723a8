"""The tasks and the four things every run does through them: train, load, export, verify.

``TASKS`` maps ``model.input_encoder`` to its task: ``tokens`` → text to text (translation, dialogue,
summarization), ``image`` → image to text, ``vectors`` → time-series forecasting.
"""

from __future__ import annotations

import os
from typing import Sequence

import keras

from tfs2s.core.config import Config
from tfs2s.core.errors import ExportError, InputError, RunNotFoundError
from tfs2s.export.onnx.convert import INT8_FILES
from tfs2s.export.savedmodel import save_module, verify_export, write_version
from tfs2s.tasks.base import Task
from tfs2s.tasks.image.task import ImageTask
from tfs2s.tasks.series.task import SeriesTask
from tfs2s.tasks.text.task import TextTask
from tfs2s.training.fit import train_run
from tfs2s.training.run_dir import checkpoint_path, read_run_config

TASKS: dict[str, Task] = {task.input_encoder: task for task in (TextTask(), ImageTask(), SeriesTask())}


def task_for(cfg: Config) -> Task:
    """The task of a config (by its ``model.input_encoder``)."""
    return TASKS[cfg.model.input_encoder]


def train(cfg: Config, run_dir: str, *, verbose: int | str = "auto",
          extra_callbacks: Sequence[keras.callbacks.Callback] = (), strategy: str = "default",
          connect_timeout: float = 120.0, extend: bool = False) -> dict:
    """Trains (or resumes, or extends) a run of ``cfg``'s task in ``run_dir``; returns its summary.

    See ``tfs2s.training.fit.train_run`` for the arguments.
    """
    task = task_for(cfg)
    task.check_config(cfg)
    return train_run(cfg, run_dir, task.training_job, verbose=verbose, extra_callbacks=extra_callbacks,
                     strategy=strategy, connect_timeout=connect_timeout, extend=extend)


def load(run_dir: str, weights: str = "best", *, expect: str | None = None, data_dir: str | None = None):
    """The predictor over a run folder (``Translator``, ``Captioner`` or ``Forecaster``).

    Args:
        run_dir: A folder written by ``train``.
        weights: ``best`` or ``last`` checkpoint (or, in a run that averaged checkpoints, ``best_epoch``).
        expect: The ``model.input_encoder`` the caller needs (e.g. ``tokens`` for ``tfs2s translate``).
        data_dir: Read the corpora from here instead of the run's ``data.data_dir``.

    Raises:
        RunNotFoundError: The folder is not a run, or lacks the checkpoint (names what is missing).
        InputError: The run is not of the ``expect``ed kind.
    """
    cfg = read_run_config(run_dir)
    if weights == "best_epoch" and not os.path.exists(checkpoint_path(run_dir, weights)):
        raise RunNotFoundError(f"{run_dir} has no best_epoch checkpoint: only a run trained with "
                               "training.average_checkpoints keeps its best single epoch apart from the average")
    task = task_for(cfg)
    if expect is not None and task.input_encoder != expect:
        raise InputError(f"{run_dir} is {task.description}, not {TASKS[expect].description}; "
                         "`tfs2s export` exports it")
    task.check_config(cfg)
    if data_dir:
        cfg = cfg.replace(**{"data.data_dir": data_dir})
    return task.load(cfg, run_dir, weights)


def export(predictor, export_root: str, name: str | None = None, version: int | None = None,
           overwrite: bool = False, onnx: bool = False, max_beam_width: int = 16,
           quantize: str | None = None) -> str:
    """Writes ``export_root/name/version`` (TF Serving layout, atomically) and returns its path.

    Args:
        predictor: A loaded predictor (``load``).
        export_root: Folder holding exported models (``saved_models``).
        name: Model name (default: the config's ``name``).
        version: Version number; ``None`` takes the next free one.
        overwrite: Replace an existing version.
        onnx: Also write the task's ONNX graphs into ``<version>/onnx/``.
        max_beam_width: Largest beam width a request may ask for (text models).
        quantize: ``"int8"`` (with ``onnx``): also write ``onnx/translate_ids_greedy.int8.onnx`` and
            ``onnx/translate_ids_beam.int8.onnx`` (text models); the metadata's ``onnx_graphs`` lists them.

    Raises:
        ExportError: The version exists and ``overwrite`` is False, the name/version is invalid, or ONNX was
            asked for without the onnx extra.
    """
    task = task_for(predictor.config)
    if quantize and not onnx:
        raise ExportError("quantize writes an int8 ONNX graph: ask for the ONNX graphs too (--onnx)")

    def write(folder: str) -> None:
        module = task.serving_module(predictor, max_beam_width)
        metadata = {"task": task.name, **task.export_metadata(predictor, module)}
        if quantize and "onnx_graphs" in metadata:  # the int8 graphs are written on request only
            metadata["onnx_graphs"] = sorted(metadata["onnx_graphs"] + list(INT8_FILES))
        save_module(folder, module, predictor.config, metadata)
        if onnx:
            task.write_onnx(folder, os.path.join(folder, "onnx"), predictor, quantize=quantize)

    return write_version(export_root, name or predictor.config.name, version, overwrite, write)


def verify(export_dir: str, predictor) -> dict:
    """Reloads an export and checks it against ``predictor`` (see ``Task.export_checks``).

    Raises:
        AssertionError: The export disagrees with the model.
    """
    return verify_export(export_dir, task_for(predictor.config).export_checks(predictor))
