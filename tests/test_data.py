import numpy as np
import tensorflow as tf

from tfs2s.core import text_data as data
from tfs2s.core import features as F


def test_reverse_rows_and_prepare_source():
    rt = tf.ragged.constant([[5, 6, 7], [], [8, 9]], dtype=tf.int64)
    assert data.reverse_rows(rt).to_list() == [[7, 6, 5], [], [9, 8]]
    assert data.prepare_source_ids(rt, max_length=3, reverse=True).to_list() == [[6, 5, 3], [3], [9, 8, 3]]
    assert data.prepare_source_ids(rt, max_length=10, reverse=False).to_list() == [[5, 6, 7, 3], [3], [8, 9, 3]]


def test_dataset_yields_features_targets_and_mask(tiny_vocab):
    s, t, pairs = tiny_vocab
    ds = data.make_dataset(pairs, s, t, batch_size=2, max_source_length=8, max_target_length=8)
    features, targets, weights = next(iter(ds))
    assert set(features) == {F.ENCODER_TOKEN_IDS, F.DECODER_TOKEN_IDS}
    dec, tgt, w = features[F.DECODER_TOKEN_IDS].numpy(), targets.numpy(), weights.numpy()
    assert (dec[:, 0] == F.BOS_ID).all()
    np.testing.assert_array_equal(dec[:, 1:][tgt[:, :-1] != 0], tgt[:, :-1][tgt[:, :-1] != 0])  # shifted by one
    np.testing.assert_array_equal(w, (tgt != 0).astype(np.float32))
    assert (np.sum(tgt == F.EOS_ID, axis=1) == 1).all()
    src = features[F.ENCODER_TOKEN_IDS].numpy()
    assert all(row[row != 0][-1] == F.EOS_ID for row in src)


def _lengths_dataset(lengths):
    return tf.data.Dataset.from_tensor_slices(lengths).map(
        lambda n: {"source": tf.ones([n], tf.int32), "target_in": tf.ones([n], tf.int32),
                   "target_out": tf.ones([n], tf.int32)})


def test_bucketing_groups_similar_lengths_and_pads_less():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 40, size=400)
    bucketed = list(_lengths_dataset(lengths).apply(data.bucket_batch(16, 5, 40)))
    plain = list(_lengths_dataset(lengths).apply(data.bucket_batch(16, 0, 40)))
    assert sum(int(tf.size(b["source"])) for b in bucketed) < 0.75 * sum(int(tf.size(b["source"])) for b in plain)
    total = 0
    for b in bucketed:
        real = tf.reduce_sum(b["source"], axis=1).numpy()
        total += len(real)
        assert real.max() - real.min() < 5  # one bucket spans < width lengths
    assert total == 400


def test_filter_and_seeded_shuffle(tiny_vocab):
    s, t, pairs = tiny_vocab
    make = lambda: data.make_dataset(pairs * 10, s, t, batch_size=4, max_source_length=8, max_target_length=4,
                                     training=True, seed=7, bucket_width=0)
    first = [b[1].numpy().tolist() for b in make()]
    again = [b[1].numpy().tolist() for b in make()]
    assert first == again
    # Targets of 4 words + </s> exceed max_target_length=4 and are dropped.
    assert all(len([x for x in row if x]) <= 4 for batch in first for row in batch)
    assert sum(len(batch) for batch in first) == 30  # "a dog runs fast" (x10) dropped


def test_shard_batches_splits_an_epoch_without_overlap(tmp_path):
    import pytest

    from tfs2s.core.tokenizers import learn_tokenizer

    pairs = [(f"w{i} " + "x " * (i % 5), "a b") for i in range(50)]  # each source has its own first word
    s = learn_tokenizer("word", [p[0] for p in pairs], str(tmp_path / "s.txt"), 100, min_frequency=1)
    t = learn_tokenizer("word", [p[1] for p in pairs], str(tmp_path / "t.txt"), 100, min_frequency=1)

    def shard(index):
        # Each worker builds its own pipeline and counts its batches (as tfs2s.training.train does) before the
        # epoch: the same number of passes over the same seeded shuffle on every worker.
        ds = data.make_dataset(pairs, s, t, batch_size=4, max_source_length=8, max_target_length=8, bucket_width=2,
                               training=True, seed=3)
        nonlocal total
        total = sum(1 for _ in ds)
        batches = list(ds.apply(data.shard_batches(2, index, total)))
        return len(batches), [row[0] for b in batches for row in b[0][F.ENCODER_TOKEN_IDS].numpy().tolist()]

    total = 0
    (count_0, first), (count_1, second) = shard(0), shard(1)
    assert count_0 == count_1 == total // 2
    # The workers' shuffles agree (same seed), so their batches are different parts of one pass.
    assert not set(first) & set(second)
    assert len(first) == len(set(first)) and len(second) == len(set(second))
    assert len(first) + len(second) >= 50 - 4 * (total % 2)
    with pytest.raises(ValueError, match="cannot be shared by 3 workers"):
        data.shard_batches(3, 0, 2)
