"""``tf.data`` input pipelines as small composable steps (each returns ``dataset -> dataset``).

The id-level helpers (``prepare_source_ids``, ``add_bos``, ``add_eos``) are plain TF functions on ragged
tensors, so exported serving signatures run exactly the preprocessing that training saw.

Training batches are ``(features, targets, sample_weight)`` with
``features = {encoder_token_ids: [B, S], decoder_token_ids: [B, T]}``, ``targets: [B, T]`` and a 0/1
``sample_weight: [B, T]`` that masks padding.
"""

from __future__ import annotations

from typing import Callable, Sequence

import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.core.tokenizers import Tokenizer

Transform = Callable[[tf.data.Dataset], tf.data.Dataset]
AUTOTUNE = tf.data.AUTOTUNE


# --------------------------------------------------------------------------- id-level helpers (shared with serving)
def reverse_rows(ids: tf.RaggedTensor) -> tf.RaggedTensor:
    """Reverses each row of a ragged ``[batch, (time)]`` tensor."""
    # Flat position i of row r reads from flat position start[r] + limit[r] - 1 - i.
    mirror = tf.gather(ids.row_starts() + ids.row_limits() - 1, ids.value_rowids())
    source = mirror - tf.range(tf.size(ids.flat_values, out_type=mirror.dtype), dtype=mirror.dtype)
    return tf.RaggedTensor.from_row_splits(tf.gather(ids.flat_values, source), ids.row_splits)


def add_eos(ids: tf.RaggedTensor) -> tf.RaggedTensor:
    """Appends ``</s>`` to every row."""
    eos = tf.fill([ids.nrows(), 1], tf.constant(F.EOS_ID, ids.dtype))
    return tf.concat([ids, eos], axis=1)


def add_bos(ids: tf.RaggedTensor) -> tf.RaggedTensor:
    """Prepends ``<s>`` to every row."""
    bos = tf.fill([ids.nrows(), 1], tf.constant(F.BOS_ID, ids.dtype))
    return tf.concat([bos, ids], axis=1)


def prepare_source_ids(ids: tf.RaggedTensor, max_length: int, reverse: bool) -> tf.RaggedTensor:
    """Truncates to ``max_length - 1`` tokens, optionally reverses, then appends ``</s>``."""
    ids = ids[:, : max_length - 1]
    if reverse:
        ids = reverse_rows(ids)
    return add_eos(ids)


def at_least_one_column(ids: tf.Tensor) -> tf.Tensor:
    """Pads ``[batch, time]`` ids to at least one column (a batch of zero pads to zero columns, and an RNN over
    zero time steps cannot run)."""
    return tf.pad(ids, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(ids)[1])]], constant_values=F.PAD_ID)


def encode_source(tokenizer: Tokenizer, texts: tf.Tensor, max_length: int, reverse: bool,
                  portable: bool = False) -> tf.Tensor:
    """``[batch]`` text -> padded ``[batch, time]`` int32 encoder ids, exactly as in training."""
    ids = prepare_source_ids(tokenizer.tokenize(texts, portable), max_length, reverse)
    return at_least_one_column(tf.cast(ids.to_tensor(default_value=F.PAD_ID), tf.int32))


# --------------------------------------------------------------------------- dataset steps
def from_pairs(pairs: Sequence[tuple[str, str]]) -> tf.data.Dataset:
    """A dataset of ``(source_text, target_text)`` scalar strings."""
    sources = [s for s, _ in pairs]
    targets = [t for _, t in pairs]
    return tf.data.Dataset.from_tensor_slices((sources, targets))


def copy_labels(target: tf.RaggedTensor, target_words: tf.RaggedTensor, source_words: tf.RaggedTensor,
                source_lengths: tf.Tensor, vocab_size: int, reverse_source: bool = False) -> tf.RaggedTensor:
    """Copy attention's training labels: each ``<unk>`` target word that the source has gets the extended id
    ``vocab_size + s`` of its first source occurrence, ``s`` its encoder position (``tfs2s.core.layers.copy``).

    Args:
        target: ``[B, (T)]`` target ids.
        target_words: ``[B, (T')]`` the target's normalised words (one per id; an empty text may have a
            ``<pad>`` word and no id).
        source_words: ``[B, (S')]`` the source's normalised words, before truncation and reversal.
        source_lengths: ``[B]`` how many of those words the encoder reads (its ids before ``</s>``).
        vocab_size: The target vocabulary's size ``V``.
        reverse_source: Whether the encoder reads the words reversed.
    """
    ids = target.to_tensor(default_value=F.PAD_ID)
    width = tf.shape(ids)[1]
    words = target_words.to_tensor(default_value="", shape=[None, None])
    words = tf.pad(words, [[0, 0], [0, tf.maximum(0, width - tf.shape(words)[1])]])[:, :width]
    lengths = tf.cast(source_lengths, tf.int32)
    sources = source_words.to_tensor(default_value="")
    read = tf.sequence_mask(lengths, tf.shape(sources)[1])  # the words the encoder reads
    match = tf.logical_and(tf.equal(words[:, :, None], sources[:, None, :]), read[:, None, :])  # [B, T, S']
    first = tf.argmax(tf.cast(match, tf.int32), axis=-1, output_type=tf.int32)  # the first occurrence
    position = lengths[:, None] - 1 - first if reverse_source else first
    copy = tf.logical_and(tf.equal(ids, F.UNK_ID), tf.reduce_any(match, axis=-1))
    labels = tf.where(copy, tf.cast(vocab_size + position, ids.dtype), ids)
    return tf.RaggedTensor.from_tensor(labels, lengths=target.row_lengths())


