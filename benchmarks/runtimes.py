"""Every runtime of an export through named batches of text, each in its own process (shared by
``tests/test_bad_inputs.py``, ``benchmarks/bad_inputs.py`` and ``benchmarks/node_speed.py``).

Runtimes (``RUNTIMES``): the SavedModel's text signatures in a process that imports only TensorFlow (and
TensorFlow Text where the export's metadata requires it), never tfs2s; Python onnxruntime through
``tfs2s.export.onnx.runtime.OnnxTranslator`` (the text graph, and the greedy and beam ids graphs fed the ids
Python's tokenizer gives), in a process without TensorFlow; Node through ``clients/js/src/index.mjs`` with
onnxruntime-node (``clients/js/test/bad_inputs.test.mjs``). A case is ``{"name", "batch"}``; an item is a string
or ``{"base64": ...}`` (bytes, given as they are to runtimes that take bytes; decoded with U+FFFD replacement by
those that take strings).

A worker appends one JSON line per event to an events file: ``{"event": "start", "runtime", "case"}`` before a
case and ``{"event": "done", "runtime", "case", "answered", "of", "error", "answers"}`` after it. A worker that
dies (a crash of the runtime, not an exception) leaves a start without its done: that case is marked with the
exit status and the end of stderr, and a fresh worker goes on with the cases left.

This module imports only the standard library and numpy at the top (its workers run as ``python runtimes.py``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
JS_CLIENT = os.path.join(ROOT, "clients", "js")
CORPUS = os.path.join(ROOT, "tests", "data", "bad_inputs.json")
METADATA = os.path.join("assets.extra", "tfs2s_export.json")
RUNTIMES = {  # runtime -> (worker, what it runs)
    "savedmodel serving_default": ("savedmodel", "serving_default"),
    "savedmodel translate_greedy": ("savedmodel", "translate_greedy"),
    "onnx text": ("onnx", "text"),
    "onnx ids greedy": ("onnx", "greedy"),
    "onnx ids beam": ("onnx", "beam"),
    "node greedy": ("node", "greedy"),
    "node beam": ("node", "beam"),
}
WORKER_TIMEOUT_S = 900
OUTCOME = ("answered", "of", "error", "answers", "tensorflow_imported")  # what a report keeps of a done event


def read_corpus(path: str = CORPUS) -> list[dict]:
    """The cases of a bad-input corpus file (``{"cases": [{"name", "batch"}]}``)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)["cases"]


def as_bytes(item) -> bytes:
    """A corpus item as the bytes a runtime that takes bytes gets."""
    return base64.b64decode(item["base64"]) if isinstance(item, dict) else item.encode("utf-8", "surrogatepass")


def as_text(item) -> str:
    """A corpus item as the string a runtime that takes strings gets (invalid UTF-8 -> U+FFFD)."""
    return as_bytes(item).decode("utf-8", "replace")


def read_metadata(export_dir: str) -> dict:
    with open(os.path.join(export_dir, METADATA), encoding="utf-8") as f:
        return json.load(f)


def node_missing() -> str | None:
    """Why the Node runtime cannot run here, or None."""
    if shutil.which("node") is None:
        return "`node` is not on PATH"
    if not os.path.isdir(os.path.join(JS_CLIENT, "node_modules", "onnxruntime-node")):
        return "clients/js has no node_modules: run `npm ci --ignore-scripts` in clients/js"
    return None


