import numpy as np
import pytest
import tensorflow as tf

from tfs2s.core import decoding as D
from tfs2s.core import features as F
from tfs2s.core.config import DecodingConfig
from tfs2s.core.errors import InputError

V, L, ALPHA = 4, 3, 0.8
TABLE = (np.random.default_rng(0).normal(size=(200, V)) * 2).astype(np.float32)


def _step(ids, state):
    """A hand-built step: logits depend on a hash of the whole prefix, so every path differs."""
    h = (state["h"] * 7 + ids + 3) % 200
    new_state = {"h": h}
    if "alignment" in state:  # the state keeps its keys from step to step
        new_state["alignment"] = tf.one_hot(h % 3, 3)
    return tf.gather(TABLE, h), new_state


def _log_softmax(x):
    return x - np.log(np.exp(x).sum())


def _brute_force(h0, alpha):
    """Every hypothesis of at most L tokens with its GNMT-normalised score, best first."""
    hyps = []

    def expand(h, prefix, log_prob):
        h = (h * 7 + (prefix[-1] if prefix else F.BOS_ID) + 3) % 200
        lp = _log_softmax(TABLE[h])
        for tok in range(V):
            n = len(prefix) + 1
            if tok == F.EOS_ID or n == L:
                hyps.append(((log_prob + lp[tok]) / ((5 + n) / 6) ** alpha, prefix + [tok]))
            else:
                expand(h, prefix + [tok], log_prob + lp[tok])

    expand(h0, [], 0.0)
    return sorted(hyps, key=lambda x: -x[0])


@pytest.mark.parametrize("alpha", [0.0, ALPHA])
def test_wide_beam_matches_exhaustive_search(alpha):
    result = D.beam_search(_step, {"h": tf.constant([0, 5]), "alignment": tf.zeros([2, 3])}, L, beam_width=64,
                           length_penalty_alpha=alpha, n_best=5)
    for b, h0 in enumerate([0, 5]):
        expected = _brute_force(h0, alpha)[:5]
        np.testing.assert_allclose(result["scores"][b].numpy(), [s for s, _ in expected], atol=1e-4)
        for tokens, length, (_, seq) in zip(result["tokens"][b].numpy(), result["lengths"][b].numpy(), expected):
            assert tokens[: len(seq)].tolist() == seq
            assert length == len(seq) - (seq[-1] == F.EOS_ID)
    assert (np.diff(result["scores"].numpy(), axis=1) <= 1e-6).all()  # n-best in order


def test_length_penalty_changes_the_winner():
    # Pick a start state where a strong penalty prefers a longer hypothesis than no penalty does.
    h0 = next(h for h in range(200) if len(_brute_force(h, 3.0)[0][1]) > len(_brute_force(h, 0.0)[0][1]))
    for alpha in (0.0, 3.0):
        out = D.beam_search(_step, {"h": tf.constant([h0])}, L, beam_width=64, length_penalty_alpha=alpha)
        best = _brute_force(h0, alpha)[0][1]
        assert out["tokens"][0, 0].numpy().tolist()[: len(best)] == best


def test_greedy_equals_top1_sampling_and_beam_never_scores_worse():
    state = {"h": tf.constant([0, 5, 9, 13])}
    greedy = D.greedy_search(_step, state, 6)
    top1 = D.sample(_step, state, 6, top_k=1, seed=3)
    np.testing.assert_array_equal(greedy["tokens"].numpy(), top1["tokens"].numpy())
    np.testing.assert_allclose(greedy["log_probs"].numpy(), top1["log_probs"].numpy(), atol=1e-5)
    # Beam search keeps the greedy path's ended hypotheses, so even width 1 scores at least as well.
    for width in (1, 3):
        beam = D.beam_search(_step, state, 6, beam_width=width)
        assert (beam["log_probs"].numpy()[:, 0] >= greedy["log_probs"].numpy()[:, 0] - 1e-5).all()


def test_sampling_is_seeded():
    state = {"h": tf.range(8)}
    a = D.sample(_step, state, 6, temperature=2.0, seed=11)["tokens"].numpy()
    b = D.sample(_step, state, 6, temperature=2.0, seed=11)["tokens"].numpy()
    c = D.sample(_step, state, 6, temperature=2.0, seed=12)["tokens"].numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_alignment_is_collected_and_zero_after_eos():
    state = {"h": tf.constant([0, 5]), "alignment": tf.zeros([2, 3])}
    out = D.greedy_search(_step, state, 5)
    assert out["alignment"].shape == (2, 1, 5, 3)
    for b in range(2):
        n = int(out["lengths"][b, 0]) + 1  # tokens + </s>
        assert np.allclose(out["alignment"][b, 0, :n].numpy().sum(-1), 1.0)
        assert np.all(out["alignment"][b, 0, n:].numpy() == 0)


