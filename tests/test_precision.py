"""Mixed precision (``training.precision``): a tiny text model trains and decodes under each policy on CPU.

Each policy trains a tiny word model (tests/data/own) for two steps through ``tfs2s.tasks.train`` (the path every run
takes), keeping the built models and the per-step losses; the tests then read the models: 16-bit computation,
float32 variables, float32 finite losses, loss scaling for float16, finite decoding scores, the global policy
restored, and ``load`` of a 16-bit run serving float32. The export of a bfloat16 run (SavedModel and ONNX,
reloaded and compared with the Keras model) is behind ``-m slow``.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.core.config import load_config
from tfs2s.core.losses import MaskedCrossEntropy
from tfs2s.tasks import load, train
from tfs2s.tasks.text.predictor import Translator
from tfs2s.tasks.text.task import TextJob
from tfs2s.training.precision import policy_scope

OWN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "own")
POLICIES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}  # -> compute dtype
SENTENCES = ["con chó đỏ chạy .", "con chó đỏ ngủ .", "", "con chó bơi ."]


class _Losses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(logs["loss"])


def _config(precision: str):
    """A tiny word model on the synthetic corpus of tests/data/own (375 pairs, 10 % held out for validation, so
    the validation passes of a run take little time)."""
    return load_config(None, {
        "name": f"precision_{precision}", "data.corpus": "files", "data.train": [os.path.join(OWN, "train.vi"),
                                                                                  os.path.join(OWN, "train.en")],
        "data.validation_fraction": 0.1, "data.test_fraction": 0.0, "data.tokenizer": "word",
        "data.min_frequency": 1, "data.batch_size": 16, "data.max_source_length": 12, "model.hidden": 16,
        "model.embedding_dim": 8, "model.attention_units": 8, "training.epochs": 1, "training.steps_per_epoch": 2,
        "training.early_stopping_patience": 0, "training.bleu_sentences": 4, "training.precision": precision,
        "decoding.beam_width": 3, "decoding.n_best": 2})


def _train(tmp_path_factory, precision: str):
    """(run_dir, config, the job's built models, its tokenizers, per-step losses) of a two-step run."""
    run_dir = str(tmp_path_factory.mktemp(precision) / "run")
    cfg = _config(precision)
    built = {}
    original = TextJob.build

    def build(job):
        built["models"], built["job"] = original(job), job
        return built["models"]

    losses = _Losses()
    TextJob.build = build  # the models train_run builds (under the policy), kept for the tests
    try:
        train(cfg, run_dir, verbose=0, extra_callbacks=[losses])
    finally:
        TextJob.build = original
    job = built["job"]
    return run_dir, cfg, built["models"], (job.source_tok, job.target_tok), losses.losses


# float32 is every other test's policy: its run here (about 15 s) is a baseline, behind -m slow.
@pytest.fixture(scope="module", params=[pytest.param("float32", marks=pytest.mark.slow), "mixed_bfloat16",
                                        "mixed_float16"])
def trained(request, tmp_path_factory):
    return request.param, *_train(tmp_path_factory, request.param)


def test_trains_in_16_bits_with_float32_variables_and_losses(trained):
    precision, _, _, models, _, losses = trained
    model = models.training
    assert model.dtype_policy.name == precision
    assert {w.dtype for w in model.weights} == {"float32"}
    assert keras.config.dtype_policy().name == "float32", "the policy leaked out of the build"
    assert len(losses) == 2 and np.all(np.isfinite(losses)), losses
    # One batch: the logits are in the policy's compute dtype, the loss on them float32 and finite.
    source = tf.constant([[5, 6, 7, F.EOS_ID], [8, 9, F.EOS_ID, 0]], tf.int32)
    target_in = tf.constant([[F.BOS_ID, 5, 6], [F.BOS_ID, 7, 0]], tf.int32)
    logits = model({F.ENCODER_TOKEN_IDS: source, F.DECODER_TOKEN_IDS: target_in}, training=False)
    assert logits.dtype.name == POLICIES[precision]
    loss = MaskedCrossEntropy(label_smoothing=0.1)(tf.constant([[5, 6, F.EOS_ID], [7, F.EOS_ID, 0]]), logits)
    assert loss.dtype == tf.float32 and np.isfinite(loss.numpy())


def test_float16_uses_dynamic_loss_scaling(trained):
    precision, *_, models, _, _ = trained
    optimizer = models.training.optimizer
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (precision == "mixed_float16")
    if scaled:
        assert optimizer.dynamic_growth_steps > 0
        scale = float(optimizer.dynamic_scale.numpy())
        assert 1.0 <= scale <= 2.0 ** 15 and np.isfinite(scale)


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_decoding_scores_stay_finite(trained, strategy):
    precision, _, cfg, models, (source_tok, target_tok), _ = trained
    translator = Translator(models, source_tok, target_tok, cfg)
    out = translator.translate_batch(SENTENCES, strategy=strategy)
    assert out["scores"].dtype == np.float32
    assert np.all(np.isfinite(out["scores"])) and np.all(out["scores"] <= 0), out["scores"]
    assert out["text"].shape[1] == (2 if strategy == "beam" else 1)
    # The step contract hands decoders float32 logits; <pad>/<s> banned with a finite score.
    state = models.initial_state(translator.encode(tf.constant(SENTENCES)))
    logits, new_state = models.step(tf.fill([len(SENTENCES)], F.BOS_ID), state)
    assert logits.dtype == tf.float32 and np.all(np.isfinite(logits.numpy()))
    assert {v.dtype for v in new_state.values() if v.dtype.is_floating} == {tf.float32}


def test_a_16_bit_run_loads_in_float32_with_its_trained_weights(trained):
    precision, run_dir, _, models, _, _ = trained
    if precision == "float32":
        pytest.skip("nothing to convert")
    translator = load(run_dir)
    served = translator.models.training
    assert served.dtype_policy.name == "float32"
    assert translator.models.step(tf.constant([F.BOS_ID]), translator.models.initial_state(
        tf.constant([[5, F.EOS_ID]])))[0].dtype == tf.float32
    # The in-memory models hold the best weights already (train_run reloads them); the loaded float32 model has
    # exactly those values (built in the same order: same variables, same shapes).
    models.training.load_weights(os.path.join(run_dir, "checkpoints", "best.weights.h5"))
    assert len(served.weights) == len(models.training.weights)
    for loaded, trained_weight in zip(served.weights, models.training.weights):
        assert loaded.dtype == "float32"
        np.testing.assert_array_equal(loaded.numpy(), trained_weight.numpy())


def test_policy_scope_restores_the_global_policy():
    with pytest.raises(ValueError, match="unknown precision"):
        with policy_scope("float64"):
            pass
    keras.config.set_dtype_policy("float32")
    with pytest.raises(RuntimeError):
        with policy_scope("mixed_bfloat16"):
            assert keras.layers.Dense(2).compute_dtype == "bfloat16"
            raise RuntimeError("restored even on errors")
    assert keras.config.dtype_policy().name == "float32"
    assert keras.layers.Dense(2).compute_dtype == "float32"


@pytest.mark.slow  # an export with ONNX graphs (about 60 s); the default test_a_16_bit_run_loads_in_float32_...
# covers what it serves: the float32 rebuild of the run with the trained weights, which the export checks compare
def test_export_of_a_bfloat16_run_serves_float32(trained, tmp_path, run_cli):
    import json

    from tfs2s.export.onnx.runtime import OnnxTranslator

    precision, run_dir, *_ = trained
    if precision != "mixed_bfloat16":
        pytest.skip("one export, of the bfloat16 run")
    code, out, err = run_cli("export", "--run-dir", run_dir, "--export-dir", str(tmp_path), "--onnx")
    assert code == 0, err
    report = json.loads(out)
    assert report["verified"], report  # the SavedModel's parity checks against the loaded (float32) model
    translator = load(run_dir)
    ids = translator.encode(tf.constant(SENTENCES)).numpy()
    onnx = OnnxTranslator(report["export"])
    for strategy in ("greedy", "beam"):
        expected = translator.decode_ids(tf.constant(ids), translator.options(strategy), alignment=False)
        got = onnx.translate_ids(ids, strategy)
        np.testing.assert_array_equal(got["tokens"], expected["tokens"].numpy())
        assert got["scores"].dtype == np.float32
        np.testing.assert_allclose(got["scores"], expected["scores"].numpy(), atol=1e-4)
    loaded = tf.saved_model.load(report["export"])
    served = loaded.signatures["translate_ids_greedy"](encoder_token_ids=tf.constant(ids))
    assert served["scores"].dtype == tf.float32


@pytest.mark.parametrize("options", [dict(strategy="greedy"), dict(strategy="beam", beam_width=3, n_best=2),
                                     dict(strategy="greedy", no_repeat_ngram_size=2),
                                     dict(strategy="sample", top_k=2)], ids=["greedy", "beam", "no_repeat", "sample"])
def test_searches_score_a_float16_step_in_float32(options):
    """A raw float16 step (its -1e9 is -inf in float16) still gives finite float32 scores and the best tokens."""
    from tfs2s.core.decoding import DecodeOptions, decode

    vocab = 7
    banned = tf.one_hot(F.PAD_ID, vocab) * -1e9  # -inf once in float16

    def step(ids, state):
        return tf.cast(tf.one_hot((ids + 2) % vocab, vocab) * 5.0 + banned[None], tf.float16), state

    result = decode(step, {"h": tf.zeros([3, 2])}, 4, DecodeOptions(**options))
    scores = result["scores"].numpy()
    assert scores.dtype == np.float32 and np.all(np.isfinite(scores)), scores
    if options["strategy"] == "greedy" and "no_repeat_ngram_size" not in options:
        expected = [(F.BOS_ID + 2 * (i + 1)) % vocab for i in range(4)]  # 4, 6, <unk>, </s>
        np.testing.assert_array_equal(result["tokens"].numpy()[:, 0], [expected] * 3)
