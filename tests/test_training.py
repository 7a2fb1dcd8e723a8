import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfs2s.core.config import load_config
from tfs2s.tasks import load, train
from tfs2s.tasks.text.predictor import Translator

TINY = {"data.limit": 160, "data.batch_size": 16, "data.min_frequency": 1, "model.hidden": 16,
        "model.embedding_dim": 8, "model.attention_units": 8, "training.bleu_sentences": 20,
        "training.early_stopping_patience": 0}


class _Kill(keras.callbacks.Callback):
    """Simulates a killed process in the middle of epoch 2."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 3:
            raise KeyboardInterrupt


def _epochs(run_dir):
    with open(os.path.join(run_dir, "history.jsonl")) as f:
        return [r["epoch"] for r in map(json.loads, f) if r["event"] == "epoch"]


def test_resume_after_interruption(data_dir, tmp_path):
    cfg = load_config(None, {**TINY, "data.data_dir": data_dir, "training.epochs": 3})
    run_dir = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run_dir, verbose=0, extra_callbacks=[_Kill()])
    assert _epochs(run_dir) == [1]
    assert os.path.exists(os.path.join(run_dir, "backup", "latest.weights.h5"))
    clock_before = json.load(open(os.path.join(run_dir, "clock.json")))["train_steps"]

    summary = train(cfg, run_dir, verbose=0)
    # Epoch 1 is not trained again: the run continues with epochs 2 and 3.
    assert _epochs(run_dir) == [1, 2, 3]
    assert summary["train_steps"] > clock_before
    assert not os.path.exists(os.path.join(run_dir, "backup"))  # removed after a normal finish
    for name in ("config.json", "source_vocab.txt", "target_vocab.txt", "checkpoints/best.weights.h5",
                 "summary.json"):
        assert os.path.exists(os.path.join(run_dir, name)), name

    # Training a finished run again changes nothing (it must not overwrite the trained checkpoints).
    best = os.path.join(run_dir, "checkpoints", "best.weights.h5")
    before = (os.path.getmtime(best), open(best, "rb").read())
    assert train(cfg, run_dir, verbose=0) == summary
    assert (os.path.getmtime(best), open(best, "rb").read()) == before

    translator = load(run_dir)
    assert translator.config == cfg
    out = translator.translate(["Ein Mann.", "", "   "], strategy="beam")
    assert out[1] == "" and out[2] == ""


def _optimizer_steps(run_dir):
    import h5py

    with h5py.File(os.path.join(run_dir, "checkpoints", "last.weights.h5"), "r") as f:
        return int(f["optimizer/vars/0"][()])  # Keras optimizers keep `iterations` first


@pytest.mark.slow  # about 25 s; tests/test_captioning.py extends a finished run by default
def test_extend_a_finished_run(data_dir, tmp_path):
    from tfs2s.core.config import ConfigError

    cfg = load_config(None, {**TINY, "data.data_dir": data_dir, "training.epochs": 2})
    run_dir = str(tmp_path / "run")
    first = train(cfg, run_dir, verbose=0)
    steps = _optimizer_steps(run_dir)
    with pytest.raises(ConfigError, match="nothing to extend.*training.epochs=2"):
        train(cfg, run_dir, verbose=0, extend=True)  # the same budget allows no more

    longer = load_config(None, {**TINY, "data.data_dir": data_dir, "training.epochs": 3})
    summary = train(longer, run_dir, verbose=0, extend=True)
    assert _epochs(run_dir) == [1, 2, 3]
    # The optimizer went on from its saved state: a fresh one would count only epoch 3's steps. (Keras counts
    # one more optimizer iteration per epoch than it trains steps: the call that finds the data exhausted.)
    assert _optimizer_steps(run_dir) > steps
    assert summary["train_steps"] > first["train_steps"]
    assert json.load(open(os.path.join(run_dir, "summary.previous.json"))) == first
    assert not os.path.exists(os.path.join(run_dir, "backup"))
    assert load(run_dir).config == longer

    with pytest.raises(ConfigError, match="nothing to extend: .* holds no training run"):
        train(longer, str(tmp_path / "empty"), verbose=0, extend=True)


def test_a_run_goes_on_only_under_its_own_configuration(data_dir, tmp_path):
    from tfs2s.core.config import ConfigError

    cfg = load_config(None, {**TINY, "data.data_dir": data_dir, "training.epochs": 1, "training.steps_per_epoch": 1})
    run_dir = str(tmp_path / "run")
    summary = train(cfg, run_dir, verbose=0)
    other = load_config(None, {**TINY, "data.data_dir": data_dir, "training.epochs": 1,
                               "training.steps_per_epoch": 1, "model.hidden": 32, "data.limit": 100})
    with pytest.raises(ConfigError, match=r"data.limit: 160 -> 100; model.hidden: 16 -> 32"):
        train(other, run_dir, verbose=0)
    # Budget, monitoring and decoding may change.
    same = load_config(None, {**TINY, "data.data_dir": data_dir, "training.epochs": 1, "training.steps_per_epoch": 1,
                              "training.max_minutes": 5, "decoding.beam_width": 3, "name": "renamed"})
    assert train(same, run_dir, verbose=0) == summary


def test_backup_inside_a_resumed_epoch_records_that_epoch(tmp_path):
    """Keras' BackupAndRestore counts epochs from 0 in every process, so a resumed run killed again before its
    first epoch end would have restarted at epoch 0."""
    from tfs2s.training.callbacks import ResumableBackup, TrainingClock

    class KillAt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 3:
                raise KeyboardInterrupt

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    backup = str(tmp_path / "backup")
    callback = ResumableBackup(backup, save_freq=2, clock=TrainingClock(0, 1, str(tmp_path / "clock.json")))
    x = np.zeros((8, 2), np.float32)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, x[:, :1], batch_size=1, epochs=5, initial_epoch=3, callbacks=[callback, KillAt()], verbose=0)
    with open(os.path.join(backup, "training_metadata.json")) as f:
        assert json.load(f)["epoch"] == 3


def test_plateau_and_early_stopping_go_on_counting_after_a_resume(tmp_path):
    """Keras resets both in on_train_begin: a resumed run took its first epoch for an improvement whatever its
    loss. Logged: 3.0, 2.5, 2.6 (plateau: learning rate halved), 2.7 (halved again); patience 3 has 2 left."""
    from tfs2s.training.callbacks import monitor_callbacks

    history = tmp_path / "history.jsonl"
    with open(history, "w") as f:
        for epoch, loss in enumerate([3.0, 2.5, 2.6, 2.7], 1):
            f.write(json.dumps({"event": "epoch", "epoch": epoch, "val_loss": loss}) + "\n")
            f.write(json.dumps({"event": "bleu", "epoch": epoch, "greedy_bleu": 1.0}) + "\n")
    cfg = load_config(None, {"training.lr_schedule": "plateau", "training.early_stopping_patience": 3})

    def resume(losses):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(keras.optimizers.Adam(1e-3), "mse")
        plateau, stopping = monitor_callbacks(cfg.training, str(history))
        for callback in (plateau, stopping):
            callback.set_model(model)
            callback.on_train_begin()
        for epoch, loss in enumerate(losses, 4):
            for callback in (plateau, stopping):
                callback.on_epoch_end(epoch, {"val_loss": loss})
        return float(model.optimizer.learning_rate), plateau.best, model.stop_training

    assert resume([2.8]) == (pytest.approx(5e-4), 2.5, True)  # no better than 2.5: halved, and out of patience
    assert resume([2.4]) == (pytest.approx(1e-3), 2.4, False)
    assert resume([2.45, 2.6]) == (pytest.approx(5e-4), 2.45, False)  # an improvement resets both counts
    history.unlink()  # a fresh run: the first epoch is the best so far
    assert resume([2.8]) == (pytest.approx(1e-3), 2.8, False)


@pytest.mark.parametrize("init", ["unigram", "zeros"])
def test_training_starts_from_the_configured_output_bias(data_dir, tmp_path, init):
    """One step at a negligible learning rate leaves the initial bias in the checkpoint: the log frequencies of
    the training targets as ``count_target_tokens`` counts them (``</s>`` included, padding not), or zeros."""
    from tfs2s.data import corpora
    from tfs2s.core import text_data as data
    from tfs2s.tasks.text.task import count_target_tokens

    cfg = load_config(None, {**TINY, "data.data_dir": data_dir, "training.epochs": 1, "training.steps_per_epoch": 1,
                             "training.learning_rate": 1e-12, "training.output_bias_init": init})
    run_dir = str(tmp_path / "run")
    train(cfg, run_dir, verbose=0)
    translator = load(run_dir)
    models, s, t = translator.models, translator.source_tokenizer, translator.target_tokenizer
    bias = models.training.get_layer("output_projection").bias.numpy()
    if init == "zeros":
        np.testing.assert_allclose(bias, 0.0, atol=1e-6)
        return
    pairs = corpora.load_split(cfg.data, "train", cfg.data.limit)
    ds = data.make_dataset(pairs, s, t, batch_size=16, max_source_length=cfg.data.max_source_length,
                           max_target_length=cfg.data.max_target_length)
    tokens, batches, counts = count_target_tokens(ds, t.vocab_size)
    # Recounted from the tokenizer alone: each target ends with </s> (id 3); longer targets are dropped.
    by_hand = np.zeros(t.vocab_size, np.int64)
    for ids in t.tokenize(tf.constant([target for _, target in pairs])).to_list():
        if len(ids) + 1 <= cfg.data.max_target_length:
            np.add.at(by_hand, ids + [3], 1)
    np.testing.assert_array_equal(counts, by_hand)
    assert tokens == counts.sum() and batches == 10
    assert counts[0] == 0 and counts[2] == 0  # <pad>, <s>
    np.testing.assert_allclose(bias, np.log((counts + 1) / (counts + 1).sum()), atol=1e-5)


def test_load_errors_name_what_is_missing(tmp_path):
    from tfs2s.core.errors import RunNotFoundError

    with pytest.raises(RunNotFoundError, match="config.json"):
        load(str(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["cross_entropy", "sampled_softmax"])
def test_convergence_on_synthetic_reversal(tmp_path, loss):
    """The model must learn to reverse digit strings (a quality floor on a task with one right answer), with the
    full softmax and with a sampled one (8 of the 24 words per step, lazy Adam)."""
    from tfs2s.core import text_data as data
    from tfs2s.core.tokenizers import learn_tokenizer
    from tfs2s.tasks.text.task import build_run_models
    from tfs2s.training.fit import compile_model

    rng = np.random.default_rng(0)
    words = [str(d) for d in range(10)] + list("abcdefghij")

    def make(n):
        pairs = []
        for _ in range(n):
            seq = list(rng.choice(words, size=rng.integers(3, 9)))
            pairs.append((" ".join(seq), " ".join(reversed(seq))))
        return pairs

    train_pairs, test_pairs = make(6000), make(200)
    s = learn_tokenizer("word", [p[0] for p in train_pairs], str(tmp_path / "s.txt"), 100)
    t = learn_tokenizer("word", [p[1] for p in train_pairs], str(tmp_path / "t.txt"), 100)
    cfg = load_config(None, {"model.hidden": 64, "model.embedding_dim": 32, "model.attention_units": 32,
                             "model.dropout": 0.0, "training.label_smoothing": 0.0, "data.max_source_length": 16,
                             "data.max_target_length": 16, "decoding.strategy": "greedy", "training.loss": loss,
                             "training.sampled_softmax_samples": 8,
                             "training.optimizer": "lazy_adam" if loss == "sampled_softmax" else "adam"})
    keras.utils.set_random_seed(0)
    models = build_run_models(cfg, s.vocab_size, t.vocab_size)
    compile_model(models, cfg, 100)
    ds = data.make_dataset(train_pairs, s, t, batch_size=64, max_source_length=16, max_target_length=16,
                           training=True, seed=0, bucket_width=2)
    models.training.fit(ds, epochs=6, verbose=0)
    hyps = Translator(models, s, t, cfg).translate([p[0] for p in test_pairs], strategy="greedy")
    exact = np.mean([h == ref for h, (_, ref) in zip(hyps, test_pairs)])
    assert exact >= 0.9, exact


def test_sampled_softmax_run_trains_evaluates_and_reloads(data_dir, tmp_path):
    cfg = load_config(None, {**TINY, "data.data_dir": data_dir, "training.epochs": 2,
                             "training.loss": "sampled_softmax", "training.sampled_softmax_samples": 20})
    run_dir = str(tmp_path / "run")
    summary = train(cfg, run_dir, verbose=0)
    with open(os.path.join(run_dir, "history.jsonl")) as f:
        epochs = [r for r in map(json.loads, f) if r["event"] == "epoch"]
    assert len(epochs) == 2 and "val_perplexity" in epochs[0] and "perplexity" not in epochs[0]
    assert epochs[1]["loss"] < epochs[0]["loss"]
    # Validation uses the full softmax: a perplexity over the whole vocabulary (a uniform model scores vocab size).
    assert 1.0 < summary["val_perplexity"] < summary["target_vocab_size"]
    translator = load(run_dir)
    assert translator.config.training.loss == "sampled_softmax"
    assert translator.translate(["Ein Mann.", ""], strategy="greedy")[1] == ""


def test_sampled_softmax_needs_fewer_samples_than_words(data_dir, tmp_path):
    from tfs2s.core.config import ConfigError

    with pytest.raises(ConfigError, match="sampled_softmax_samples .* data.target_vocab_size"):
        load_config(None, {"training.loss": "sampled_softmax", "training.sampled_softmax_samples": 20000})
    # The learned vocabulary can be smaller than the configured bound: checked before any training.
    cfg = load_config(None, {**TINY, "data.data_dir": data_dir, "training.loss": "sampled_softmax",
                             "training.sampled_softmax_samples": 5000})
    with pytest.raises(ConfigError, match=r"smaller than the target vocabulary, which has \d+ words"):
        train(cfg, str(tmp_path / "run"), verbose=0)


def _fit_unknown_cardinality(callbacks, capsys, epochs=2):
    """Fits a one-weight model for two epochs on 5 batches of a dataset whose cardinality tf.data cannot know."""
    import keras as K
    import tensorflow as tf_

    data = tf_.data.Dataset.range(10).filter(lambda x: x >= 0).map(
        lambda x: (tf_.cast([x], tf_.float32), tf_.cast([x], tf_.float32))).batch(2)
    assert int(data.cardinality()) == tf_.data.UNKNOWN_CARDINALITY
    model = K.Sequential([K.Input([1]), K.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    capsys.readouterr()
    model.fit(data, epochs=epochs, verbose=1, callbacks=callbacks)
    return capsys.readouterr().out


def test_progress_bar_knows_the_epoch_length_from_the_first_epoch(capsys):
    from tfs2s.training.callbacks import EpochProgbar

    assert "Unknown" in _fit_unknown_cardinality([], capsys)  # Keras' own bar, first epoch
    out = _fit_unknown_cardinality([EpochProgbar(5)], capsys)
    assert "Unknown" not in out and "5/5" in out


def test_progress_bar_takes_the_real_count_after_a_wrong_guess(capsys):
    from tfs2s.training.callbacks import EpochProgbar

    bar = EpochProgbar(7)  # bucketing: the counted pass had 7 batches, this one has 5
    out = _fit_unknown_cardinality([bar], capsys)
    assert "Unknown" not in out and bar.target == 5