def test_empty_batch_and_graph_mode():
    fn = tf.function(lambda h: D.beam_search(_step, {"h": h}, 4, beam_width=3, n_best=2))
    out = fn(tf.zeros([0], tf.int32))
    assert out["tokens"].shape == (0, 2, 4)
    out = fn(tf.constant([1, 2]))
    assert out["tokens"].shape == (2, 2, 4)


def test_n_best_larger_than_beam_is_an_error():
    with pytest.raises(ValueError, match="n_best"):
        D.beam_search(_step, {"h": tf.constant([0])}, 3, beam_width=2, n_best=3)


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample"])
def test_per_input_length_limits_make_results_independent_of_the_batch(strategy):
    options = {"beam": dict(beam_width=4, length_penalty=ALPHA, n_best=2), "sample": dict(seed=5)}
    options = D.DecodeOptions(strategy, **options.get(strategy, {}))
    starts, limits = [0, 5, 9], [2, 7, 4]
    batched = D.decode(_step, {"h": tf.constant(starts)}, tf.constant(limits), options)
    for b, (h0, limit) in enumerate(zip(starts, limits)):
        alone = D.decode(_step, {"h": tf.constant([h0])}, limit, options)
        width = alone["tokens"].shape[-1]
        assert width == limit
        if strategy != "sample":  # a sampled row depends on its seed stream, not on its neighbours' limits
            np.testing.assert_array_equal(batched["tokens"][b, :, :width].numpy(), alone["tokens"][0].numpy())
            np.testing.assert_allclose(batched["scores"][b].numpy(), alone["scores"][0].numpy(), atol=1e-5)
            np.testing.assert_array_equal(batched["lengths"][b].numpy(), alone["lengths"][0].numpy())
        assert not batched["tokens"][b, :, width:].numpy().any()  # nothing past its own limit


def test_stopped_inputs_leave_the_beam_batch():
    """An input that is done stops costing rows: the step sees a shrinking batch, and results do not change."""
    seen = []

    def counting(ids, state):
        seen.append(int(ids.shape[0]))
        return _step(ids, state)

    options = dict(beam_width=3, length_penalty_alpha=ALPHA, n_best=2)
    starts, limits = [0, 5, 9, 3], [1, 0, 6, 3]
    out = D.beam_search(counting, {"h": tf.constant(starts)}, tf.constant(limits), **options)
    assert seen[0] == 3 * 3  # the input without room (limit 0) never enters the loop
    assert seen == sorted(seen, reverse=True) and seen[1] == 2 * 3 and seen[-1] <= 3
    assert len(seen) <= max(limits)
    assert not out["tokens"][1].numpy().any() and not out["lengths"][1].numpy().any()
    for b, (h0, limit) in enumerate(zip(starts, limits)):
        if limit:
            alone = D.beam_search(_step, {"h": tf.constant([h0])}, limit, **options)
            np.testing.assert_array_equal(out["tokens"][b, :, :limit].numpy(), alone["tokens"][0].numpy())
            np.testing.assert_allclose(out["scores"][b].numpy(), alone["scores"][0].numpy(), atol=1e-5)


def _repetitive_step(ids, state):
    """Always prefers token 4, then 5, 6, 7, and </s> last: unblocked decoding repeats token 4 forever."""
    logits = tf.constant([-9.0, -9.0, -9.0, 0.0, 5.0, 4.0, 3.0, 2.0])
    return tf.tile(logits[None], [tf.shape(ids)[0], 1]), dict(state)