# --------------------------------------------------------------------------- host tokenization (Python, TF)
class PythonTokenization:
    """Source ids and output text as tfs2s's own (TensorFlow) tokenizers give them, from an export's assets."""

    def __init__(self, export_dir: str):
        from tfs2s.core.tokenizers import TOKENIZERS

        meta = read_metadata(export_dir)
        self.meta = meta

        def tokenizer(side: str):
            record = meta["host_tokenizers"][side]
            if record["kind"] not in TOKENIZERS:
                raise ValueError(f"{record['kind']} source ids are not computed here")
            return TOKENIZERS[record["kind"]](os.path.join(export_dir, "assets", record["assets"]["vocab"]),
                                              lowercase=record["lowercase"], rules=record.get("rules") or 1)

        self.source, self.target = tokenizer("source"), tokenizer("target")

    def source_ids(self, items: list) -> dict:
        """``{"ids": [B, S] padded encoder ids, "width": S}`` of corpus items (bytes given to TF as they are)."""
        import tensorflow as tf

        from tfs2s.core import text_data

        texts = tf.constant([as_bytes(i) for i in items], tf.string, shape=[len(items)])
        ids = text_data.encode_source(self.source, texts, self.meta["max_source_length"],
                                      self.meta["reverse_source"])
        return {"ids": ids.numpy().tolist(), "width": int(ids.shape[1])}

    def texts(self, rows: list[list[int]], source_ids: list[list[int]]) -> list[str]:
        """Output ids (one list per input) -> text, as the export's target tokenizer joins them.

        A source of only ``</s>`` (no words) translates to "", the host's rule in the tokenization description
        (``tfs2s.export.tokenization``): the ids graphs decode it like any other source.
        """
        import numpy as np

        if not rows:
            return []
        pad = self.meta["special_ids"]["pad"]
        empty = [sum(1 for i in source if i != pad) <= 1 for source in source_ids]
        dense = np.zeros((len(rows), max(1, max(len(r) for r in rows))), np.int32)
        for i, row in enumerate(rows):
            dense[i, :len(row)] = row
        texts = [t.decode("utf-8") for t in self.target.detokenize(dense).numpy()]
        return ["" if e else t for e, t in zip(empty, texts)]


# --------------------------------------------------------------------------- driving the workers
def _worker_command(worker: str, jobs_path: str) -> tuple[list, dict]:
    """The command line of a worker and its extra environment (the jobs file names the events file)."""
    if worker == "node":
        return ["node", "--test", "test/bad_inputs.test.mjs"], {"TFS2S_BAD_INPUT_JOBS": jobs_path}
    return [sys.executable, os.path.abspath(__file__), "--worker", worker, jobs_path], {}


def _read_events(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def run_worker(worker: str, export_dir: str, jobs: list[dict], work: str) -> dict:
    """Runs ``jobs`` (``{"runtime", "case", "batch", ...}``) in ``worker`` processes until each has an outcome.

    Returns:
        ``{(runtime, case): done event}``; a case during which the process died gets ``answered`` 0 and the
        exit status in ``error``.
    """
    results: dict = {}
    work = tempfile.mkdtemp(prefix=f"{worker}-", dir=work)  # fresh: events files are appended to
    for attempt in range(len(jobs) + 1):
        left = [j for j in jobs if (j["runtime"], j["case"]) not in results]
        if not left:
            break
        jobs_path = os.path.join(work, f"{worker}_jobs_{attempt}.json")
        events_path = os.path.join(work, f"{worker}_events_{attempt}.jsonl")
        with open(jobs_path, "w", encoding="utf-8") as f:
            json.dump({"export_dir": os.path.abspath(export_dir), "events": events_path, "jobs": left}, f)
        command, extra_env = _worker_command(worker, jobs_path)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **extra_env)
        try:
            proc = subprocess.run(command, cwd=JS_CLIENT if worker == "node" else ROOT, env=env, text=True,
                                  capture_output=True, timeout=WORKER_TIMEOUT_S)
            status, tail = proc.returncode, (proc.stdout[-1500:] + proc.stderr[-2500:]).strip()
        except subprocess.TimeoutExpired:
            status, tail = "timeout", f"no answer within {WORKER_TIMEOUT_S} s"
        events = _read_events(events_path)
        if not events:  # died before its first case (a broken export, a missing package): every case says so
            for j in left:
                results[j["runtime"], j["case"]] = {"runtime": j["runtime"], "case": j["case"], "answered": 0,
                                                   "of": len(j["batch"]), "answers": [],
                                                   "error": f"process died (exit {status}): {tail[-1500:]}"}
            break
        started = None
        for event in events:
            key = (event["runtime"], event["case"])
            if event["event"] == "start":
                started = key
            elif event["event"] == "done":
                results[key] = event
                started = None
        if started is not None:
            batch = next(j["batch"] for j in left if (j["runtime"], j["case"]) == started)
            results[started] = {"runtime": started[0], "case": started[1], "answered": 0, "of": len(batch),
                                "answers": [], "error": f"process died (exit {status}): {tail[-1500:]}"}
    return results


