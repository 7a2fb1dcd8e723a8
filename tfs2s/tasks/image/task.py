"""Image to sequence (captchas, captioning): the training job, loading, export and its checks.

The model is the one ``tfs2s.core.models.build_models`` builds with ``model.input_encoder: image``: a
convolutional encoder read column by column into the recurrent encoder, and the attentional RNN decoder. A run
folder is laid out like a text run's (``tfs2s.training.run_dir``) with only a target vocabulary.
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.core.config import Config
from tfs2s.core.errors import ConfigError, DataError, ExportError
from tfs2s.core.models import Seq2SeqModels, build_models, set_unigram_output_bias
from tfs2s.core.tokenizer_registry import load_tokenizer
from tfs2s.data import images
from tfs2s.data.corpora import resolve_data_dir
from tfs2s.export.onnx.convert import export_onnx
from tfs2s.export.savedmodel import Check
from tfs2s.tasks.base import TARGET, Task, prepare_tokenizer
from tfs2s.tasks.image.predictor import Captioner, evaluate_captioner
from tfs2s.tasks.image.serving import CaptionServingModule
from tfs2s.training.callbacks import TrainingClock
from tfs2s.training.fit import TrainingJob
from tfs2s.training.run_dir import checkpoint_path, require_files

logger = logging.getLogger(__name__)

IMAGE_CORPORA = ("captcha", "image_captions", "files")
CAPTION_ONNX_GRAPHS = {"caption_image_greedy": ("caption_image_greedy.onnx", False),
                       "caption_image_beam": ("caption_image_beam.onnx", False)}


def _read_captions_csv(cfg: Config, path: str) -> list[tuple[bytes, str]]:
    """A ``files`` captions CSV, its images relative to ``data.image_dir`` (empty: the CSV's folder)."""
    images_dir = cfg.data.image_dir or os.path.dirname(os.path.abspath(path))
    return images.read_captions(images_dir, path, csv_format=True, channels=cfg.data.image_channels)


def load_examples(cfg: Config) -> list[tuple[bytes, str]]:
    """``(encoded image, text)`` examples of the configured image corpus (its training file for ``files``).

    ``captcha``: ``<data_dir>/captcha-images-v2`` (a tar.gz or folder of ``<label>.png``); ``image_captions``: a
    Flickr8k-style ``<data_dir>/Images`` folder with ``<data_dir>/captions.txt`` (or ``Flickr8k.token.txt``);
    ``files``: the CSV ``data.train`` (lines ``<image>,<text>``, header ``image,text`` optional), image paths
    relative to ``data.image_dir``. ``data.limit`` keeps the first N examples.
    """
    d = cfg.data
    if d.corpus == "files":
        examples = _read_captions_csv(cfg, _one_file(cfg, "train"))
    elif d.corpus == "captcha":
        examples = images.read_captcha(os.path.join(resolve_data_dir(d.data_dir), "captcha-images-v2"))
    else:
        root = resolve_data_dir(d.data_dir)
        captions = next((os.path.join(root, n) for n in ("captions.txt", "Flickr8k.token.txt")
                         if os.path.exists(os.path.join(root, n))), os.path.join(root, "captions.txt"))
        examples = images.read_captions(os.path.join(root, "Images"), captions)
    return examples[: d.limit] if d.limit else examples


def _one_file(cfg: Config, split_name: str) -> str:
    files = getattr(cfg.data, split_name)
    if len(files) != 1:
        raise ConfigError(f"data.{split_name} of an image corpus is one captions CSV (<image>,<text> lines), "
                          f"got {len(files)} files")
    return files[0]


def split(cfg: Config, examples: Sequence) -> tuple[list, list]:
    """The seeded training / validation split of ``data.validation_fraction``."""
    return images.split_examples(list(examples), cfg.data.validation_fraction, cfg.data.seed)


def load_splits(cfg: Config) -> dict[str, list[tuple[bytes, str]]]:
    """``{"train", "validation", "test"}`` examples of the configured corpus.

    Registered corpora: a seeded ``data.validation_fraction`` share of the images for validation, no test split
    (``split``). ``files``: ``data.validation`` / ``data.test`` CSVs where given, otherwise seeded
    ``data.validation_fraction`` / ``data.test_fraction`` shares of ``data.train``'s images (the captions of one
    image stay in one split; ``images.split_three``); test is empty when neither is set.
    """
    d = cfg.data
    examples = load_examples(cfg)
    if d.corpus != "files":
        train, validation = split(cfg, examples)
        return {"train": train, "validation": validation, "test": []}
    given = {s: _read_captions_csv(cfg, _one_file(cfg, s)) for s in ("validation", "test") if getattr(d, s)}
    train, validation, test = images.split_three(
        examples, 0.0 if "validation" in given else d.validation_fraction,
        0.0 if "test" in given else d.test_fraction, d.seed)
    return {"train": train, "validation": given.get("validation", validation), "test": given.get("test", test)}


def evaluate_run(captioner: Captioner, split_name: str = "validation", strategies: Sequence[str] = ("greedy",),
                 limit: int = 0) -> dict:
    """Sequence accuracy, character error rate and the misread examples of a loaded captioner on one split of
    its run's images, per decoding strategy (what ``tfs2s evaluate`` reports for an image run).

    Raises:
        DataError: The run has no such split, or it is empty (a registered corpus has no test split; a ``files``
            run has one when ``data.test`` or ``data.test_fraction`` is set).
    """
    splits = load_splits(captioner.config)
    examples = splits.get(split_name) or []
    if not examples:
        have = ", ".join(name for name, rows in splits.items() if rows)
        raise DataError(f"the run has no {split_name} images (splits with images: {have})")
    examples = examples[:limit] if limit else examples
    return {"split": split_name, "examples": len(examples),
            **{strategy: evaluate_captioner(captioner, examples, strategy) for strategy in strategies}}


def build_captioner_models(cfg: Config, target_vocab_size: int) -> Seq2SeqModels:
    """``build_models`` for an image run."""
    d = cfg.data
    return build_models(cfg.model, target_vocab_size=target_vocab_size,
                        image_shape=(d.image_height, d.image_width, d.image_channels))


class ImageJob(TrainingJob):
    """Reads and checks every image (an undecodable file fails naming it; images of another size than
    ``data.image_height x data.image_width`` are resized in-graph), splits them and learns (or reloads) the
    character or word vocabulary."""

    def __init__(self, cfg: Config, run_dir: str):
        super().__init__(cfg, run_dir)
        d = cfg.data
        splits = load_splits(cfg)
        if d.corpus != "files":  # files corpora are checked while reading, naming the CSV line
            checked: set[bytes] = set()
            for i, (encoded, label) in enumerate(splits["train"] + splits["validation"]):
                if encoded not in checked:
                    images.check_image(encoded, d.image_channels, name=f"{d.corpus} image {i} ({label!r})")
                    checked.add(encoded)
        self.train_examples, self.val_examples = splits["train"], splits["validation"]
        self.test_examples = splits["test"]
        if not self.train_examples or not self.val_examples:
            raise ConfigError(f"an image run needs training and validation images, got {len(self.train_examples)} "
                              f"and {len(self.val_examples)} (data.validation_fraction, data.validation)")
        logger.info("%d training images, %d validation images", len(self.train_examples), len(self.val_examples))
        self.tok = prepare_tokenizer(cfg, run_dir, TARGET, [e[1] for e in self.train_examples], d.target_vocab_size)
        common = dict(height=d.image_height, width=d.image_width, channels=d.image_channels,
                      batch_size=d.batch_size, max_target_length=d.max_target_length)
        self.train = images.image_dataset(self.train_examples, self.tok, training=True, seed=d.seed,
                                          augment=d.augment, **common)
        self.validation = images.image_dataset(self.val_examples, self.tok, **common)
        self.batches = -(-len(self.train_examples) // d.batch_size)
        self.target_ids = self.tok.tokenize(tf.constant([e[1] for e in self.train_examples]))
        # Each target also ends with </s>.
        self.tokens_per_step = float(tf.reduce_sum(self.target_ids.row_lengths() + 1)) / self.batches

    def build(self) -> Seq2SeqModels:
        return build_captioner_models(self.cfg, self.tok.vocab_size)

    def start(self, models: Seq2SeqModels, fresh: bool) -> None:
        if self.cfg.training.output_bias_init == "unigram":
            vocab = self.tok.vocab_size
            counts = np.bincount(self.target_ids.flat_values.numpy(), minlength=vocab)[:vocab]
            counts[F.EOS_ID] += len(self.train_examples)
            set_unigram_output_bias(models, counts)

    def summary(self, models: Seq2SeqModels, model: keras.Model, clock: TrainingClock) -> dict:
        captioner = Captioner(models, self.tok, self.cfg)
        val = model.evaluate(self.validation, verbose=0, return_dict=True)
        summary = {"train_images": len(self.train_examples), "validation_images": len(self.val_examples),
                   "val_loss": round(float(val["loss"]), 4), "target_vocab_size": self.tok.vocab_size,
                   "validation": {s: evaluate_captioner(captioner, self.val_examples, s) for s in ("greedy", "beam")}}
        if self.test_examples:
            summary["test_images"] = len(self.test_examples)
            summary["test"] = {s: evaluate_captioner(captioner, self.test_examples, s) for s in ("greedy", "beam")}
        return summary


class ImageTask(Task):
    """Images to token sequences. The summary holds validation exact accuracy and character error rate of
    greedy and beam search."""

    name = "image_to_sequence"
    input_encoder = "image"
    description = "an image-to-text run (tfs2s.tasks.image, pipelines/caption.py)"

    def check_config(self, cfg: Config) -> None:
        if cfg.model.input_encoder != "image":
            raise ConfigError(f"an image run needs model.input_encoder=image, got {cfg.model.input_encoder!r}")
        if cfg.data.corpus not in IMAGE_CORPORA:
            raise ConfigError(f"data.corpus={cfg.data.corpus!r} is not an image corpus; choose one of "
                              f"{', '.join(IMAGE_CORPORA)}")
        if cfg.data.corpus == "files":
            for split_name in ("train", "validation", "test"):
                if split_name == "train" or getattr(cfg.data, split_name):
                    _one_file(cfg, split_name)

    def training_job(self, cfg: Config, run_dir: str) -> ImageJob:
        return ImageJob(cfg, run_dir)

    def load(self, cfg: Config, run_dir: str, weights: str = "best") -> Captioner:
        path = checkpoint_path(run_dir, weights)
        require_files(run_dir, {"target tokenizer": os.path.join(run_dir, f"{TARGET}_tokenizer.json"),
                                f"{weights} checkpoint": path}, kind="trained image")
        tok = load_tokenizer(run_dir, TARGET)
        models = build_captioner_models(cfg, tok.vocab_size)
        models.training.load_weights(path)
        return Captioner(models, tok, cfg)

    def serving_module(self, predictor: Captioner, max_beam_width: int = 16) -> CaptionServingModule:
        return CaptionServingModule(predictor)

    def export_metadata(self, predictor: Captioner, module: CaptionServingModule) -> dict:
        return {"tokenizer": predictor.target_tokenizer.kind,
                "requires_tensorflow_text": False, "image_shape": list(predictor.image_shape),
                "image_input": "encoder_image: float32 [batch, height, width, channels], pixel values / 255",
                "max_target_length": predictor.config.data.max_target_length,
                "special_ids": {"pad": F.PAD_ID, "unk": F.UNK_ID, "bos": F.BOS_ID, "eos": F.EOS_ID},
                "decoding": predictor.config.decoding.__dict__}

    def write_onnx(self, saved_model_dir: str, output_dir: str, predictor: Captioner,
                   quantize: str | None = None) -> dict:
        if quantize:
            raise ExportError("int8 ONNX graphs are written for text models only")
        return export_onnx(saved_model_dir, output_dir, "char", CAPTION_ONNX_GRAPHS)

    def export_checks(self, predictor: Captioner, pixels: np.ndarray | None = None) -> list[Check]:
        if pixels is None:
            pixels = np.random.default_rng(0).random((3, *predictor.image_shape), np.float32)
        checks = []
        for signature, strategy in (("caption_image_greedy", "greedy"), ("caption_image_beam", "beam")):
            direct = predictor.caption_tensor(pixels, predictor.options(strategy), alignment=False)
            checks.append(Check(signature, {F.ENCODER_IMAGE: np.asarray(pixels, np.float32)},
                                {"tokens": direct["tokens"].numpy(), "scores": direct["scores"].numpy()},
                                exact=("tokens",), examples=len(pixels)))
        return checks