def _ngrams(tokens, n):
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_no_repeat_ngram_blocking(strategy, n):
    options = {"beam": dict(beam_width=3, n_best=2), "sample": dict(seed=1, temperature=0.5)}.get(strategy, {})
    options = D.DecodeOptions(strategy, **options)
    state = {"h": tf.zeros([2], tf.int32)}
    free = D.decode(_repetitive_step, state, 12, options)
    assert any(len(set(_ngrams(list(row), n))) < len(_ngrams(list(row), n))
               for row in free["tokens"].numpy().reshape(-1, 12))  # the step alone repeats
    out = D.decode(_repetitive_step, state, 12, options.replace(no_repeat_ngram_size=n))
    for tokens, length in zip(out["tokens"].numpy().reshape(-1, 12), out["lengths"].numpy().reshape(-1)):
        hypothesis = [F.BOS_ID] + tokens[:length].tolist()
        assert len(set(_ngrams(hypothesis, n))) == len(_ngrams(hypothesis, n)), hypothesis
    if strategy == "greedy" and n == 1:
        assert out["tokens"][0, 0, :5].numpy().tolist() == [4, 5, 6, 7, F.EOS_ID]


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample"])
def test_min_length_forbids_early_end(strategy):
    def eos_first(ids, state):  # </s> is by far the most likely token at every step
        logits = tf.constant([-9.0, -9.0, -9.0, 5.0, 1.0, 0.5, 0.0, -1.0])
        return tf.tile(logits[None], [tf.shape(ids)[0], 1]), dict(state)

    options = {"beam": dict(beam_width=3), "sample": dict(seed=2, temperature=0.3)}.get(strategy, {})
    options = D.DecodeOptions(strategy, **options)
    state = {"h": tf.zeros([2], tf.int32)}
    assert (D.decode(eos_first, state, 8, options)["lengths"].numpy() == 0).all()
    out = D.decode(eos_first, state, 8, options.replace(min_length=3))
    assert (out["lengths"].numpy() == 3).all()  # ends as soon as it may


def test_decode_runs_the_strategy_its_options_name():
    state = {"h": tf.constant([0, 5, 9])}
    cases = [(D.DecodeOptions("beam", beam_width=3, length_penalty=ALPHA, n_best=2),
              D.beam_search(_step, state, 5, beam_width=3, length_penalty_alpha=ALPHA, n_best=2)),
             (D.DecodeOptions("sample", temperature=3.0, top_k=3, seed=7),
              D.sample(_step, state, 5, temperature=3.0, top_k=3, seed=7)),
             (D.DecodeOptions("greedy"), D.greedy_search(_step, state, 5))]
    for options, expected in cases:
        out = D.decode(_step, state, 5, options)
        assert out.keys() == expected.keys()
        for key in expected:
            np.testing.assert_array_equal(out[key].numpy(), expected[key].numpy())


# A config whose every option differs from DecodeOptions' defaults, so a value read from the wrong place shows.
CONFIG = DecodingConfig(strategy="beam", beam_width=7, length_penalty=0.3, n_best=2, temperature=0.5, top_k=9,
                        no_repeat_ngram_size=2, min_length=3)


def test_options_from_config_read_what_the_strategy_uses():
    defaults = D.DecodeOptions()
    beam = D.DecodeOptions.from_config(CONFIG)  # the config's strategy
    assert (beam.strategy, beam.beam_width, beam.length_penalty, beam.n_best) == ("beam", 7, 0.3, 2)
    sample = D.DecodeOptions.from_config(CONFIG, "sample")
    assert (sample.strategy, sample.temperature, sample.top_k, sample.seed) == ("sample", 0.5, 9, defaults.seed)
    greedy = D.DecodeOptions.from_config(CONFIG, "greedy")
    for options in (beam, sample, greedy):  # the constraints apply to every strategy
        assert (options.no_repeat_ngram_size, options.min_length) == (2, 3)
    # Options of another strategy keep DecodeOptions' defaults rather than the config's values.
    assert (beam.temperature, beam.top_k) == (defaults.temperature, defaults.top_k)
    assert (sample.beam_width, sample.length_penalty, sample.n_best) == (
        defaults.beam_width, defaults.length_penalty, defaults.n_best)
    assert greedy == D.DecodeOptions("greedy", no_repeat_ngram_size=2, min_length=3)


def test_options_from_config_apply_overrides():
    options = D.DecodeOptions.from_config(CONFIG, "sample", seed=4, top_k=2, min_length=0)
    assert (options.seed, options.top_k, options.min_length, options.temperature) == (4, 2, 0, 0.5)
    assert D.DecodeOptions.from_config(CONFIG, beam_width=3).beam_width == 3
    assert D.DecodeOptions.from_config(CONFIG, "greedy", no_repeat_ngram_size=0).no_repeat_ngram_size == 0


@pytest.mark.parametrize("strategy, option", [("greedy", "beam_width"), ("greedy", "temperature"),
                                              ("beam", "top_k"), ("beam", "seed"), ("sample", "n_best"),
                                              ("sample", "length_penalty"), ("beam", "strategyy")])
def test_an_override_the_strategy_does_not_use_is_an_input_error(strategy, option):
    with pytest.raises(InputError, match=f"'{option}'.*{strategy}"):
        D.DecodeOptions.from_config(CONFIG, strategy, **{option: 1})