def run_runtimes(export_dir: str, cases: list[dict], runtimes: list[str], work: str | None = None) -> dict:
    """Every case through every runtime named in ``runtimes`` (``RUNTIMES`` keys).

    Returns:
        ``{runtime: {case: {"answered", "of", "error", "answers"}}}``; answers are text (the ids graphs'
        output ids detokenized with Python's tokenizer).
    """
    work = work or tempfile.mkdtemp(prefix="tfs2s-runtimes-")
    report: dict = {r: {} for r in runtimes}
    tokenization = None
    by_worker: dict = {}
    for runtime in runtimes:
        reason = not_runnable(runtime, export_dir)
        if reason is None and runtime.startswith("onnx ids") and tokenization is None:
            try:
                tokenization = PythonTokenization(export_dir)
            except (KeyError, ValueError) as error:
                reason = f"no Python source ids for this export ({type(error).__name__}: {error})"
        if reason:
            report[runtime] = {c["name"]: _error(c, f"not run: {reason}") for c in cases}
        else:
            by_worker.setdefault(RUNTIMES[runtime][0], []).append(runtime)
    for worker, names in by_worker.items():
        jobs = []
        for runtime in names:
            for case in cases:
                job = {"runtime": runtime, "case": case["name"], "what": RUNTIMES[runtime][1], "batch": case["batch"]}
                if worker == "onnx" and job["what"] != "text":
                    job.update(tokenization.source_ids(case["batch"]))
                jobs.append(job)
        sources = {(j["runtime"], j["case"]): j.get("ids") for j in jobs}
        for (runtime, case), event in run_worker(worker, export_dir, jobs, work).items():
            if event.get("ids") is not None:
                event["answers"] = tokenization.texts(event.pop("ids"), sources[runtime, case])
            report[runtime][case] = {k: event[k] for k in OUTCOME if k in event}
    return report


GRAPHS = {"text": "translate_text.onnx", "greedy": "translate_ids_greedy.onnx", "beam": "translate_ids_beam.onnx"}


def not_runnable(runtime: str, export_dir: str) -> str | None:
    """Why ``runtime`` cannot run on ``export_dir`` here (a missing graph, Node, or host description), or None."""
    worker, what = RUNTIMES[runtime]
    if worker in ("onnx", "node") and not os.path.exists(os.path.join(export_dir, "onnx", GRAPHS[what])):
        return f"the export has no onnx/{GRAPHS[what]}"
    if worker == "savedmodel" and what not in read_metadata(export_dir).get("signatures", [what]):
        return f"the export has no {what} signature (exported by an older tfs2s)"
    if worker == "node" and node_missing():
        return node_missing()
    if worker == "node" and "host_tokenization" not in read_metadata(export_dir):
        return "the export's metadata has no host_tokenization (exported by an older tfs2s)"
    return None


def _error(case: dict, message: str) -> dict:
    return {"answered": 0, "of": len(case["batch"]), "error": message, "answers": []}


# --------------------------------------------------------------------------- the Python workers
class _Events:
    def __init__(self, path: str):
        self.file = open(path, "a", encoding="utf-8")

    def emit(self, **event) -> None:
        self.file.write(json.dumps(event, ensure_ascii=False) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())  # a crash right after must not lose the start line


