"""Text in, text out: tokenizers + encoder + decoding, all in-graph."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from tfs2s import data, decoding
from tfs2s import features as F
from tfs2s.config import Config
from tfs2s.models import Seq2SeqModels
from tfs2s.tokenizers import Tokenizer


class Translator(tf.Module):
    """Translates raw text with a trained model.

    The source goes through exactly the training preprocessing (``data.encode_source``: tokenize, truncate to
    ``data.max_source_length``, optional reversal, ``</s>``). Empty or whitespace-only inputs give an empty
    translation.

    Args:
        models: The built (and trained) models.
        source_tokenizer: Source tokenizer.
        target_tokenizer: Target tokenizer.
        config: The run's config (data and decoding sections are used).
    """

    def __init__(self, models: Seq2SeqModels, source_tokenizer: Tokenizer, target_tokenizer: Tokenizer,
                 config: Config):
        super().__init__(name="translator")
        self.models = models
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.config = config
        self._functions: dict = {}

    def encode(self, texts: tf.Tensor, portable: bool = False) -> tf.Tensor:
        """``[batch]`` text -> padded encoder ids ``[batch, time]``."""
        d = self.config.data
        return data.encode_source(self.source_tokenizer, texts, d.max_source_length, d.reverse_source, portable)

    def max_length(self, source_ids: tf.Tensor) -> tf.Tensor:
        """Decoding length limit of each input ``[B]``: ``ratio * its source length + offset``.

        Per input rather than per batch, so a sentence translates the same whatever it is batched with.
        """
        dc = self.config.decoding
        lengths = tf.reduce_sum(tf.cast(source_ids != F.PAD_ID, tf.float32), axis=1)
        return tf.cast(tf.math.ceil(dc.max_length_ratio * lengths), tf.int32) + dc.max_length_offset

    def decode_ids(self, source_ids: tf.Tensor, strategy: str, alignment: bool = True, **options) -> dict:
        """Decodes encoder ids with the configured step function (see ``tfs2s.decoding``).

        ``alignment=False`` skips collecting attention weights (the result then has no ``alignment``).
        """
        source_ids = data.at_least_one_column(tf.cast(source_ids, tf.int32))
        state = self.models.initial_state(source_ids, alignment)
        return decoding.decode(self.models.step, state, self.max_length(source_ids), strategy, **options)

    def translate_tensor(self, texts: tf.Tensor, strategy: str, portable: bool = False, alignment: bool = True,
                         **options) -> dict:
        """Graph-friendly: ``[batch]`` text -> decoding dict plus ``text [batch, n]`` and ``source_ids``."""
        source_ids = self.encode(texts, portable)
        return self.finish(self.decode_ids(source_ids, strategy, alignment, **options), source_ids)

    def finish(self, result: dict, source_ids: tf.Tensor) -> dict:
        """Adds ``text [batch, n]`` (detokenized; empty for empty sources) and ``source_ids`` to a decoding dict."""
        result = dict(result)
        tokens = result["tokens"]
        batch, n = tf.shape(tokens)[0], tf.shape(tokens)[1]
        flat = tf.reshape(tokens, [batch * n, -1])
        text = tf.reshape(self.target_tokenizer.detokenize(flat), [batch, n])
        # Nothing to translate (only </s> in the source) -> empty translation.
        empty = tf.reduce_sum(tf.cast(source_ids != F.PAD_ID, tf.int32), axis=1) <= 1
        result["text"] = tf.where(empty[:, None], tf.constant(""), text)
        result["source_ids"] = source_ids
        return result

    def _options(self, strategy: str | None, overrides: dict) -> tuple[str, dict]:
        dc = self.config.decoding
        strategy = strategy or dc.strategy
        options = {"beam": dict(beam_width=dc.beam_width, length_penalty_alpha=dc.length_penalty, n_best=dc.n_best),
                   "sample": dict(temperature=dc.temperature, top_k=dc.top_k, seed=0),
                   "greedy": {}}.get(strategy)
        if options is not None:
            options["no_repeat_ngram_size"] = dc.no_repeat_ngram_size
        if options is None:
            raise ValueError(f"unknown decoding strategy {strategy!r}; choose greedy, beam or sample")
        unknown = set(overrides) - set(options)
        if unknown:
            raise ValueError(f"option(s) {sorted(unknown)} do not apply to {strategy}; valid: {sorted(options)}")
        options.update(overrides)
        return strategy, options

    def translate_batch(self, texts: Sequence[str], strategy: str | None = None, alignment: bool = True,
                        **overrides) -> dict:
        """Translates one batch and returns numpy arrays (``text`` as ``[batch, n]`` Python strings).

        ``alignment=False`` skips collecting attention weights, which makes decoding a little cheaper.
        """
        strategy, options = self._options(strategy, overrides)
        key = (strategy, alignment, tuple(sorted(options.items())))
        if key not in self._functions:
            self._functions[key] = tf.function(
                lambda x: self.translate_tensor(x, strategy, alignment=alignment, **options),
                input_signature=[tf.TensorSpec([None], tf.string)], reduce_retracing=True)
        result = self._functions[key](tf.constant(list(texts), dtype=tf.string))
        out = {k: v.numpy() for k, v in result.items()}
        out["text"] = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(out["text"]) if out["text"].size \
            else out["text"].astype(object)
        return out

    def translate(self, texts: Sequence[str], strategy: str | None = None, batch_size: int = 64,
                  **overrides) -> list[str]:
        """Best translation of each text, batched, in input order."""
        texts = list(texts)
        # Sorting by length keeps batches uniform (less padding, shorter decode loops).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: dict[int, str] = {}
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            out = self.translate_batch([texts[i] for i in idx], strategy, alignment=False, **overrides)
            for i, text in zip(idx, out["text"][:, 0]):
                results[i] = text
        return [results[i] for i in range(len(texts))]