def tokenize_pairs(source_tokenizer: Tokenizer, target_tokenizer: Tokenizer, max_source_length: int,
                   reverse_source: bool = False, chunk: int = 1024, copy: bool = False) -> Transform:
    """Text pairs -> ``{"source", "target_in", "target_out"}`` int32 id vectors.

    Tokenizes in chunks of ``chunk`` pairs (string ops are far cheaper per batch than per example). With
    ``copy`` (copy attention, word tokenizers) ``target_out`` has ``copy_labels``; ``target_in`` keeps ``<unk>``.
    """

    def tokenize(sources, targets):
        source_ids = source_tokenizer.tokenize(sources)
        source = prepare_source_ids(source_ids, max_source_length, reverse_source)
        target = target_tokenizer.tokenize(targets)
        labels = target
        if copy:
            read = tf.minimum(source_ids.row_lengths(), max_source_length - 1)
            labels = copy_labels(target, target_tokenizer.words(targets), source_tokenizer.words(sources), read,
                                 target_tokenizer.vocab_size, reverse_source)
        ragged = {"source": source, "target_in": add_bos(target), "target_out": add_eos(labels)}
        # Dense rows plus lengths survive `unbatch` as plain tensors (ragged rows would not pad-batch).
        return ({k: tf.cast(v.to_tensor(), tf.int32) for k, v in ragged.items()},
                {k: tf.cast(v.row_lengths(), tf.int32) for k, v in ragged.items()})

    def trim(rows, lengths):
        return {k: rows[k][: lengths[k]] for k in rows}

    def apply(ds):
        return ds.batch(chunk).map(tokenize, num_parallel_calls=AUTOTUNE).unbatch().map(trim)

    return apply


def filter_length(max_target_length: int) -> Transform:
    """Drops examples whose target (with ``</s>``) is longer than ``max_target_length``."""
    return lambda ds: ds.filter(lambda ex: tf.size(ex["target_out"]) <= max_target_length)


def shuffle(buffer_size: int, seed: int) -> Transform:
    """Seeded shuffle, reshuffled each epoch (the order is still reproducible for a given seed)."""
    return lambda ds: ds.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)


def _example_length(ex):
    return tf.maximum(tf.size(ex["source"]), tf.size(ex["target_out"]))


def bucket_bounds(bucket_width: int, max_length: int) -> tuple[list[int], list[int]]:
    """``(boundaries, upper_bounds)`` of the length buckets, as ``bucket_by_sequence_length`` takes them.

    Bucket ``i`` holds examples whose longer side is ``(i * width, (i + 1) * width]`` tokens; the last one reaches
    ``max_length`` (no training example is longer: sources are truncated and longer targets dropped).
    ``upper_bounds[i]`` is the longest side a batch of bucket ``i`` can have. Width 0: one bucket.
    """
    if bucket_width <= 0:
        return [], [max_length]
    boundaries = list(range(bucket_width + 1, max_length + 1, bucket_width))
    return boundaries, [b - 1 for b in boundaries] + [max_length]