def _run_jobs(jobs_path: str, answer) -> None:
    """Calls ``answer(job) -> (answers, extra)`` on each job, emitting its start and done events."""
    with open(jobs_path, encoding="utf-8") as f:
        spec = json.load(f)
    events = _Events(spec["events"])
    for job in spec["jobs"]:
        events.emit(event="start", runtime=job["runtime"], case=job["case"])
        done = {"event": "done", "runtime": job["runtime"], "case": job["case"], "of": len(job["batch"]),
                "answered": 0, "error": None, "answers": []}
        try:
            answers, extra = answer(job)
            done.update(extra)
            done["answers"] = answers
            done["answered"] = len(answers) if len(answers) == len(job["batch"]) else 0
            if len(answers) != len(job["batch"]):
                done["error"] = f"{len(answers)} answers for {len(job['batch'])} inputs"
        except Exception as error:  # noqa: BLE001  (any exception is the finding, recorded per case)
            done["error"] = f"{type(error).__name__}: {str(error)[-800:]}"
        events.emit(**done)


def savedmodel_worker(export_dir: str, jobs_path: str) -> None:
    """The SavedModel's text signatures, in a process that imports TensorFlow (and TensorFlow Text) only."""
    meta = read_metadata(export_dir)
    import tensorflow as tf

    if meta.get("requires_tensorflow_text") or "tensorflow_text" in meta.get("requires", []):
        import tensorflow_text  # noqa: F401  (registers the ops the export needs)
    signatures = tf.saved_model.load(export_dir).signatures
    if any(m == "tfs2s" or m.startswith("tfs2s.") for m in sys.modules):
        raise SystemExit("the SavedModel worker imported tfs2s")

    def answer(job):
        items = [as_bytes(i) for i in job["batch"]]
        out = signatures[job["what"]](text=tf.constant(items, tf.string, shape=[len(items)]))
        texts = out["text"].numpy()
        if texts.shape != (len(items),):
            raise ValueError(f"text output of shape {texts.shape} for {len(items)} inputs")
        return [t.decode("utf-8") for t in texts], {}

    _run_jobs(jobs_path, answer)


def onnx_worker(export_dir: str, jobs_path: str) -> None:
    """Python onnxruntime through OnnxTranslator, in a process without TensorFlow."""
    import numpy as np

    from tfs2s.export.onnx.runtime import OnnxTranslator

    translator = OnnxTranslator(export_dir)

    def answer(job):
        extra = {"tensorflow_imported": "tensorflow" in sys.modules}
        if job["what"] == "text":
            return translator.translate([as_bytes(i) for i in job["batch"]]), extra
        ids = np.asarray(job["ids"], np.int32).reshape(len(job["ids"]), job["width"])
        out = translator.translate_ids(ids, strategy=job["what"])
        rows = [row[:n].tolist() for row, n in zip(out["tokens"][:, 0], out["length"][:, 0])]
        return rows, {**extra, "ids": rows}

    _run_jobs(jobs_path, answer)


def echo_worker(export_dir: str, jobs_path: str) -> None:
    """Answers each input with itself and dies in a case named ``die`` (tests the crash handling)."""

    def answer(job):
        if job["case"] == "die":
            os._exit(7)
        return [as_text(i) for i in job["batch"]], {}

    _run_jobs(jobs_path, answer)


WORKERS = {"savedmodel": savedmodel_worker, "onnx": onnx_worker, "echo": echo_worker}


def main() -> None:
    parser = argparse.ArgumentParser(description="a runtime worker (see the module docstring)")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "JOBS"), required=True)
    kind, jobs_path = parser.parse_args().worker
    with open(jobs_path, encoding="utf-8") as f:
        export_dir = json.load(f)["export_dir"]
    WORKERS[kind](export_dir, jobs_path)


if __name__ == "__main__":
    main()
