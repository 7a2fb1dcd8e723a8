"""Text in, text out: tokenizers + encoder + decoding, all in-graph."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from tfs2s.core import text_data as data
from tfs2s.core import decoding
from tfs2s.core.decoding import DecodeOptions
from tfs2s.core.decoding.unk import replace_unknown_words
from tfs2s.core import features as F
from tfs2s.core.config import Config
from tfs2s.core.errors import InputError
from tfs2s.core.models import Seq2SeqModels
from tfs2s.core.tokenizers import Tokenizer, join_tokens, normalize, split_words


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
        return self.length_limits(tf.reduce_sum(tf.cast(source_ids != F.PAD_ID, tf.int32), axis=1))

    def length_limits(self, source_lengths: tf.Tensor) -> tf.Tensor:
        """``max_length`` from source lengths ``[B]`` (non-padding ids)."""
        dc = self.config.decoding
        return decoding.length_limits(source_lengths, dc.max_length_ratio, dc.max_length_offset)

    def options(self, strategy: str | None = None, **overrides) -> DecodeOptions:
        """The config's decoding options for ``strategy`` (default: the config's), with ``overrides``.

        Raises:
            InputError: Unknown strategy, or an override that does not apply to it.
        """
        return DecodeOptions.from_config(self.config.decoding, strategy, **overrides)

    def decode_ids(self, source_ids: tf.Tensor, options: DecodeOptions, alignment: bool = True) -> dict:
        """Decodes encoder ids with the configured step function (see ``tfs2s.core.decoding``).

        ``alignment=False`` skips collecting attention weights (the result then has no ``alignment``).
        """
        source_ids = data.at_least_one_column(tf.cast(source_ids, tf.int32))
        state = self.models.initial_state(source_ids, alignment)
        return decoding.decode(self.models.step, state, self.max_length(source_ids), options)

    def translate_tensor(self, texts: tf.Tensor, options: DecodeOptions, portable: bool = False,
                         alignment: bool = True) -> dict:
        """Graph-friendly: ``[batch]`` text -> decoding dict plus ``text [batch, n]`` and ``source_ids``."""
        source_ids = self.encode(texts, portable)
        return self.finish(self.decode_ids(source_ids, options, alignment), source_ids)

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

    def translate_batch(self, texts: Sequence[str], strategy: str | None = None, alignment: bool = True,
                        **overrides) -> dict:
        """Translates one batch and returns numpy arrays (``text`` as ``[batch, n]`` Python strings).

        ``overrides`` change the config's decoding options (``beam_width``, ``temperature``, ...; see
        ``DecodeOptions``). ``alignment=False`` skips collecting attention weights, which makes decoding a little
        cheaper.
        """
        options = self.options(strategy, **overrides)
        key = (options.key(), alignment)
        if key not in self._functions:
            self._functions[key] = tf.function(
                lambda x: self.translate_tensor(x, options, alignment=alignment),
                input_signature=[tf.TensorSpec([None], tf.string)], reduce_retracing=True)
        result = self._functions[key](tf.constant(list(texts), dtype=tf.string))
        out = {k: v.numpy() for k, v in result.items()}
        out["text"] = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(out["text"]) if out["text"].size \
            else out["text"].astype(object)
        return out

    def translate(self, texts: Sequence[str], strategy: str | None = None, batch_size: int = 64,
                  replace_unknown: bool = False, **overrides) -> list[str]:
        """Best translation of each text, batched, in input order.

        ``replace_unknown`` replaces every ``<unk>`` of the output by the source word it attends to most (Jean et
        al. 2015; Luong et al. 2015): word-level models with attention only.
        """
        texts = list(texts)
        if replace_unknown and (not self.models.has_attention or self.source_tokenizer.kind != "word"):
            raise InputError("replace_unknown needs a word-level model with attention")
        # Sorting by length keeps batches uniform (less padding, shorter decode loops).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: dict[int, str] = {}
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = [texts[i] for i in idx]
            out = self.translate_batch(batch, strategy, alignment=replace_unknown, **overrides)
            best = self._replace_unknown(batch, out) if replace_unknown else out["text"][:, 0]
            for i, text in zip(idx, best):
                results[i] = text
        return [results[i] for i in range(len(texts))]

    def _replace_unknown(self, texts: Sequence[str], out: dict) -> list[str]:
        """The best outputs of ``translate_batch`` with ``<unk>`` replaced from the source (see ``translate``)."""
        d = self.config.data
        words = split_words(normalize(tf.constant(list(texts)), self.source_tokenizer.lowercase)).to_list()
        tokens = self.target_tokenizer.id_tokens(out["tokens"][:, 0]).to_list()
        results = []
        for i, text in enumerate(out["text"][:, 0]):
            output = [t.decode("utf-8") for t in tokens[i]]
            if F.UNK not in output:
                results.append(text)
                continue
            source = [w.decode("utf-8") for w in words[i] if w != F.PAD.encode()][: d.max_source_length - 1]
            output = replace_unknown_words(output, out["alignment"][i, 0], source, F.UNK, d.reverse_source)
            results.append(join_tokens(tf.constant([output]))[0].numpy().decode("utf-8"))
        return results
