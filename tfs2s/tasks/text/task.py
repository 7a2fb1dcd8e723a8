"""Text to text (translation, dialogue, summarization): the training job, loading, export and its checks."""

from __future__ import annotations

import logging
import os
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.core import text_data as data
from tfs2s.core.config import Config
from tfs2s.core.decoding import ALIGNMENT
from tfs2s.core.errors import ConfigError
from tfs2s.core.models import Seq2SeqModels, build_models, set_unigram_output_bias
from tfs2s.core.tokenizer_registry import load_tokenizer
from tfs2s.data import corpora
from tfs2s.export.onnx.convert import export_onnx, onnx_graphs
from tfs2s.export.savedmodel import Check
from tfs2s.export.tokenization import describe as describe_tokenization
from tfs2s.tasks.base import SOURCE, TARGET, Task, prepare_text_tokenizers
from tfs2s.tasks.text.predictor import Translator
from tfs2s.tasks.text.serving import TextServingModule
from tfs2s.training.callbacks import BleuEvaluator, TrainingClock
from tfs2s.training.fit import TrainingJob
from tfs2s.training.run_dir import HISTORY_FILE, checkpoint_path, require_files

logger = logging.getLogger(__name__)

# Tokenizers whose in-graph ops are tensorflow-text's (a SavedModel of them loads after `import tensorflow_text`).
TEXT_OP_TOKENIZERS = {"wordpiece", "sentencepiece"}

# Sentences an export is checked on after it is written (reloaded from disk vs the in-memory model).
SAMPLE_CHECK = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "", "Eine Frau singt auf einer Bühne."]


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
    """``build_models`` for a text run's config: its model section and its training loss."""
    return build_models(cfg.model, source_vocab_size, target_vocab_size,
                        sampled_softmax=sampled_softmax_samples(cfg, target_vocab_size))


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


def tokenizer_assets(tokenizer) -> dict:
    """How a client without TensorFlow tokenizes like ``tokenizer``: its kind and files under ``assets/``."""
    files = {"vocab": os.path.basename(tokenizer.vocab_path)}
    if getattr(tokenizer, "model_path", None):  # SentencePiece: the model file itself
        files["model"] = os.path.basename(tokenizer.model_path)
    return {"kind": tokenizer.kind, "lowercase": tokenizer.lowercase, "rules": getattr(tokenizer, "rules", None),
            "assets": files}


class TextJob(TrainingJob):
    """Reads the corpus splits, learns (or reloads) the vocabularies and builds the bucketed datasets."""

    def __init__(self, cfg: Config, run_dir: str):
        super().__init__(cfg, run_dir)
        d = cfg.data
        train_pairs = corpora.load_split(d, "train", d.limit)
        self.val_pairs = corpora.load_split(d, "validation")
        logger.info("%d training pairs, %d validation pairs", len(train_pairs), len(self.val_pairs))
        self.source_tok, self.target_tok = prepare_text_tokenizers(cfg, run_dir, train_pairs)
        logger.info("vocabularies: source %d, target %d", self.source_tok.vocab_size, self.target_tok.vocab_size)
        # Copy attention's targets point a source word the target vocabulary lacks at its source position.
        common = dict(batch_size=d.batch_size, copy=cfg.model.copy, **data.source_target_options(d))
        self.train = data.make_dataset(train_pairs, self.source_tok, self.target_tok, bucket_width=d.bucket_width,
                                       batch_tokens=d.batch_tokens, training=True, shuffle_buffer=d.shuffle_buffer,
                                       seed=d.seed, **common)
        self.validation = data.make_dataset(self.val_pairs, self.source_tok, self.target_tok,
                                            **common).apply(data.no_auto_shard())
        tokens, self.batches, self.target_counts = count_target_tokens(self.train, self.target_tok.vocab_size)
        self.tokens_per_step = tokens / max(self.batches, 1)
        self.evaluator: BleuEvaluator | None = None

    def build(self) -> Seq2SeqModels:
        return build_run_models(self.cfg, self.source_tok.vocab_size, self.target_tok.vocab_size)

    def start(self, models: Seq2SeqModels, fresh: bool) -> None:
        if self.cfg.training.output_bias_init == "unigram":
            set_unigram_output_bias(models, self.target_counts)  # a resumed run's backup overwrites it

    def callbacks(self, models: Seq2SeqModels, clock: TrainingClock) -> list[keras.callbacks.Callback]:
        t = self.cfg.training
        translator = Translator(models, self.source_tok, self.target_tok, self.cfg)
        pairs = self.val_pairs[: t.bleu_sentences] if t.bleu_sentences else self.val_pairs
        self.evaluator = BleuEvaluator(lambda texts: translator.translate(texts, strategy="greedy"), pairs, clock,
                                       t.bleu_every_minutes, os.path.join(self.run_dir, HISTORY_FILE))
        return [self.evaluator]

    def summary(self, models: Seq2SeqModels, model: keras.Model, clock: TrainingClock) -> dict:
        results = self.evaluator.results
        if self.cfg.training.bleu_every_minutes and (
                not results or results[-1]["train_minutes"] < clock.seconds / 60 - 0.05):
            self.evaluator.evaluate(None)  # a final point at the end of training
        val = model.evaluate(self.validation, verbose=0, return_dict=True)
        return {"val_loss": round(float(val["loss"]), 4), "val_perplexity": round(float(val["perplexity"]), 3),
                "val_bleu_curve": results, "source_vocab_size": self.source_tok.vocab_size,
                "target_vocab_size": self.target_tok.vocab_size}


