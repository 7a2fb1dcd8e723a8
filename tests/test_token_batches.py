"""Token batches (``data.batch_tokens``): the budget holds, no example is lost, short sentences come in larger
batches, ``batch_tokens: 0`` is today's pipeline, and a tiny run trains with the right epoch length."""

import math
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.core import text_data as data
from tfs2s.core.tokenizers import learn_tokenizer

MAX_LENGTH = 24
WIDTH = 4


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Pairs whose sources begin with their own word ``w<i>`` (the example's id) and vary from 2 to 24 tokens."""
    rng = np.random.default_rng(5)
    pairs = []
    for i in range(300):
        n, m = int(rng.integers(0, MAX_LENGTH - 1)), int(rng.integers(0, MAX_LENGTH - 1))
        pairs.append((f"w{i} " + "x " * n, "a " * m + "b"))
    folder = tmp_path_factory.mktemp("vocab")
    s = learn_tokenizer("word", [p[0] for p in pairs], str(folder / "s.txt"), 1000, min_frequency=1)
    t = learn_tokenizer("word", [p[1] for p in pairs], str(folder / "t.txt"), 1000, min_frequency=1)
    return pairs, s, t


def _train_batches(corpus, batch_tokens, bucket_width=WIDTH, seed=3, **kw):
    pairs, s, t = corpus
    return data.make_dataset(pairs, s, t, batch_size=16, max_source_length=MAX_LENGTH, max_target_length=MAX_LENGTH,
                             bucket_width=bucket_width, batch_tokens=batch_tokens, training=True, seed=seed, **kw)


def _shapes(ds):
    """``(rows, longest side)`` of each batch; every batch's decoder and targets share their width."""
    out = []
    for features, targets, _ in ds:
        src, dec = features[F.ENCODER_TOKEN_IDS], features[F.DECODER_TOKEN_IDS]
        assert dec.shape == targets.shape
        out.append((int(src.shape[0]), max(int(src.shape[1]), int(dec.shape[1]))))
    return out


def _ids(ds, source_tok):
    """The example ids (source words ``w<i>``) of one pass, in order."""
    vocab = {i: w for i, w in enumerate(open(source_tok.vocab_path, encoding="utf-8").read().split("\n"))}
    return [vocab[row[0]] for features, _, _ in ds for row in features[F.ENCODER_TOKEN_IDS].numpy().tolist()]


@pytest.mark.parametrize("budget, bucket_width", [(60, WIDTH), (15, WIDTH), (60, 0)])
def test_every_batch_keeps_to_the_budget_and_no_example_is_lost(corpus, budget, bucket_width):
    ds = _train_batches(corpus, budget, bucket_width)
    shapes = _shapes(ds)
    over_long = [(r, w) for r, w in shapes if r * w > budget]
    assert all(r == 1 and w > budget for r, w in over_long)  # only pairs too long for the budget, alone
    if budget == 15:
        assert over_long  # the case is exercised: sides of 16-24 tokens exceed 15
    ids = _ids(ds, corpus[1])
    assert Counter(ids) == Counter(f"w{i}" for i in range(len(corpus[0])))  # each once, none lost


def _bucket(boundaries, length):
    return int(np.searchsorted(boundaries, length, side="right"))


def _expected_batches(examples, budget, bucket_width, max_length):
    """Batches of one epoch, counted from the examples' lengths: each bucket's in batches of its size."""
    boundaries, uppers = data.bucket_bounds(bucket_width, max_length)
    lengths = [max(len(ex["source"]), len(ex["target_out"])) for ex in examples.as_numpy_iterator()]
    in_bucket = Counter(_bucket(boundaries, n) for n in lengths)
    sizes = data.token_batch_sizes(budget, uppers)
    return sum(math.ceil(count / sizes[b]) for b, count in in_bucket.items()), len(lengths)


def test_short_sentences_come_in_larger_batches(corpus):
    budget = 96
    shapes = _shapes(_train_batches(corpus, budget))
    short = [r for r, w in shapes if w <= WIDTH * 2]
    long = [r for r, w in shapes if w > MAX_LENGTH - WIDTH]
    assert short and long and max(short) > max(long)
    # A batch belongs to the bucket of its longest side; all of a bucket's batches but one are full, with
    # budget // (the bucket's longest side) rows.
    boundaries, uppers = data.bucket_bounds(WIDTH, MAX_LENGTH)
    sizes = data.token_batch_sizes(budget, uppers)
    rows = {}
    for r, w in shapes:
        rows.setdefault(_bucket(boundaries, w), []).append(r)
    assert len(rows) > 3
    for b, counts in rows.items():
        counts.sort()
        assert counts[0] <= sizes[b] and counts[1:] == [sizes[b]] * (len(counts) - 1), (b, counts)


def test_epoch_length_is_the_sum_over_buckets_and_the_same_every_epoch(corpus):
    pairs, s, t = corpus
    budget = 50
    ds = _train_batches(corpus, budget)
    first, second = sum(1 for _ in ds), sum(1 for _ in ds)  # two epochs (reshuffled)
    examples = data.from_pairs(pairs).apply(data.tokenize_pairs(s, t, MAX_LENGTH)).apply(data.filter_length(MAX_LENGTH))
    expected, n = _expected_batches(examples, budget, WIDTH, MAX_LENGTH)
    assert first == second == expected
    assert expected != math.ceil(n / 16)  # not the sentence-batch count


def _old_bucket_batch(batch_size, bucket_width, max_length):
    """The sentence-batch bucketing as it was before token batches (a copy, to compare against)."""
    padded_shapes = {"source": [None], "target_in": [None], "target_out": [None]}
    boundaries = list(range(bucket_width + 1, max_length + 1, bucket_width))
    return lambda ds: ds.bucket_by_sequence_length(
        lambda ex: tf.maximum(tf.size(ex["source"]), tf.size(ex["target_out"])), bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1), padded_shapes=padded_shapes)


