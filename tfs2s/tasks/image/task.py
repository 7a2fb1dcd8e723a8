"""Image to sequence: a convolutional encoder, the attentional RNN decoder, and what runs around them.

The model is the one ``models.build_models`` builds with ``model.input_encoder: image`` (see there); this module
holds the run (``train_captioner``: read the images, split them, learn the character or word vocabulary, fit),
the ``Captioner`` (images or encoded image bytes in, text out, all in-graph), its metrics (exact sequence
accuracy, character error rate) and its export (``export_captioner``: SavedModel taking ``image_bytes`` and
float images, ONNX over float images).

A run folder is laid out like a translation run (``tfs2s.training``) with only a target vocabulary.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Sequence

import numpy as np
import tensorflow as tf

from tfs2s.core import decoding
from tfs2s.data import images
from tfs2s.core import features as F
from tfs2s.core.config import Config, ConfigError
from tfs2s.core.models import Seq2SeqModels, build_models, set_unigram_output_bias
from tfs2s.core.tokenizers import Tokenizer, learn_tokenizer, load_tokenizer

logger = logging.getLogger(__name__)

TARGET = "target"
IMAGE_CORPORA = ("captcha", "image_captions")


def load_examples(cfg: Config) -> list[tuple[bytes, str]]:
    """``(encoded image, text)`` examples of the configured image corpus.

    ``captcha``: ``<data_dir>/captcha-images-v2`` (a tar.gz or folder of ``<label>.png``); ``image_captions``: a
    Flickr8k-style ``<data_dir>/Images`` folder with ``<data_dir>/captions.txt`` (or ``Flickr8k.token.txt``).
    """
    from tfs2s.data.corpora import resolve_data_dir

    d = cfg.data
    root = resolve_data_dir(d.data_dir)
    if d.corpus == "captcha":
        examples = images.read_captcha(os.path.join(root, "captcha-images-v2"))
    elif d.corpus == "image_captions":
        captions = next((os.path.join(root, n) for n in ("captions.txt", "Flickr8k.token.txt")
                         if os.path.exists(os.path.join(root, n))), os.path.join(root, "captions.txt"))
        examples = images.read_captions(os.path.join(root, "Images"), captions)
    else:
        raise ConfigError(f"data.corpus={d.corpus!r} is not an image corpus; choose one of {', '.join(IMAGE_CORPORA)}")
    return examples[: d.limit] if d.limit else examples


def split(cfg: Config, examples: Sequence) -> tuple[list, list]:
    """The seeded training / validation split of ``data.validation_fraction``."""
    return images.split_examples(list(examples), cfg.data.validation_fraction, cfg.data.seed)


class Captioner(tf.Module):
    """Images in, text out: the encoder and a decoding strategy over ``Seq2SeqModels.step``, all in-graph.

    Args:
        models: Models built with ``input_encoder: image``.
        target_tokenizer: The output tokenizer (``char`` for captchas, ``word`` for captions).
        config: The run's config (image size, maximum output length, decoding defaults).
    """

    def __init__(self, models: Seq2SeqModels, target_tokenizer: Tokenizer, config: Config):
        super().__init__(name="captioner")
        self.models = models
        self.target_tokenizer = target_tokenizer
        self.config = config
        self._functions: dict = {}

    @property
    def image_shape(self) -> tuple[int, int, int]:
        d = self.config.data
        return d.image_height, d.image_width, d.image_channels

    def decode_bytes(self, image_bytes: tf.Tensor) -> tf.Tensor:
        """``[B]`` encoded PNG/JPEG -> ``[B, H, W, C]`` floats (wrong sizes fail naming ``image_bytes``)."""
        return images.decode_images(image_bytes, *self.image_shape)

    def caption_tensor(self, pixels: tf.Tensor, strategy: str, alignment: bool = True, **options) -> dict:
        """Graph-friendly: ``[B, H, W, C]`` floats -> the decoding dict plus ``text [B, N]``.

        An empty batch gives empty results: TF's CPU convolutions fail on zero images, so one blank image runs in
        its place and is cut off again (not a ``tf.cond``: tf2onnx cannot convert convolutions inside one).
        """
        pixels = tf.convert_to_tensor(pixels, tf.float32)
        rows = tf.shape(pixels)[0]
        blank = tf.zeros(tf.concat([[tf.maximum(1 - rows, 0)], tf.shape(pixels)[1:]], 0), pixels.dtype)
        state = self.models.initial_state(tf.concat([pixels, blank], 0), alignment)
        result = dict(decoding.decode(self.models.step, state, self.config.data.max_target_length, strategy,
                                      **options))
        tokens = result["tokens"]
        batch, n = tf.shape(tokens)[0], tf.shape(tokens)[1]
        result["text"] = tf.reshape(self.target_tokenizer.detokenize(tf.reshape(tokens, [batch * n, -1])), [batch, n])
        return {name: value[:rows] for name, value in result.items()}

    def options(self, strategy: str | None = None) -> tuple[str, dict]:
        """The configured decoding options of ``strategy`` (default: the config's)."""
        dc = self.config.decoding
        strategy = strategy or dc.strategy
        common = dict(min_length=dc.min_length, no_repeat_ngram_size=dc.no_repeat_ngram_size)
        if strategy == "beam":
            return strategy, dict(beam_width=dc.beam_width, length_penalty_alpha=dc.length_penalty, n_best=dc.n_best,
                                  **common)
        if strategy == "greedy":
            return strategy, common
        raise ValueError(f"images are captioned by greedy or beam search, not {strategy!r}")

    def caption(self, encoded: Sequence[bytes], strategy: str | None = None, batch_size: int = 64,
                return_alignment: bool = False):
        """Captions encoded images (PNG/JPEG bytes). Bad images raise ``images.ImageDataError`` naming them.

        Returns:
            The best caption of each image; with ``return_alignment`` also, for each, a dict with its output
            ``tokens`` and their ``alignment`` (``[tokens, columns]`` attention weights, numpy).
        """
        strategy, options = self.options(strategy)
        key = (strategy, return_alignment)
        if key not in self._functions:
            self._functions[key] = tf.function(lambda b: self.caption_tensor(
                self.decode_bytes(b), strategy, alignment=return_alignment, **options))
        texts, alignments = [], []
        for start in range(0, len(encoded), batch_size):
            chunk = list(encoded[start:start + batch_size])
            try:
                out = self._functions[key](tf.constant(chunk, tf.string))
            except tf.errors.InvalidArgumentError:
                # Only on failure: find the bad image host-side and name it by its position in ``encoded``.
                for i, data in enumerate(chunk):
                    images.check_image(data, *self.image_shape, name=f"image {start + i}")
                raise
            texts += [t.decode("utf-8") for t in out["text"][:, 0].numpy()]
            if return_alignment:
                lengths = out["lengths"][:, 0].numpy()
                tokens = self.target_tokenizer.id_tokens(out["tokens"][:, 0]).to_list()
                alignments += [{"tokens": [t.decode("utf-8") for t in toks], "alignment": a[:n]}
                               for toks, a, n in zip(tokens, out["alignment"][:, 0].numpy(), lengths)]
        return (texts, alignments) if return_alignment else texts


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance between two sequences."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def caption_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """Exact sequence accuracy and character error rate (edit distance / reference characters), in percent."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    exact = sum(h == r for h, r in zip(hypotheses, references))
    errors = sum(edit_distance(h, r) for h, r in zip(hypotheses, references))
    chars = sum(len(r) for r in references)
    return {"examples": len(references), "exact_accuracy": round(100.0 * exact / max(len(references), 1), 2),
            "character_error_rate": round(100.0 * errors / max(chars, 1), 2)}


def evaluate_captioner(captioner: Captioner, examples: Sequence[tuple[bytes, str]], strategy: str | None = None) -> dict:
    """``caption_scores`` of ``captioner`` on ``(image, text)`` examples, with the misread examples listed."""
    hypotheses = captioner.caption([e[0] for e in examples], strategy)
    references = [e[1] for e in examples]
    scores = caption_scores(hypotheses, references)
    scores["errors"] = [{"reference": r, "hypothesis": h} for h, r in zip(hypotheses, references) if h != r][:20]
    return scores


def _prepare_tokenizer(cfg: Config, run_dir: str, texts: Sequence[str]) -> Tokenizer:
    if os.path.exists(os.path.join(run_dir, f"{TARGET}_tokenizer.json")):
        return load_tokenizer(run_dir, TARGET)
    d = cfg.data
    tok = learn_tokenizer(d.tokenizer, texts, os.path.join(run_dir, f"{TARGET}_vocab.txt"), d.target_vocab_size,
                          d.min_frequency, d.lowercase, name=f"{TARGET}_tokenizer")
    tok.save(run_dir, TARGET)
    return tok


def build_captioner_models(cfg: Config, target_vocab_size: int) -> Seq2SeqModels:
    """``build_models`` for an image run."""
    d = cfg.data
    return build_models(cfg.model, target_vocab_size=target_vocab_size,
                        image_shape=(d.image_height, d.image_width, d.image_channels))


def _check_config(cfg: Config) -> None:
    if cfg.model.input_encoder != "image":
        raise ConfigError(f"an image run needs model.input_encoder=image, got {cfg.model.input_encoder!r}")
    if cfg.data.corpus not in IMAGE_CORPORA:
        raise ConfigError(f"data.corpus={cfg.data.corpus!r} is not an image corpus; choose one of "
                          f"{', '.join(IMAGE_CORPORA)}")


def train_captioner(cfg: Config, run_dir: str, *, verbose: int | str = "auto", extend: bool = False) -> dict:
    """Trains (or resumes) an image-to-sequence model in ``run_dir`` and returns the run summary.

    Every image is checked first (a wrong size or an undecodable file fails naming the file). The summary
    holds the validation exact accuracy and character error rate of greedy and beam search.

    With ``extend`` a finished run trains further, as in ``tfs2s.training.train``.
    """
    from tfs2s.training.run import TrainingClock, compile_model, open_run, run_callbacks, trained_epochs

    _check_config(cfg)
    summary_path = os.path.join(run_dir, "summary.json")
    finished = open_run(cfg, run_dir, extend)
    if finished is not None:
        return finished
    d, t = cfg.data, cfg.training
    examples = load_examples(cfg)
    for i, (data, _) in enumerate(examples):
        images.check_image(data, d.image_height, d.image_width, d.image_channels, name=f"{d.corpus} image {i}")
    train_examples, val_examples = split(cfg, examples)
    logger.info("%d training images, %d validation images", len(train_examples), len(val_examples))
    tok = _prepare_tokenizer(cfg, run_dir, [e[1] for e in train_examples])
    common = dict(height=d.image_height, width=d.image_width, channels=d.image_channels, batch_size=d.batch_size,
                  max_target_length=d.max_target_length)
    train_ds = images.image_dataset(train_examples, tok, training=True, seed=d.seed, augment=d.augment, **common)
    val_ds = images.image_dataset(val_examples, tok, **common)
    batches = -(-len(train_examples) // d.batch_size)
    target_ids = tok.tokenize(tf.constant([e[1] for e in train_examples]))
    tokens_per_step = float(tf.reduce_sum(target_ids.row_lengths() + 1)) / batches  # each target also ends with </s>
    models = build_captioner_models(cfg, tok.vocab_size)
    if t.output_bias_init == "unigram":
        counts = np.bincount(target_ids.flat_values.numpy(), minlength=tok.vocab_size)[: tok.vocab_size]
        counts[F.EOS_ID] += len(train_examples)
        set_unigram_output_bias(models, counts)
    model = compile_model(models, cfg, batches)
    model.optimizer.build(model.trainable_variables)
    clock = TrainingClock(t.max_minutes, tokens_per_step, os.path.join(run_dir, "clock.json"))
    started = time.perf_counter()
    model.fit(train_ds, validation_data=val_ds, epochs=t.epochs, callbacks=run_callbacks(cfg, run_dir, clock),
              verbose=verbose)
    wall = time.perf_counter() - started
    model.load_weights(os.path.join(run_dir, "checkpoints", "best.weights.h5"))
    captioner = Captioner(models, tok, cfg)
    val_metrics = model.evaluate(val_ds, verbose=0, return_dict=True)
    summary = {"name": cfg.name, "epochs_run": trained_epochs(os.path.join(run_dir, "history.jsonl")),
               "train_minutes": round(clock.seconds / 60.0, 2), "wall_minutes": round(wall / 60.0, 2),
               "train_images": len(train_examples), "validation_images": len(val_examples),
               "val_loss": round(float(val_metrics["loss"]), 4), "target_vocab_size": tok.vocab_size,
               "parameters": int(model.count_params()),
               "validation": {s: evaluate_captioner(captioner, val_examples, s) for s in ("greedy", "beam")}}
    with open(summary_path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    return summary


def load_captioner(run_dir: str, weights: str = "best") -> Captioner:
    """A ``Captioner`` over a trained run's checkpoint.

    Raises:
        FileNotFoundError: The folder is not an image run, or has no such checkpoint (names what is missing).
    """
    from tfs2s.core.config import load_config

    config_path = os.path.join(run_dir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{run_dir} is not a tfs2s run folder: {config_path} is missing")
    cfg = load_config(config_path)
    _check_config(cfg)
    tok = load_tokenizer(run_dir, TARGET)
    models = build_captioner_models(cfg, tok.vocab_size)
    path = os.path.join(run_dir, "checkpoints", f"{weights}.weights.h5")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no {weights} checkpoint in {run_dir} (expected {path}); train first")
    models.training.load_weights(path)
    return Captioner(models, tok, cfg)


# ---------------------------------------------------------------------------------------------------- export

class CaptionServingModule(tf.Module):
    """What an image export saves: the captioner and its signatures.

    * ``serving_default``: ``image_bytes [B]`` (PNG/JPEG; TF Serving REST takes ``{"b64": ...}``) -> ``text [B]``,
      ``captions [B, N]``, ``tokens [B, N, L]``, ``length [B, N]``, ``scores [B, N]``, ``alignment [B, N, L, P]``
      (attention over the ``P`` image columns), by beam search;
    * ``caption_image``: the same from ``encoder_image [B, H, W, C]`` floats in ``[0, 1]``;
    * ``caption_image_greedy`` / ``caption_image_beam``: ``encoder_image`` -> ``tokens``, ``length``, ``scores``
      (the graphs converted to ONNX; the vocabulary is ``assets/target_vocab.txt``).
    """

    def __init__(self, captioner: Captioner):
        super().__init__(name="tfs2s_caption_serving")
        self.captioner = captioner
        self.model_variables = [w.value for w in captioner.models.teacher_forced.weights]
        _, self._beam = captioner.options("beam")
        pixels = tf.TensorSpec([None, *captioner.image_shape], tf.float32, name=F.ENCODER_IMAGE)
        self.serve = tf.function(self._serve, input_signature=[tf.TensorSpec([None], tf.string, name=F.IMAGE_BYTES)])
        self.caption_image = tf.function(self._caption_image, input_signature=[pixels])
        self.caption_image_greedy = tf.function(lambda x: self._ids(x, "greedy"), input_signature=[pixels])
        self.caption_image_beam = tf.function(lambda x: self._ids(x, "beam"), input_signature=[pixels])

    def _outputs(self, result: dict) -> dict:
        return {"text": result["text"][:, 0], "captions": result["text"], "tokens": result["tokens"],
                "length": result["lengths"], "scores": result["scores"], "alignment": result["alignment"]}

    def _serve(self, image_bytes):
        return self._caption_image(self.captioner.decode_bytes(image_bytes))

    def _caption_image(self, pixels):
        return self._outputs(self.captioner.caption_tensor(pixels, "beam", **self._beam))

    def _ids(self, pixels, strategy):
        options = self.captioner.options(strategy)[1]
        result = self.captioner.caption_tensor(pixels, strategy, alignment=False, **options)
        return {"tokens": result["tokens"], "length": result["lengths"], "scores": result["scores"]}

    def signatures(self) -> dict:
        return {"serving_default": self.serve.get_concrete_function(),
                "caption_image": self.caption_image.get_concrete_function(),
                "caption_image_greedy": self.caption_image_greedy.get_concrete_function(),
                "caption_image_beam": self.caption_image_beam.get_concrete_function()}


CAPTION_ONNX_GRAPHS = {"caption_image_greedy": ("caption_image_greedy.onnx", False),
                       "caption_image_beam": ("caption_image_beam.onnx", False)}


def export_captioner(captioner: Captioner, export_root: str, name: str, version: int | None = None,
                     overwrite: bool = False, onnx: bool = False) -> str:
    """Writes ``export_root/name/version`` (TF Serving layout, atomically) and returns its path.

    ``onnx=True`` also converts ``caption_image_greedy`` and ``caption_image_beam`` into ``<version>/onnx/``.
    """
    from tfs2s.export.savedmodel import export_onnx, save_module, write_version

    def write(tmp: str) -> None:
        save_module(tmp, CaptionServingModule(captioner), captioner.config, {
            "task": "image_to_sequence", "tokenizer": captioner.target_tokenizer.kind,
            "requires_tensorflow_text": False, "image_shape": list(captioner.image_shape),
            "image_input": "encoder_image: float32 [batch, height, width, channels], pixel values / 255",
            "max_target_length": captioner.config.data.max_target_length,
            "special_ids": {"pad": F.PAD_ID, "unk": F.UNK_ID, "bos": F.BOS_ID, "eos": F.EOS_ID},
            "decoding": captioner.config.decoding.__dict__})
        if onnx:
            export_onnx(tmp, os.path.join(tmp, "onnx"), "char", CAPTION_ONNX_GRAPHS)

    return write_version(export_root, name, version, overwrite, write)


def verify_caption_export(export_dir: str, captioner: Captioner, pixels: np.ndarray, atol: float = 1e-4) -> dict:
    """Reloads an export and checks its greedy and beam ids and scores against the in-memory captioner.

    Raises:
        AssertionError: The reloaded export disagrees with the model.
    """
    loaded = tf.saved_model.load(export_dir)
    report = {}
    for signature, strategy in (("caption_image_greedy", "greedy"), ("caption_image_beam", "beam")):
        served = loaded.signatures[signature](**{F.ENCODER_IMAGE: tf.constant(pixels, tf.float32)})
        direct = captioner.caption_tensor(pixels, strategy, alignment=False, **captioner.options(strategy)[1])
        if not np.array_equal(served["tokens"].numpy(), direct["tokens"].numpy()):
            raise AssertionError(f"{export_dir}: {signature} tokens differ from the Keras model")
        diff = float(np.max(np.abs(served["scores"].numpy() - direct["scores"].numpy()), initial=0.0))
        if diff > atol:
            raise AssertionError(f"{export_dir}: {signature} scores differ by {diff}")
        report[signature] = {"images": len(pixels), "max_score_diff": diff}
    return report
