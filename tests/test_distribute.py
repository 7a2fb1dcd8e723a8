"""tf.distribute training: TF_CONFIG checks, two real workers on loopback ports, bounded failure."""

import json
import os
import socket
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from tfs2s.training.distribute import DistributeError, read_tf_config

TINY = ["data.limit=160", "data.batch_size=16", "data.min_frequency=1", "model.hidden=16", "model.embedding_dim=8",
        "model.attention_units=8", "training.bleu_sentences=10", "training.early_stopping_patience=0",
        "training.epochs=2"]


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def _train_command(run_dir, data_dir, *extra):
    return [sys.executable, "-m", "tfs2s.cli", "train", "--run-dir", str(run_dir), "--data-dir", data_dir,
            "--strategy", "multi_worker", *[f"--set={s}" for s in TINY], *extra]


def _weights(path):
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visit(lambda name: arrays.__setitem__(name, f[name][()]) if isinstance(f[name], h5py.Dataset) else None)
    return arrays


@pytest.mark.parametrize("value, message", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{cluster", "not valid JSON"),
    ('{"cluster": {"worker": ["a:1"]}}', "needs a 'cluster' mapping and a 'task' mapping"),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}', "'ps'"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "'a' is not 'host:port'"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "index 2 is out of range"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "task.type 'chief' is not a task"),
    ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}', "same address twice"),
])
def test_malformed_tf_config_is_named(value, message, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(DistributeError, match=message):
        read_tf_config(value if value is not None else "")


def test_chief_comes_first():
    task = read_tf_config('{"cluster": {"chief": ["c:1"], "worker": ["a:1", "b:2"]}, '
                          '"task": {"type": "worker", "index": 1}}')
    assert task.workers == ("c:1", "a:1", "b:2") and task.index == 2 and not task.is_chief
    assert task.peers == ("c:1", "a:1")


@pytest.mark.slow  # a real two-process cluster, about a minute; the mirrored strategy is tested by default
def test_two_workers_train_in_step_and_the_chief_checkpoint_reloads(data_dir, tmp_path):
    ports = _free_ports(2)
    run_dir = tmp_path / "run"
    procs = [subprocess.Popen(_train_command(run_dir, data_dir, "--connect-timeout", "60"),
                              env=dict(os.environ, TF_CONFIG=_tf_config(ports, i), TF_CPP_MIN_LOG_LEVEL="2"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    try:
        outputs = [p.communicate(timeout=400)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    chief = _weights(run_dir / "checkpoints" / "last.weights.h5")
    other = _weights(run_dir / "workers" / "1" / "checkpoints" / "last.weights.h5")
    model_keys = [k for k in chief if not k.startswith("optimizer")]
    assert model_keys and chief.keys() == other.keys()
    for key in chief:
        np.testing.assert_array_equal(chief[key], other[key], err_msg=key)
    from tfs2s.data import corpora
    from tfs2s.core import text_data as data
    from tfs2s.tasks import load

    translator = load(str(run_dir))
    cfg, s, t = translator.config, translator.source_tokenizer, translator.target_tokenizer
    assert translator.translate(["Ein Mann.", ""], strategy="greedy")[1] == ""
    # Each worker trained on its half of each epoch's batches, each batch split between the two replicas.
    d = cfg.data
    batches = sum(1 for _ in data.make_dataset(
        corpora.load_split(d, "train", d.limit), s, t, batch_size=d.batch_size, max_source_length=d.max_source_length,
        max_target_length=d.max_target_length, bucket_width=d.bucket_width, training=True, seed=d.seed))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["workers"] == 2 and summary["train_steps"] == 2 * (batches // 2) * 2


def test_unreachable_worker_fails_within_the_timeout(data_dir, tmp_path):
    ports = _free_ports(2)  # nobody listens on the second port
    started = time.monotonic()
    proc = subprocess.run(_train_command(tmp_path / "run", data_dir, "--connect-timeout", "3"),
                          env=dict(os.environ, TF_CONFIG=_tf_config(ports, 0), TF_CPP_MIN_LOG_LEVEL="2"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"worker 127.0.0.1:{ports[1]} did not answer within 3 s" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - started < 90


@pytest.mark.parametrize("tf_config, extra, message", [
    ("{not json", [], "TF_CONFIG is not valid JSON"),
    # Refused before waiting for the (absent) other worker: each would stop on its own clock.
    (_tf_config([1, 2], 0), ["--set=training.max_minutes=5"], "training.max_minutes cannot bound multi_worker"),
])
def test_multi_worker_mistakes_are_one_line_cli_errors(tf_config, extra, message, data_dir, tmp_path):
    proc = subprocess.run(_train_command(tmp_path / "run", data_dir, *extra),
                          env=dict(os.environ, TF_CONFIG=tf_config, TF_CPP_MIN_LOG_LEVEL="2"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_mirrored_strategy_trains_on_the_local_devices(data_dir, tmp_path):
    import tensorflow as tf

    from tfs2s.core.config import load_config
    from tfs2s.tasks import load, train

    overrides = dict(item.split("=", 1) for item in TINY)
    cfg = load_config(None, {**{k: int(v) for k, v in overrides.items()}, "data.data_dir": data_dir,
                             "training.epochs": 1})
    summary = train(cfg, str(tmp_path / "run"), verbose=0, strategy="mirrored")
    assert summary["workers"] == 1 and summary["train_steps"] > 0
    models = load(str(tmp_path / "run")).models
    assert not isinstance(models.training.distribute_strategy, tf.distribute.MirroredStrategy)  # loads plainly


@pytest.mark.slow  # a subprocess with two logical CPUs and a tiny training, about 40 s; the mirrored strategy on
# one device is tested by default (test_mirrored_strategy_trains_on_the_local_devices)
def test_token_batches_of_one_row_train_on_two_replicas(data_dir, tmp_path):
    """Token batches can hold one row; on two replicas one of them then gets an empty share of the batch."""
    script = f"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tfs2s.core.config import load_config
from tfs2s.tasks import train
overrides = dict(item.split("=", 1) for item in {TINY!r})
cfg = load_config(None, {{**{{k: int(v) for k, v in overrides.items()}}, "data.data_dir": {data_dir!r},
                         "training.epochs": 1, "data.batch_tokens": 12, "training.steps_per_epoch": 30}})
summary = train(cfg, {str(tmp_path / "run")!r}, verbose=0, strategy="mirrored")
print("replicas", tf.distribute.MirroredStrategy().num_replicas_in_sync, "steps", summary["train_steps"])
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "replicas 2 steps" in proc.stdout, proc.stdout[-1000:]
