"""The ``Task`` protocol: what one kind of run (text, image, series) supplies to the shared skeleton.

A task owns its data pipeline and models (a ``tfs2s.training.fit.TrainingJob``), its predictor (the in-memory
model behind ``tfs2s translate`` / ``caption`` / ``forecast``), its serving module and export metadata, its ONNX
graphs and the checks that compare a reloaded export with the predictor. Training, the run folder, the SavedModel
writer and the export verifier are the same for every task (``tfs2s.training``, ``tfs2s.export``); a new task is a
``Task`` subclass registered in ``tfs2s.tasks`` and touches neither.
"""

from __future__ import annotations

import abc
import logging
import os
from typing import Iterable, Sequence

from tfs2s.core.config import Config
from tfs2s.core.subwords import VocabularySizeError
from tfs2s.core.tokenizer_registry import learn_tokenizer, load_tokenizer
from tfs2s.core.tokenizers import Tokenizer
from tfs2s.export.savedmodel import Check, ServingModule
from tfs2s.training.fit import TrainingJob

logger = logging.getLogger(__name__)

SOURCE, TARGET = "source", "target"  # tokenizer file prefixes in a run folder


def prepare_tokenizer(cfg: Config, run_dir: str, prefix: str, texts: Iterable[str], vocab_size: int,
                      size_key: str | None = None, shared: bool = False) -> Tokenizer:
    """Loads the run's ``prefix`` tokenizer, or learns it from ``texts`` and saves it into ``run_dir``.

    Args:
        size_key: The config key ``vocab_size`` comes from, named in errors (default: by ``prefix``).
        shared: The tokenizer serves both sides (recorded by subword tokenizers).

    Raises:
        ConfigError: A SentencePiece vocabulary size the training data does not support (names ``size_key``).
    """
    if os.path.exists(os.path.join(run_dir, f"{prefix}_tokenizer.json")):
        return load_tokenizer(run_dir, prefix)
    d = cfg.data
    try:
        tok = learn_tokenizer(d.tokenizer, texts, os.path.join(run_dir, f"{prefix}_vocab.txt"), vocab_size,
                              d.min_frequency, d.lowercase, name=f"{prefix}_tokenizer",
                              subword_model=d.subword_model, seed=d.seed, shared=shared)
    except VocabularySizeError as error:
        raise error.naming(size_key or f"data.{prefix}_vocab_size") from None
    tok.save(run_dir, prefix)
    return tok


def prepare_text_tokenizers(cfg: Config, run_dir: str,
                            pairs: Sequence[tuple[str, str]]) -> tuple[Tokenizer, Tokenizer]:
    """The run's source and target tokenizers, learned from training ``pairs`` (or reloaded).

    With ``data.shared_vocab`` one tokenizer is learned from both sides (as big as the larger of
    ``data.source_vocab_size`` and ``data.target_vocab_size``) and saved under both prefixes.
    """
    d = cfg.data
    if not d.shared_vocab or os.path.exists(os.path.join(run_dir, f"{SOURCE}_tokenizer.json")):
        return (prepare_tokenizer(cfg, run_dir, SOURCE, (p[0] for p in pairs), d.source_vocab_size),
                prepare_tokenizer(cfg, run_dir, TARGET, (p[1] for p in pairs), d.target_vocab_size))
    size, key = max((d.source_vocab_size, "data.source_vocab_size"), (d.target_vocab_size, "data.target_vocab_size"),
                    key=lambda x: x[0])
    texts = [p[0] for p in pairs] + [p[1] for p in pairs]
    source = prepare_tokenizer(cfg, run_dir, SOURCE, texts, size, size_key=key, shared=True)
    source.save(run_dir, TARGET)
    return source, load_tokenizer(run_dir, TARGET)


class Task(abc.ABC):
    """One kind of run. Subclasses are stateless; ``tfs2s.tasks`` holds one instance of each.

    Attributes:
        name: The task's name in export metadata and messages (``translation``, ``image_to_sequence``, ...).
        input_encoder: The ``model.input_encoder`` whose runs this task trains (the registry's key).
        description: What a run of this task is, for messages (``a forecasting run``).
    """

    name: str = ""
    input_encoder: str = ""
    description: str = ""

    @abc.abstractmethod
    def check_config(self, cfg: Config) -> None:
        """Raises ``ConfigError`` where ``cfg`` is not a config of this task."""

    @abc.abstractmethod
    def training_job(self, cfg: Config, run_dir: str) -> TrainingJob:
        """Reads the data and prepares the run folder (vocabularies, statistics) for ``train_run``."""

    @abc.abstractmethod
    def load(self, cfg: Config, run_dir: str, weights: str = "best"):
        """The predictor over a run folder's ``weights`` checkpoint (``best`` or ``last``)."""

    @abc.abstractmethod
    def serving_module(self, predictor, max_beam_width: int = 16) -> ServingModule:
        """The ``tf.Module`` saved as the SavedModel (see ``tfs2s.export.savedmodel.ServingModule``)."""

    @abc.abstractmethod
    def export_metadata(self, predictor, module: ServingModule) -> dict:
        """What ``assets.extra/tfs2s_export.json`` records besides the format, versions and signatures."""

    @abc.abstractmethod
    def write_onnx(self, saved_model_dir: str, output_dir: str, predictor, quantize: str | None = None) -> dict:
        """Writes the task's ONNX graphs into ``output_dir``; returns ``{signature: path}``.

        ``quantize="int8"`` also writes int8 graphs where the task has them (text); others raise ExportError.
        """

    @abc.abstractmethod
    def export_checks(self, predictor) -> list[Check]:
        """Comparisons of a reloaded export with ``predictor`` (run after every export)."""
