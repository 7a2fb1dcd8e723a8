"""Checkpoint averaging: training.average_checkpoints keeps the last N epochs' weights (also across an interrupted
and resumed run) and makes their average the run's final model; `tfs2s average` does it again afterwards."""

import json
import os
import shutil

import h5py
import keras
import numpy as np
import pytest

from tfs2s.core.config import ModelConfig
from tfs2s.core.models import build_models
from tfs2s.tasks import load, train
from tfs2s.training.averaging import average_weight_files, epoch_checkpoint_path, kept_epochs
from tfs2s.training.run_dir import checkpoint_path


class _Kill(keras.callbacks.Callback):
    """Simulates a killed process in the first batch of epoch 3 (after epoch 2's weights were kept)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 2:
            raise KeyboardInterrupt


def _model_arrays(path: str) -> dict:
    """The model's float arrays in a weights file (not the optimizer's), by dataset name."""
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f"
                     and not name.startswith("optimizer/") else None)
    return arrays


@pytest.fixture(scope="module")
def averaged_run(tmp_path_factory, tiny_text_config):
    """A tiny run with every regularisation switch on, keeping 2 of its 3 epochs, killed in epoch 3 and resumed
    (two short fits: about 30 s on an idle machine, 60 s on a busy one)."""
    cfg = tiny_text_config("averaging", **{"data.limit": 160, "training.epochs": 3, "training.steps_per_epoch": 2,
                                           "training.average_checkpoints": 2, "model.variational_dropout": 0.2,
                                           "model.weight_dropout": 0.2, "model.embedding_dropout": 0.1})
    run_dir = str(tmp_path_factory.mktemp("averaging") / "run")
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run_dir, verbose=0, extra_callbacks=[_Kill()])
    kept_when_killed = kept_epochs(run_dir)
    summary = train(cfg, run_dir, verbose=0)
    return run_dir, cfg, kept_when_killed, summary


def test_average_of_checkpoints_is_the_mean_of_their_variables(tmp_path):
    keras.utils.set_random_seed(0)
    m = build_models(ModelConfig(embedding_dim=8, hidden=16, attention_units=8, weight_dropout=0.3), 30, 25)
    rng = np.random.default_rng(0)
    values, paths = [], []
    for i in range(3):
        weights = [rng.normal(0, 1, w.shape).astype(np.float32) for w in m.training.get_weights()]
        m.training.set_weights(weights)
        values.append(weights)
        paths.append(str(tmp_path / f"{i}.weights.h5"))
        m.training.save_weights(paths[-1])
    average_weight_files(paths, str(tmp_path / "mean.weights.h5"))
    m.training.load_weights(str(tmp_path / "mean.weights.h5"))
    for got, *each in zip(m.training.get_weights(), *values):
        np.testing.assert_allclose(got, np.mean(each, axis=0), rtol=1e-6, atol=1e-7)
    assert not np.allclose(m.training.get_weights()[0], values[-1][0])
    # Checkpoints of another model are refused, naming what differs.
    other = build_models(ModelConfig(embedding_dim=8, hidden=8, attention_units=8), 30, 25)
    other.training.save_weights(str(tmp_path / "other.weights.h5"))
    with pytest.raises(ValueError, match="not of one model"):
        average_weight_files([paths[0], str(tmp_path / "other.weights.h5")], str(tmp_path / "bad.weights.h5"))
    assert not os.path.exists(tmp_path / "bad.weights.h5")


def test_training_keeps_the_last_epochs_across_a_resume_and_ends_on_their_average(averaged_run):
    run_dir, cfg, kept_when_killed, summary = averaged_run
    assert kept_when_killed == [1, 2]  # kept before the kill
    assert kept_epochs(run_dir) == [2, 3] and summary["epochs_run"] == 3  # the resumed run numbers on
    assert os.path.exists(checkpoint_path(run_dir, "best_epoch"))  # the single best epoch is kept too
    final = _model_arrays(checkpoint_path(run_dir, "best"))
    parts = [_model_arrays(epoch_checkpoint_path(run_dir, e)) for e in (2, 3)]
    assert sorted(final) == sorted(parts[0]) and final
    for name, value in final.items():
        np.testing.assert_allclose(value, (parts[0][name].astype(np.float64) + parts[1][name]) / 2, rtol=1e-6,
                                   atol=1e-7, err_msg=name)
    assert any(not np.array_equal(parts[0][n], parts[1][n]) for n in final)  # the epochs differ
    with open(os.path.join(run_dir, "checkpoints", "average.json")) as f:
        assert json.load(f)["averaged_epochs"] == [2, 3]
    with open(os.path.join(run_dir, "config.json")) as f:
        assert json.load(f)["training"]["average_checkpoints"] == 2
    # What evaluate / export / translate load is the average.
    model = load(run_dir).models.training
    loaded = [np.asarray(w) for w in model.weights]
    epochs = []
    for e in (2, 3):
        model.load_weights(epoch_checkpoint_path(run_dir, e))
        epochs.append([np.asarray(w) for w in model.weights])
    floats = [i for i, w in enumerate(loaded) if w.dtype.kind == "f"]
    assert floats and any(not np.array_equal(loaded[i], epochs[1][i]) for i in floats)
    for i in floats:
        np.testing.assert_allclose(loaded[i], (epochs[0][i].astype(np.float64) + epochs[1][i]) / 2, rtol=1e-6,
                                   atol=1e-7)


def test_average_command_reaverages_and_records_it(averaged_run, run_cli, tmp_path):
    source_dir = averaged_run[0]
    run_dir = str(tmp_path / "copy")
    shutil.copytree(source_dir, run_dir)
    code, out, err = run_cli("average", "--run-dir", run_dir, "--last", "1")
    assert code == 0, err
    assert json.loads(out)["averaged_epochs"] == [3]
    final, last = (_model_arrays(p) for p in (checkpoint_path(run_dir, "best"), epoch_checkpoint_path(run_dir, 3)))
    for name in final:
        np.testing.assert_array_equal(final[name], last[name])
    with open(os.path.join(run_dir, "config.json")) as f:
        assert json.load(f)["training"]["average_checkpoints"] == 1
    with open(os.path.join(run_dir, "summary.json")) as f:
        assert json.load(f)["averaged_epochs"] == [3]
    code, out, err = run_cli("average", "--run-dir", run_dir)  # default: the recorded count (now 1)
    assert code == 0 and json.loads(out)["averaged_epochs"] == [3]


def test_average_command_explains_what_it_cannot_do(averaged_run, run_cli, tmp_path):
    run_dir = averaged_run[0]
    code, _, err = run_cli("average", "--run-dir", run_dir, "--last", "5")
    assert code == 2 and "keeps 2 epoch checkpoint(s) (epochs 2, 3)" in err
    code, _, err = run_cli("average", "--run-dir", run_dir, "--last", "0")
    assert code == 2 and "at least 1" in err
    bare = tmp_path / "no_kept"
    os.makedirs(bare / "checkpoints")
    shutil.copy(os.path.join(run_dir, "config.json"), bare / "config.json")
    code, _, err = run_cli("average", "--run-dir", str(bare))
    assert code == 2 and "training.average_checkpoints=N" in err
    code, _, err = run_cli("average", "--run-dir", str(tmp_path / "nothing"))
    assert code == 2 and "not a tfs2s run folder" in err
    assert "Traceback" not in err


@pytest.mark.slow  # a SavedModel and four ONNX graphs of the tiny run (about 90 s); the written ONNX greedy graph with
# every switch on is covered by tests/test_regularisation.py::test_written_onnx_greedy_decodes_tensorflows_ids_
# with_every_switch_on, what the commands load by test_training_keeps_the_last_epochs_across_a_resume_and_ends_
# on_their_average
def test_export_of_an_averaged_run_with_every_switch_on(averaged_run, tmp_path):
    """The export of a run with every regularisation switch on: the SavedModel passes export's own check against
    the run's model, the converted graphs (beam, step, teacher-forced) convert, and the ONNX greedy and beam ids
    are TensorFlow's."""
    ort = pytest.importorskip("onnxruntime")
    from tfs2s.export.onnx.convert import ONNX_GRAPHS, export_onnx
    from tfs2s.tasks import export, task_for, verify

    translator = load(averaged_run[0])
    path = export(translator, str(tmp_path / "saved_models"), "averaged", onnx=False)
    assert verify(path, translator)
    graphs = {k: ONNX_GRAPHS[k] for k in ("translate_ids_greedy", "translate_ids", "decode_step", "logits")}
    written = export_onnx(path, os.path.join(path, "onnx"), translator.source_tokenizer.kind, graphs,
                          models=translator.models, decoding=translator.config.decoding)
    for check in task_for(translator.config).export_checks(translator):
        session = ort.InferenceSession(written[check.signature], providers=["CPUExecutionProvider"])
        got = session.run(["tokens"], {k: np.asarray(v) for k, v in check.inputs.items()})[0]
        np.testing.assert_array_equal(got, check.expected["tokens"], err_msg=check.signature)


def test_evaluate_scores_the_checkpoint_asked_for(averaged_run, run_cli, tmp_path):
    """``tfs2s evaluate --weights best_epoch`` scores an averaging run's best single epoch, not the average; a run
    without one is told why in one line."""
    run_dir = averaged_run[0]
    perplexity = {}
    for weights in ("best", "best_epoch"):
        code, out, err = run_cli("evaluate", "--run-dir", run_dir, "--split", "validation", "--limit", "8",
                                 "--strategies", "greedy", "--weights", weights)
        assert code == 0, err
        perplexity[weights] = json.loads(out)["perplexity"]
    assert perplexity["best"] != perplexity["best_epoch"]
    plain = str(tmp_path / "plain")
    shutil.copytree(run_dir, plain)
    os.remove(checkpoint_path(plain, "best_epoch"))
    code, _, err = run_cli("evaluate", "--run-dir", plain, "--weights", "best_epoch")
    assert code == 2 and "has no best_epoch checkpoint" in err and "Traceback" not in err
    code, _, err = run_cli("evaluate", "--hyp", "h.txt", "--ref", "r.txt", "--weights", "last")
    assert code == 2 and "give --run-dir" in err
