"""Text in, text out: tokenizers + encoder + decoding, all in-graph."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from tfs2s.core import text_data as data
from tfs2s.core import decoding
from tfs2s.core.decoding import ALIGNMENT, DecodeOptions
from tfs2s.core.decoding.unk import copied_tokens, replace_unknown_tokens
from tfs2s.core import features as F
from tfs2s.core.config import Config
from tfs2s.core.errors import InputError
from tfs2s.core.models import Seq2SeqModels
from tfs2s.core.tokenizers import Tokenizer, output_mask


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
        # A plain dict, not tf.Module's tracked wrapper: its tuple keys cannot be saved, and an export of a
        # Translator that has translated before would fail on them.
        self.__dict__["_functions"] = {}

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

    @property
    def can_replace_unknown(self) -> bool:
        """Whether ``<unk>`` replacement applies: attention, a word-level source, a word or WordPiece target."""
        return bool(self.models.has_attention and self.source_tokenizer.kind == "word"
                    and self.target_tokenizer.kind in ("word", "wordpiece"))

    @property
    def replaces_unknown(self) -> bool:
        """What text outputs do by default: ``decoding.replace_unknown`` where it applies (else nothing)."""
        return bool(self.config.decoding.replace_unknown) and self.can_replace_unknown

    def _replacing(self, replace_unknown: bool | None) -> bool:
        return self.replaces_unknown if replace_unknown is None else bool(replace_unknown) and self.can_replace_unknown

    def translate_tensor(self, texts: tf.Tensor, options: DecodeOptions, portable: bool = False,
                         alignment: bool = True, replace_unknown: bool | None = None) -> dict:
        """Graph-friendly: ``[batch]`` text -> decoding dict plus ``text [batch, n]`` and ``source_ids``.

        ``replace_unknown`` (default: ``replaces_unknown``) replaces each ``<unk>`` of ``text`` by the source word
        it attends to most (``tokens`` keep the ``<unk>`` id); it collects the alignment even if ``alignment`` is
        False. It does nothing where it does not apply (see ``can_replace_unknown``).
        """
        replace = self._replacing(replace_unknown)
        source_ids = self.encode(texts, portable)
        result = self.decode_ids(source_ids, options, alignment or replace)
        return self.finish(result, source_ids, texts if replace or self.models.copies else None, portable,
                           replace_unknown=replace)

    def finish(self, result: dict, source_ids: tf.Tensor, texts: tf.Tensor | None = None,
               portable: bool = False, replace_unknown: bool | None = None) -> dict:
        """Adds ``text [batch, n]`` (detokenized; empty for empty sources) and ``source_ids`` to a decoding dict.

        With the source ``texts`` (read with ``portable`` as ``encode`` read them): a copy-attention model's
        copied ids (``>= V``) become the source words they copy (without ``texts``, ``<unk>``), and where
        ``replace_unknown`` (default: whenever ``texts`` are given) each ``<unk>`` of ``text`` becomes the source
        word it attends to most (``tfs2s.core.decoding.unk``; needs an ``alignment`` in ``result``).
        """
        result = dict(result)
        tokens = result["tokens"]
        batch, n = tf.shape(tokens)[0], tf.shape(tokens)[1]
        flat = tf.reshape(tokens, [batch * n, -1])
        vocab = self.target_tokenizer.vocab_size
        if self.models.copies:  # copied ids are not in the vocabulary: <unk> until replaced by their words
            flat = tf.where(flat >= vocab, tf.cast(F.UNK_ID, flat.dtype), flat)
        source_lengths = tf.reduce_sum(tf.cast(source_ids != F.PAD_ID, tf.int32), axis=1)
        if texts is None:
            text = self.target_tokenizer.detokenize(flat)
        else:
            strings = tf.reshape(self.target_tokenizer.dense_tokens(flat), tf.shape(tokens))
            words = self.source_tokenizer.words(texts, portable)
            if replace_unknown is None or replace_unknown:
                # Copies are replaced below, by the word they copy, not by the one attended to most.
                shown = tf.where(output_mask(flat), flat, tf.zeros_like(flat))
                if self.models.copies:
                    shown = tf.where(tf.reshape(tokens, [batch * n, -1]) >= vocab, tf.zeros_like(flat), shown)
                strings = replace_unknown_tokens(strings, tf.reshape(shown, tf.shape(tokens)), result[ALIGNMENT],
                                                 words, source_lengths - 1, self.config.data.reverse_source)
            if self.models.copies:
                strings = copied_tokens(strings, tokens, vocab, words, source_lengths - 1,
                                        self.config.data.reverse_source)
            text = self.target_tokenizer.join(tf.reshape(strings, [batch * n, -1]))
        text = tf.reshape(text, [batch, n])
        # Nothing to translate (only </s> in the source) -> empty translation.
        empty = source_lengths <= 1
        result["text"] = tf.where(empty[:, None], tf.constant(""), text)
        result["source_ids"] = source_ids
        return result

    def translate_batch(self, texts: Sequence[str], strategy: str | None = None, alignment: bool = True,
                        replace_unknown: bool | None = None, **overrides) -> dict:
        """Translates one batch and returns numpy arrays (``text`` as ``[batch, n]`` Python strings).

        ``overrides`` change the config's decoding options (``beam_width``, ``temperature``, ...; see
        ``DecodeOptions``). ``alignment=False`` skips collecting attention weights, which makes decoding a little
        cheaper. ``replace_unknown``: as in ``translate_tensor``.
        """
        options = self.options(strategy, **overrides)
        replace = self._replacing(replace_unknown)
        key = (options.key(), alignment, replace)
        if key not in self._functions:
            self._functions[key] = tf.function(
                lambda x: self.translate_tensor(x, options, alignment=alignment, replace_unknown=replace),
                input_signature=[tf.TensorSpec([None], tf.string)], reduce_retracing=True)
        result = self._functions[key](tf.constant(list(texts), dtype=tf.string))
        out = {k: v.numpy() for k, v in result.items()}
        out["text"] = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(out["text"]) if out["text"].size \
            else out["text"].astype(object)
        return out

    def translate(self, texts: Sequence[str], strategy: str | None = None, batch_size: int = 64,
                  replace_unknown: bool | None = None, **overrides) -> list[str]:
        """Best translation of each text, batched, in input order.

        ``replace_unknown`` (default: the config's ``decoding.replace_unknown``, where it applies) replaces every
        ``<unk>`` of the output by the source word it attends to most (Jean et al. 2015; Luong et al. 2015):
        word-level models with attention only.

        Raises:
            InputError: ``replace_unknown=True`` for a model it does not apply to.
        """
        texts = list(texts)
        if replace_unknown and not self.can_replace_unknown:
            raise InputError("replace_unknown needs a word-level model with attention")
        # Sorting by length keeps batches uniform (less padding, shorter decode loops).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: dict[int, str] = {}
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            out = self.translate_batch([texts[i] for i in idx], strategy, alignment=False,
                                       replace_unknown=replace_unknown, **overrides)
            for i, text in zip(idx, out["text"][:, 0]):
                results[i] = text
        return [results[i] for i in range(len(texts))]
