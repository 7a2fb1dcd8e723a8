"""Training on several devices or machines with TensorFlow's own ``tf.distribute`` strategies.

``mirrored`` replicates the model on the local devices (GPUs, or the CPU); ``multi_worker`` runs one process per
machine, the processes reading the standard ``TF_CONFIG`` environment variable::

    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}'

Every worker runs the same command with its own ``task.index``; worker 0 (or the ``chief`` task when the
cluster names one) writes the run folder, the others keep their checkpoints in ``<run_dir>/workers/<index>``.
Each worker reads the whole corpus but trains on its own share of the batches (see
``tfs2s.data.shard_batches``), so one epoch sees each example once across the cluster. ``data.batch_size`` is
the global batch, as with one process: ``tf.distribute`` splits every batch among all replicas of all workers, so
a step costs each of ``n`` workers a ``1/n`` share and an epoch keeps its number of steps.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import time

import tensorflow as tf

from tfs2s.core.errors import DistributeError  # noqa: F401  (raised here; importable from here)

logger = logging.getLogger(__name__)

STRATEGIES = ("default", "mirrored", "multi_worker")


@dataclasses.dataclass(frozen=True)
class ClusterTask:
    """This process's place in a multi-worker cluster, read from ``TF_CONFIG``.

    Attributes:
        workers: Addresses of the training tasks (``chief`` first, then ``worker`` tasks).
        index: This process's position in ``workers``.
    """

    workers: tuple[str, ...]
    index: int

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @property
    def peers(self) -> tuple[str, ...]:
        return tuple(w for i, w in enumerate(self.workers) if i != self.index)


def read_tf_config(value: str | None = None) -> ClusterTask:
    """Parses and checks ``TF_CONFIG`` (the environment variable when ``value`` is ``None``).

    Raises:
        DistributeError: Missing or malformed ``TF_CONFIG``; the message says what is wrong and shows the form.
    """
    example = ('{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
               '"task": {"type": "worker", "index": 0}}')
    raw = os.environ.get("TF_CONFIG") if value is None else value
    if not raw:
        raise DistributeError(f"--strategy multi_worker needs the TF_CONFIG environment variable, e.g. {example}")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise DistributeError(f"TF_CONFIG is not valid JSON ({err}); expected e.g. {example}") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) or not isinstance(
            config.get("task"), dict):
        raise DistributeError(f"TF_CONFIG needs a 'cluster' mapping and a 'task' mapping, e.g. {example}")
    cluster, task = config["cluster"], config["task"]
    unsupported = sorted(set(cluster) - {"chief", "worker"})
    if unsupported:
        raise DistributeError(f"TF_CONFIG cluster has {unsupported} tasks; multi_worker training uses only "
                              "'chief' and 'worker' tasks")
    for role, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise DistributeError(f"TF_CONFIG cluster.{role} must be a non-empty list of 'host:port' addresses")
        for address in addresses:
            host, _, port = str(address).rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise DistributeError(f"TF_CONFIG cluster.{role} address {address!r} is not 'host:port'")
    if len(cluster.get("chief", [])) > 1:
        raise DistributeError("TF_CONFIG cluster.chief must name one address")
    role, index = task.get("type"), task.get("index", 0)
    if role not in cluster:
        raise DistributeError(f"TF_CONFIG task.type {role!r} is not a task of the cluster ({sorted(cluster)})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[role]):
        raise DistributeError(f"TF_CONFIG task.index {index!r} is out of range: cluster.{role} has "
                              f"{len(cluster[role])} addresses")
    workers = tuple(cluster.get("chief", [])) + tuple(cluster.get("worker", []))
    if len(set(workers)) != len(workers):
        raise DistributeError("TF_CONFIG names the same address twice")
    position = index if role == "chief" else len(cluster.get("chief", [])) + index
    return ClusterTask(workers, position)


def wait_for_peers(task: ClusterTask, timeout_seconds: float) -> None:
    """Waits until every other worker is up, answering on this worker's own port meanwhile.

    TensorFlow's ``MultiWorkerMirroredStrategy`` constructor blocks without a time limit until every worker has
    joined, so a worker that never starts would hang the others. Before building the strategy each worker listens
    on its own port and connects to the others' ports; once all answer, it closes its listener and lets
    TensorFlow's server take the port (a worker still polling retries until that server answers).

    Raises:
        DistributeError: A worker did not answer within ``timeout_seconds`` (names which), or this worker's
            port is taken.
    """
    import threading

    own_host, _, own_port = task.workers[task.index].rpartition(":")
    listener = socket.socket(socket.AF_INET6 if ":" in own_host.strip("[]") else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", int(own_port)))
    except OSError as err:
        listener.close()
        raise DistributeError(f"this worker's address {task.workers[task.index]} cannot be used ({err}); is "
                              "another process on that port?") from None
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def answer():
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
                connection.close()
            except OSError:
                pass

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_seconds
    try:
        for address in task.peers:
            host, _, port = address.rpartition(":")
            while True:
                try:
                    with socket.create_connection((host.strip("[]"), int(port)), timeout=2.0):
                        break
                except OSError as err:
                    if time.monotonic() > deadline:
                        raise DistributeError(
                            f"worker {address} did not answer within {timeout_seconds:.0f} s ({err}); check that "
                            "it is started with the same TF_CONFIG cluster and that the port is reachable") from None
                    time.sleep(0.5)
    finally:
        stop.set()
        thread.join()
        listener.close()


def make_strategy(name: str, connect_timeout: float = 120.0) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy called ``name`` (``default``, ``mirrored`` or ``multi_worker``).

    For ``multi_worker`` it checks ``TF_CONFIG`` first, then waits at most ``connect_timeout`` seconds for the
    other workers (``wait_for_peers``), and makes collective operations fail after that long rather than wait
    forever for a worker that died.

    Raises:
        ValueError: Unknown strategy name.
        DistributeError: Bad ``TF_CONFIG`` or an unreachable worker.
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    task = read_tf_config()
    logger.info("worker %d of %d; waiting for %s", task.index, len(task.workers), ", ".join(task.peers) or "none")
    wait_for_peers(task, connect_timeout)
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=connect_timeout)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def worker_index(strategy: tf.distribute.Strategy) -> tuple[int, int]:
    """``(index, count)`` of this process among the strategy's workers (``(0, 1)`` on one machine)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        task = read_tf_config()
        return task.index, len(task.workers)
    return 0, 1
