"""Images in, text out: the ``Captioner`` (all in-graph) and its metrics (exact accuracy, character error rate)."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from tfs2s.core import decoding
from tfs2s.core.config import Config
from tfs2s.core.decoding import DecodeOptions
from tfs2s.core.errors import InputError
from tfs2s.core.models import Seq2SeqModels
from tfs2s.core.tokenizers import Tokenizer
from tfs2s.data import images


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
        """``[B]`` encoded PNG/JPEG of any size -> ``[B, H, W, C]`` floats at the model's size (resized in-graph)."""
        return images.decode_images(image_bytes, *self.image_shape)

    def caption_tensor(self, pixels: tf.Tensor, options: DecodeOptions, alignment: bool = True) -> dict:
        """Graph-friendly: ``[B, H, W, C]`` floats -> the decoding dict plus ``text [B, N]``.

        An empty batch gives empty results: TF's CPU convolutions fail on zero images, so one blank image runs in
        its place and is cut off again (not a ``tf.cond``: tf2onnx cannot convert convolutions inside one).
        """
        pixels = tf.convert_to_tensor(pixels, tf.float32)
        rows = tf.shape(pixels)[0]
        blank = tf.zeros(tf.concat([[tf.maximum(1 - rows, 0)], tf.shape(pixels)[1:]], 0), pixels.dtype)
        state = self.models.initial_state(tf.concat([pixels, blank], 0), alignment)
        result = dict(decoding.decode(self.models.step, state, self.config.data.max_target_length, options))
        tokens = result["tokens"]
        batch, n = tf.shape(tokens)[0], tf.shape(tokens)[1]
        result["text"] = tf.reshape(self.target_tokenizer.detokenize(tf.reshape(tokens, [batch * n, -1])), [batch, n])
        return {name: value[:rows] for name, value in result.items()}

    def options(self, strategy: str | None = None) -> DecodeOptions:
        """The configured decoding options of ``strategy`` (default: the config's).

        Raises:
            InputError: ``sample`` or an unknown strategy (images are captioned by greedy or beam search).
        """
        strategy = strategy or self.config.decoding.strategy
        if strategy not in ("greedy", "beam"):
            raise InputError(f"images are captioned by greedy or beam search, not {strategy!r}")
        return DecodeOptions.from_config(self.config.decoding, strategy)

    def caption(self, encoded: Sequence[bytes], strategy: str | None = None, batch_size: int = 64,
                return_alignment: bool = False):
        """Captions encoded images (PNG/JPEG bytes of any size: images of another size than the model's are
        resized, as in training). Undecodable images raise ``images.ImageDataError`` naming them.

        Returns:
            The best caption of each image; with ``return_alignment`` also, for each, a dict with its output
            ``tokens`` and their ``alignment`` (``[tokens, columns]`` attention weights, numpy).
        """
        options = self.options(strategy)
        key = (options.key(), return_alignment)
        if key not in self._functions:
            self._functions[key] = tf.function(lambda b: self.caption_tensor(
                self.decode_bytes(b), options, alignment=return_alignment))
        texts, alignments = [], []
        for start in range(0, len(encoded), batch_size):
            chunk = list(encoded[start:start + batch_size])
            try:
                out = self._functions[key](tf.constant(chunk, tf.string))
            except tf.errors.InvalidArgumentError:
                # Only on failure: find the bad image host-side and name it by its position in ``encoded``.
                for i, data in enumerate(chunk):
                    images.check_image(data, self.image_shape[2], name=f"image {start + i}")
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