class TextTask(Task):
    """Token sources to token targets: translation, the conversational model, summarization."""

    name = "text_to_text"
    input_encoder = "tokens"
    description = "a text run"

    def check_config(self, cfg: Config) -> None:
        if cfg.model.input_encoder != self.input_encoder:
            raise ConfigError(f"a text run needs model.input_encoder=tokens, got {cfg.model.input_encoder!r}")

    def training_job(self, cfg: Config, run_dir: str) -> TextJob:
        return TextJob(cfg, run_dir)

    def load(self, cfg: Config, run_dir: str, weights: str = "best") -> Translator:
        path = checkpoint_path(run_dir, weights)
        require_files(run_dir, {"target tokenizer": os.path.join(run_dir, f"{TARGET}_tokenizer.json"),
                                f"{weights} checkpoint": path})
        source_tok, target_tok = load_tokenizer(run_dir, SOURCE), load_tokenizer(run_dir, TARGET)
        models = build_run_models(cfg, source_tok.vocab_size, target_tok.vocab_size)
        models.training.load_weights(path)
        return Translator(models, source_tok, target_tok, cfg)

    def serving_module(self, predictor: Translator, max_beam_width: int = 16) -> TextServingModule:
        return TextServingModule(predictor, max_beam_width)

    def export_metadata(self, predictor: Translator, module: TextServingModule) -> dict:
        cfg = predictor.config
        kinds = (predictor.source_tokenizer.kind, predictor.target_tokenizer.kind)
        needs_text_ops = bool(TEXT_OP_TOKENIZERS.intersection(kinds))
        return {
            "tokenizer": predictor.source_tokenizer.kind,
            "requires_tensorflow_text": needs_text_ops,
            # Op libraries a client imports before loading the SavedModel (`import tensorflow_text`).
            "requires": ["tensorflow_text"] if needs_text_ops else [],
            # What an ONNX export (--onnx) holds: without the text graph, clients tokenize on the host.
            "onnx_graphs": sorted(filename for filename, _ in onnx_graphs(kinds[0]).values()),
            "host_tokenizers": {side: tokenizer_assets(tok) for side, tok in (
                (SOURCE, predictor.source_tokenizer), (TARGET, predictor.target_tokenizer))},
            "note": ("needs TensorFlow Text ops: load after `import tensorflow_text`; TF Serving builds link them"
                     if needs_text_ops else "core TensorFlow ops only: loads in plain TensorFlow and stock TF Serving"),
            "max_beam_width": module.max_beam_width,
            "state_names": module.state_names, "step_inputs": [F.DECODER_TOKEN_IDS] + module.step_keys,
            "special_ids": {"pad": F.PAD_ID, "unk": F.UNK_ID, "bos": F.BOS_ID, "eos": F.EOS_ID},
            "max_source_length": cfg.data.max_source_length, "reverse_source": cfg.data.reverse_source,
            # Tokenization as data, for clients without TensorFlow (tfs2s.export.tokenization; clients/js).
            "host_tokenization": describe_tokenization(predictor.source_tokenizer, predictor.target_tokenizer,
                                                       cfg.data.max_source_length, cfg.data.reverse_source),
            "decoding": cfg.decoding.__dict__,
            # Dialogue models: how a client builds the source from the conversation (as tfs2s chat does).
            "dialogue": ({"context_turns": cfg.data.context_turns, "turn_separator": cfg.data.turn_separator}
                         if corpora.is_dialogue(cfg.data.corpus) else None),
            # Whether the text outputs replace <unk> (decoding.replace_unknown, where the model allows it).
            "replace_unknown": predictor.replaces_unknown,
            # Copy attention: output ids >= the target vocabulary's size copy the source word at encoder position
            # id - size (tfs2s.core.decoding.unk.copied_tokens); host clients show that word.
            "copy": predictor.models.copies,
            # The ONNX text graph leaves UTF-8 repair and lowercasing to its host (see tokenizers.normalize).
            "text_graph_input": {"valid_utf8": True, "lowercased": cfg.data.lowercase},
        }

    def write_onnx(self, saved_model_dir: str, output_dir: str, predictor: Translator,
                   quantize: str | None = None) -> dict:
        kind = predictor.source_tokenizer.kind
        return export_onnx(saved_model_dir, output_dir, kind, onnx_graphs(kind), models=predictor.models,
                           decoding=predictor.config.decoding, quantize=quantize)

    def export_checks(self, predictor: Translator, sentences: Sequence[str] = SAMPLE_CHECK) -> list[Check]:
        ids = predictor.encode(tf.constant(list(sentences)))
        checks = []
        for signature, strategy in (("translate_ids", "beam"), ("translate_ids_greedy", "greedy")):
            direct = predictor.decode_ids(ids, predictor.options(strategy), alignment=predictor.models.has_attention)
            expected = {k: direct[k].numpy() for k in ("tokens", "scores", ALIGNMENT) if k in direct}
            checks.append(Check(signature, {F.ENCODER_TOKEN_IDS: ids.numpy()}, expected, exact=("tokens",),
                                examples=len(sentences)))
        return checks