def token_batch_sizes(batch_tokens: int, upper_bounds: Sequence[int]) -> list[int]:
    """Rows per batch of each bucket so that rows x the bucket's longest side stays within ``batch_tokens``;
    a bucket whose longest side alone exceeds the budget still gets batches of one (nothing is dropped)."""
    return [max(1, batch_tokens // upper) for upper in upper_bounds]


def bucket_batch(batch_size: int, bucket_width: int, max_length: int, batch_tokens: int = 0) -> Transform:
    """Groups examples of similar length into padded batches (less padding, faster steps).

    Args:
        batch_size: Rows per batch (sentence batches).
        bucket_width: Width of the length buckets; 0 means plain padded batching (one bucket).
        max_length: The longest side an example can have.
        batch_tokens: Token batches instead (``data.batch_tokens``): each bucket's batches hold
            ``token_batch_sizes`` rows, rows x the bucket's longest side <= ``batch_tokens``. 0: ``batch_size``.
    """
    padded_shapes = {"source": [None], "target_in": [None], "target_out": [None]}
    boundaries, upper_bounds = bucket_bounds(bucket_width, max_length)
    sizes = token_batch_sizes(batch_tokens, upper_bounds) if batch_tokens > 0 else [batch_size] * len(upper_bounds)

    def apply(ds):
        if not boundaries:
            return ds.padded_batch(sizes[0], padded_shapes=padded_shapes)
        return ds.bucket_by_sequence_length(_example_length, bucket_boundaries=boundaries, bucket_batch_sizes=sizes,
                                            padded_shapes=padded_shapes)

    return apply


def shuffle_batches(buckets: int, seed: int) -> Transform:
    """Mixes each epoch's last batches: a bucket emits a batch when it fills, so batches of all buckets already
    interleave, but at the end of the data every bucket's partial batch comes out in bucket order (shortest
    first). A buffer of twice as many batches as buckets shuffles those in among the others."""
    return lambda ds: ds.shuffle(2 * buckets, seed=seed, reshuffle_each_iteration=True)


def to_features() -> Transform:
    """Padded batches -> ``(features, targets, sample_weight)``."""

    def split(batch):
        targets = batch["target_out"]
        return ({F.ENCODER_TOKEN_IDS: batch["source"], F.DECODER_TOKEN_IDS: batch["target_in"]},
                targets, tf.cast(tf.not_equal(targets, F.PAD_ID), tf.float32))

    return lambda ds: ds.map(split, num_parallel_calls=AUTOTUNE)


def no_auto_shard() -> Transform:
    """Tells ``tf.distribute`` to use the dataset as it is on each worker (it is sharded already, or evaluated
    whole by every worker), instead of sharding it again."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return lambda ds: ds.with_options(options)


def shard_batches(num_shards: int, index: int, batches_per_epoch: int) -> Transform:
    """Worker ``index`` of ``num_shards`` keeps every ``num_shards``-th batch, the same number on every worker.

    Every worker builds the same batches (same data, same seeded shuffle) and keeps its own share, so one epoch
    trains on each batch once across the workers. Each keeps ``batches_per_epoch // num_shards`` batches:
    collective training needs the same step count everywhere, so up to ``num_shards - 1`` batches of an epoch
    (different ones each epoch, as the shuffle changes) are left out.
    """
    per_shard = batches_per_epoch // num_shards
    if per_shard < 1:
        raise ValueError(f"{batches_per_epoch} batches cannot be shared by {num_shards} workers; "
                         "use more data or smaller batches (data.batch_size, data.batch_tokens)")
    return lambda ds: ds.shard(num_shards, index).take(per_shard).apply(no_auto_shard())


def source_target_options(d) -> dict:
    """The ``make_dataset`` length and order settings a ``DataConfig`` fixes (``max_source_length``,
    ``max_target_length``, ``reverse_source``): training, evaluation and the ``Translator`` preprocess alike."""
    return dict(max_source_length=d.max_source_length, max_target_length=d.max_target_length,
                reverse_source=d.reverse_source)


def make_dataset(pairs: Sequence[tuple[str, str]], source_tokenizer: Tokenizer, target_tokenizer: Tokenizer,
                 *, batch_size: int, max_source_length: int, max_target_length: int, reverse_source: bool = False,
                 bucket_width: int = 0, batch_tokens: int = 0, training: bool = False,
                 shuffle_buffer: int = 10000, seed: int = 0, copy: bool = False) -> tf.data.Dataset:
    """The whole input pipeline, from text pairs to ``(features, targets, sample_weight)`` batches.

    Training pipelines drop over-long targets, shuffle (seeded) and bucket; evaluation pipelines keep every
    pair (over-long targets are truncated so the loss stays comparable) and keep the order.
    ``batch_tokens`` (token batches, see ``bucket_batch``) applies to training pipelines only: evaluation keeps
    ``batch_size`` sentences per batch (its loss is a mean over tokens either way). ``copy``: targets with copy
    attention's labels (``copy_labels``).
    """
    ds = from_pairs(pairs).apply(tokenize_pairs(source_tokenizer, target_tokenizer, max_source_length,
                                                reverse_source, copy=copy))
    if training:
        ds = ds.apply(filter_length(max_target_length))
    else:
        ds = ds.map(lambda ex: {k: v[:max_target_length] if k != "source" else v for k, v in ex.items()})
    ds = ds.cache()
    max_length = max(max_source_length, max_target_length)
    if not training:
        return ds.apply(bucket_batch(batch_size, 0, max_length)).apply(to_features()).prefetch(AUTOTUNE)
    ds = ds.apply(shuffle(shuffle_buffer, seed)).apply(bucket_batch(batch_size, bucket_width, max_length, batch_tokens))
    if batch_tokens > 0:
        ds = ds.apply(shuffle_batches(len(bucket_bounds(bucket_width, max_length)[1]), seed + 1))
    return ds.apply(to_features()).prefetch(AUTOTUNE)
