"""Unknown-word replacement from attention alignments (Jean et al. 2015; Luong et al. 2015), in-graph.

Each ``<unk>`` of an output becomes the source word that the decoder attended to most when it produced it.
Plain TF ops (argmax, gather, where) that convert to ONNX, so ``Translator.translate``, the SavedModel's text
signatures and the ONNX text graph replace the same words.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from tfs2s.core import features as F


def replace_unknown_tokens(tokens: tf.Tensor, ids: tf.Tensor, alignment: tf.Tensor, source_words: tf.RaggedTensor,
                           source_lengths: tf.Tensor, reversed_source: bool = False) -> tf.Tensor:
    """Replaces each ``<unk>`` token by the source word it attends to most.

    The encoder reads the first ``source_lengths`` words of ``source_words`` (reversed if ``reversed_source``),
    then ``</s>`` and padding; the argmax runs over the word positions only, so an ``<unk>`` never becomes
    ``</s>`` or padding. Rows whose source has no word keep their ``<unk>``.

    Args:
        tokens: ``[B, N, L]`` output token strings.
        ids: ``[B, N, L]`` their ids (``<unk>`` ids mark the tokens to replace; strings are not compared, because
            ONNX's Equal takes strings only from opset 19).
        alignment: ``[B, N, L', S]`` attention weights (``L' >= L``) over the ``S`` encoder positions.
        source_words: ``[B, (words)]`` the normalised source words, before truncation and reversal.
        source_lengths: ``[B]`` how many of those words the encoder read (``</s>`` not counted).
        reversed_source: Whether the encoder read the words reversed.

    Returns:
        ``[B, N, L]`` token strings.
    """
    source_lengths = tf.cast(source_lengths, tf.int64)
    alignment = alignment[:, :, : tf.shape(tokens)[2]]
    positions = tf.shape(alignment, out_type=tf.int64)[3]
    words_read = tf.sequence_mask(source_lengths, positions)[:, None, None, :]
    # Attention weights are >= 0: a position outside the words never wins.
    position = tf.argmax(tf.where(words_read, alignment, -1.0), axis=-1, output_type=tf.int64)  # [B, N, L]
    lengths = source_lengths[:, None, None]
    replace = tf.logical_and(tf.equal(tf.cast(ids, tf.int64), F.UNK_ID), lengths > 0)
    return tf.where(replace, _source_words_at(source_words, lengths, position, replace, reversed_source), tokens)


def _source_words_at(source_words: tf.RaggedTensor, lengths: tf.Tensor, position: tf.Tensor, valid: tf.Tensor,
                     reversed_source: bool) -> tf.Tensor:
    """``[B, N, L]``: the source word at encoder ``position`` where ``valid`` (``""`` elsewhere).

    ``lengths`` ``[B, 1, 1]`` counts the words the encoder read (reversed if ``reversed_source``). One flat gather,
    with a sentinel ``""`` at the end for the invalid places (a gather needs a valid index).
    """
    word = lengths - 1 - position if reversed_source else position
    flat_words = tf.concat([source_words.flat_values, tf.constant([""])], axis=0)
    sentinel = tf.size(source_words.flat_values, out_type=tf.int64)
    index = tf.where(valid, tf.cast(source_words.row_starts(), tf.int64)[:, None, None] + word, sentinel)
    return tf.gather(flat_words, index)


def copied_tokens(tokens: tf.Tensor, ids: tf.Tensor, vocab_size: int, source_words: tf.RaggedTensor,
                  source_lengths: tf.Tensor, reversed_source: bool = False) -> tf.Tensor:
    """Copy attention's outputs as words: each id ``vocab_size + s`` becomes the source word at encoder position
    ``s`` (``tfs2s.core.layers.copy``); other tokens are kept, and so is a copy of a position that holds no word.

    Args:
        tokens: ``[B, N, L]`` output token strings (a copied id's string is whatever stood for it, ``<unk>``).
        ids: ``[B, N, L]`` the output ids, extended ids included.
        vocab_size: The target vocabulary's size ``V``.
        source_words: ``[B, (words)]`` the normalised source words, before truncation and reversal.
        source_lengths: ``[B]`` how many of those words the encoder read (``</s>`` not counted).
        reversed_source: Whether the encoder read the words reversed.

    Returns:
        ``[B, N, L]`` token strings.
    """
    ids = tf.cast(ids, tf.int64)
    lengths = tf.cast(source_lengths, tf.int64)[:, None, None]
    position = ids - vocab_size
    copied = tf.logical_and(position >= 0, position < lengths)
    return tf.where(copied, _source_words_at(source_words, lengths, position, copied, reversed_source), tokens)


def replace_unknown_words(output_tokens: Sequence[str], alignment, source_words: Sequence[str],
                          unk: str = "<unk>", reversed_source: bool = False) -> list[str]:
    """Plain-Python reference of ``replace_unknown_tokens`` for one output (tests check the graph against it).

    Args:
        output_tokens: The decoded tokens (without ``</s>``).
        alignment: ``[output_length, encoder_length]`` attention weights of those tokens.
        source_words: The normalised source words as the encoder read them, before any reversal (the encoder
            input is these words, truncated, possibly reversed, then ``</s>``).
        unk: The unknown-word token.
        reversed_source: Whether the encoder read the words reversed.
    """
    words = list(source_words)
    out = []
    for t, token in enumerate(output_tokens):
        if token != unk or not words:
            out.append(token)
            continue
        row = list(alignment[t][: len(words)])
        position = max(range(len(row)), key=row.__getitem__)
        out.append(words[len(words) - 1 - position] if reversed_source else words[position])
    return out