def test_an_unknown_strategy_is_an_input_error():
    with pytest.raises(InputError, match="'nucleus'"):
        D.DecodeOptions.from_config(CONFIG, "nucleus")
    with pytest.raises(InputError, match="'nucleus'"):
        D.DecodeOptions("nucleus")
    with pytest.raises(InputError, match="'nucleus'"):
        D.DecodeOptions().replace(strategy="nucleus")


def test_options_replace_copies_and_key_identifies():
    options = D.DecodeOptions("beam", beam_width=4)
    wider = options.replace(beam_width=8, n_best=3)
    assert (wider.strategy, wider.beam_width, wider.n_best) == ("beam", 8, 3)
    assert options.beam_width == 4 and options.n_best == 1  # the original is unchanged
    with pytest.raises(Exception):
        options.beam_width = 2  # frozen
    assert options.key() == D.DecodeOptions("beam", beam_width=4).key()
    assert options.key() != wider.key() and hash(options.key()) == hash(D.DecodeOptions("beam", beam_width=4).key())


# --------------------------------------------------------------------------- <unk> replacement (in-graph)
def _replace(tokens, ids, alignment, words, lengths, reversed_source=False):
    from tfs2s.core.decoding.unk import replace_unknown_tokens

    out = replace_unknown_tokens(tf.constant(tokens), tf.constant(ids), tf.constant(alignment, tf.float32),
                                 words if isinstance(words, tf.RaggedTensor) else tf.ragged.constant(words),
                                 tf.constant(lengths), reversed_source)
    return [[[t.decode() for t in row] for row in beam] for beam in out.numpy()]


ALIGN = [  # [B=2, N=1, L=3, S=4]: encoder positions 0-2 words, then </s>/padding
    [[[0.1, 0.7, 0.1, 0.1], [0.0, 0.0, 0.0, 1.0], [0.6, 0.2, 0.2, 0.0]]],
    [[[0.2, 0.3, 0.1, 0.4], [0.9, 0.1, 0.0, 0.0], [0.1, 0.1, 0.1, 0.7]]],
]
TOKENS = [[["<unk>", "<unk>", "<unk>"]], [["a", "<unk>", ""]]]
IDS = [[[1, 1, 1]], [[5, 1, 0]]]


def test_unknown_words_become_the_most_attended_source_word():
    """Known alignments: the argmax over the words read (never </s> or padding, even where it weighs most)."""
    words = [["Kaffee", "Bern", "Zürich", "extra"], ["Hund", "Bello"]]
    got = _replace(TOKENS, IDS, ALIGN, words, [3, 2])
    # Row 0: position 1, then position 3 is </s> so the best word (all 0) is the first, then position 0.
    assert got[0] == [["Bern", "Kaffee", "Kaffee"]]
    # Row 1 read 2 words: step 1 attends to position 0; "a" and the padding "" are no <unk> ids.
    assert got[1] == [["a", "Hund", ""]]


def test_unknown_replacement_with_reversed_source_and_agrees_with_the_python_reference():
    from tfs2s.core.decoding.unk import replace_unknown_words

    words = [["Kaffee", "Bern", "Zürich", "extra"], ["Hund", "Bello"]]
    got = _replace(TOKENS, IDS, ALIGN, words, [3, 2], reversed_source=True)
    # Reversed, encoder position p held word (length - 1 - p): row 0 reads "Zürich Bern Kaffee".
    assert got[0] == [["Bern", "Zürich", "Zürich"]] and got[1] == [["a", "Bello", ""]]
    for b, n in enumerate([3, 2]):
        for reverse in (False, True):
            length = sum(1 for i in IDS[b][0] if i)
            expected = replace_unknown_words(TOKENS[b][0][:length], np.array(ALIGN[b][0]), words[b][:n],
                                             reversed_source=reverse)
            assert _replace(TOKENS, IDS, ALIGN, words, [3, 2], reverse)[b][0][:length] == expected


def test_unknown_words_stay_where_the_source_has_no_word():
    got = _replace([[["<unk>", "b"]]], [[[1, 6]]], [[[[1.0], [1.0]]]], [["<pad>"]], [0])
    assert got == [[["<unk>", "b"]]]
    empty = _replace(np.zeros([0, 1, 2], bytes), np.zeros([0, 1, 2], np.int32), np.zeros([0, 1, 2, 1]),
                     tf.ragged.constant([], dtype=tf.string, ragged_rank=1), np.zeros([0], np.int32))
    assert empty == []