def test_batch_tokens_zero_is_todays_pipeline(corpus):
    pairs, s, t = corpus
    old = (data.from_pairs(pairs).apply(data.tokenize_pairs(s, t, MAX_LENGTH)).apply(data.filter_length(MAX_LENGTH))
           .cache().apply(data.shuffle(10000, 3)).apply(_old_bucket_batch(16, WIDTH, MAX_LENGTH))
           .apply(data.to_features()))
    new = _train_batches(corpus, 0)
    for _ in range(2):  # two epochs: the reshuffled order matches too
        old_batches, new_batches = list(old), list(new)
        assert len(old_batches) == len(new_batches)
        for a, b in zip(old_batches, new_batches):
            tf.nest.map_structure(np.testing.assert_array_equal, a, b)


def test_validation_keeps_sentence_batches(corpus):
    pairs, s, t = corpus
    ds = data.make_dataset(pairs, s, t, batch_size=16, max_source_length=MAX_LENGTH, max_target_length=MAX_LENGTH,
                           bucket_width=WIDTH, batch_tokens=20)
    assert [r for r, _ in _shapes(ds)] == [16] * (len(pairs) // 16) + [len(pairs) % 16]
    assert _ids(ds, s) == [f"w{i}" for i in range(len(pairs))]  # in order


def _corpus_count(cfg, run_dir, budget):
    """One epoch's batch count from the corpus itself: each bucket's examples in batches of budget // its side."""
    from tfs2s.core.tokenizer_registry import load_tokenizer
    from tfs2s.data import corpora

    d = cfg.data
    s, t = load_tokenizer(run_dir, "source"), load_tokenizer(run_dir, "target")
    examples = (data.from_pairs(corpora.load_split(d, "train", d.limit))
                .apply(data.tokenize_pairs(s, t, d.max_source_length)).apply(data.filter_length(d.max_target_length)))
    return _expected_batches(examples, budget, d.bucket_width, max(d.max_source_length, d.max_target_length))


def test_the_text_job_builds_token_batches_and_counts_them(tiny_text_config, tmp_path):
    """The training job's dataset (what ``tfs2s train`` fits on) is in token batches, and its epoch length (the
    progress bar's and the learning-rate schedule's) is that dataset's real count; validation is not."""
    from tfs2s.tasks.text.task import TextJob

    budget = 200
    cfg = tiny_text_config("token_batches_job", **{"data.limit": 160, "data.batch_tokens": budget})
    job = TextJob(cfg, str(tmp_path))
    shapes = _shapes(job.train)
    assert all(r * w <= budget or r == 1 for r, w in shapes)
    expected, n = _corpus_count(cfg, str(tmp_path), budget)
    assert job.batches == len(shapes) == expected and expected != math.ceil(n / cfg.data.batch_size)
    assert max(r for r, _ in _shapes(job.validation)) == cfg.data.batch_size


@pytest.mark.slow  # ~20-30 s (a real training run); test_the_text_job_builds_token_batches_and_counts_them covers
# the job's token batches and their count by default
def test_a_tiny_run_trains_on_token_batches_with_the_right_epoch_length(tiny_text_config, tmp_path, capsys):
    """One epoch of 160 Multi30k pairs in token batches; the bar's length is the epoch's real count."""
    from tfs2s.tasks import train

    budget = 200
    cfg = tiny_text_config("token_batches", **{"data.limit": 160, "data.batch_tokens": budget,
                                              "training.bleu_sentences": 20})  # not all 1,014
    run_dir = str(tmp_path / "run")
    capsys.readouterr()
    summary = train(cfg, run_dir, verbose=1)
    out = capsys.readouterr().out
    steps = summary["train_steps"]
    assert "Unknown" not in out and f"{steps}/{steps}" in out
    assert np.isfinite(summary["val_loss"])
    expected, n = _corpus_count(cfg, run_dir, budget)
    assert steps == expected and steps != math.ceil(n / cfg.data.batch_size)
