"""SavedModel export for TF Serving, the source of truth: atomic version folders, one metadata writer, one verifier.

Layout (what TF Serving watches: numeric version folders)::

    saved_models/<name>/<version>/
      saved_model.pb, variables/, fingerprint.pb
      assets/...                                          vocabularies (SavedModel assets), where the task has them
      assets.extra/config.json                           the run's Config
      assets.extra/tfs2s_export.json                     export metadata (task, signatures, ops needed, versions)
      onnx/*.onnx                                        ONNX graphs (optional; TF Serving ignores this folder)

A version is written into a temporary folder beside its final place and renamed when complete, so a server
polling the model folder never sees half a model. What each task's module serves is documented with its serving
module (``tfs2s.tasks.*.serving``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import shutil
import uuid
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from tfs2s import __version__
from tfs2s.core.config import Config
from tfs2s.core.errors import ExportError, RunNotFoundError

logger = logging.getLogger(__name__)

EXPORT_FORMAT = 1
METADATA_FILE = "tfs2s_export.json"


class ServingModule(tf.Module):
    """Base of every task's SavedModel module: it holds the model's variables and lists its signatures.

    Subclasses create their ``tf.function`` attributes and name them in ``SIGNATURES``; the one named ``serve`` is
    saved as ``serving_default``.

    Args:
        name: The module's name.
        models: The exported ``Seq2SeqModels``.
    """

    SIGNATURES: tuple[str, ...] = ()

    def __init__(self, name: str, models):
        super().__init__(name=name)
        # Track the backing tf.Variables (as keras.export.ExportArchive does), so the SavedModel holds them.
        self.model_variables = [w.value for w in models.teacher_forced.weights]

    def signatures(self) -> dict:
        """Concrete functions by signature name."""
        return {"serving_default" if name == "serve" else name: getattr(self, name).get_concrete_function()
                for name in self.SIGNATURES}


def next_version(model_dir: str) -> int:
    """One more than the largest numeric version folder in ``model_dir`` (1 when there is none)."""
    if not os.path.isdir(model_dir):
        return 1
    versions = [int(n) for n in os.listdir(model_dir) if n.isdigit()]
    return max(versions, default=0) + 1


def save_module(export_dir: str, module: tf.Module, cfg: Config, metadata: dict) -> None:
    """Saves ``module`` with its ``signatures()``, the run's ``config.json`` and the export metadata (plus format,
    the tfs2s/TensorFlow/Keras versions, the export time (UTC) and signature names) into ``export_dir/assets.extra/``."""
    signatures = module.signatures()
    tf.saved_model.save(module, export_dir, signatures=signatures)
    extra = os.path.join(export_dir, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, "config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg.to_dict(), f, indent=2, sort_keys=True)
    metadata = {"format": EXPORT_FORMAT, "tfs2s": __version__,
                "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "tensorflow": tf.__version__, "keras": keras.__version__, "signatures": sorted(signatures), **metadata}
    with open(os.path.join(extra, METADATA_FILE), "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2)


def write_version(export_root: str, name: str, version: int | None, overwrite: bool,
                  write: Callable[[str], None]) -> str:
    """Creates ``export_root/name/version`` atomically: ``write(folder)`` fills a temporary folder, renamed when done.

    Args:
        export_root: Folder holding exported models.
        name: Model name (a folder name).
        version: Version number; ``None`` takes the next free one.
        overwrite: Replace an existing version folder.
        write: Writes the export into the folder it is given.

    Raises:
        ExportError: The version exists and ``overwrite`` is False, or the name/version is invalid.
    """
    if not name or os.sep in name or name.startswith("."):
        raise ExportError(f"invalid model name {name!r}")
    model_dir = os.path.join(export_root, name)
    version = next_version(model_dir) if version is None else version
    if not isinstance(version, int) or version < 1:
        raise ExportError(f"version must be a positive integer, got {version!r}")
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final) and not overwrite:
        raise ExportError(f"{final} already exists; pass --overwrite to replace it or choose another --version")
    os.makedirs(model_dir, exist_ok=True)
    # A dot-prefixed, non-numeric temporary folder: TF Serving ignores it while it is being written.
    tmp = os.path.join(model_dir, f".tmp-{version}-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        if os.path.exists(final):
            old = os.path.join(model_dir, f".old-{version}-{uuid.uuid4().hex[:8]}")
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("exported %s", final)
    return final


def read_metadata(export_dir: str) -> dict:
    """The export's ``assets.extra/tfs2s_export.json``.

    Raises:
        RunNotFoundError: ``export_dir`` is not a tfs2s export.
    """
    path = os.path.join(export_dir, "assets.extra", METADATA_FILE)
    if not os.path.exists(path):
        raise RunNotFoundError(f"{export_dir} is not a tfs2s export ({path} is missing)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@dataclasses.dataclass(frozen=True)
class Check:
    """One comparison of a reloaded export with the in-memory model.

    Attributes:
        signature: The signature to call.
        inputs: Its inputs (numpy arrays, by input name).
        expected: What the in-memory model gives for them (numpy arrays, by output name).
        exact: Outputs that must be equal (token ids); the others must agree within ``atol``.
        atol: Tolerance of the other outputs, after dividing their differences by ``scale``.
        scale: Divides the float differences (e.g. the training standard deviations: normalised units).
        examples: How many inputs the check covers (reported).
    """

    signature: str
    inputs: dict
    expected: dict
    exact: tuple = ()
    atol: float = 1e-4
    scale: object = 1.0
    examples: int = 0


def verify_export(export_dir: str, checks: list[Check]) -> dict:
    """Reloads an export from disk and runs ``checks`` against it.

    Returns:
        ``{signature: {"examples": n, "max_diff": largest scaled difference of the inexact outputs}}``.

    Raises:
        AssertionError: The reloaded export disagrees with the model (names the signature and output).
    """
    loaded = tf.saved_model.load(export_dir)
    report = {}
    for check in checks:
        served = loaded.signatures[check.signature](**{k: tf.constant(v) for k, v in check.inputs.items()})
        worst = 0.0
        for name, expected in check.expected.items():
            got = served[name].numpy()
            if name in check.exact:
                if not np.array_equal(got, expected):
                    raise AssertionError(f"{export_dir}: {check.signature} {name} differ from the Keras model")
                continue
            diff = float(np.max(np.abs(got - expected) / check.scale, initial=0.0))
            if diff > check.atol:
                raise AssertionError(f"{export_dir}: {check.signature} {name} differ by {diff}")
            worst = max(worst, diff)
        report[check.signature] = {"examples": check.examples, "max_diff": worst}
    return report
