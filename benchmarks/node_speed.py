"""Decoding speed at batch 1 in Node (onnxruntime-node, the JS client) beside Python onnxruntime and the SavedModel.

One export, the first N sentences of Multi30k test_2016_flickr (the export's source language), greedy and beam
search (the export's beam graph: its width is the export's ``decoding.beam_width``), one sentence a call.
Runtimes, each timed per call:

* ``ort_ids``: Python onnxruntime, ``OnnxTranslator.translate_ids`` on the source ids Python's tokenizer gives
  (the graph alone), in a worker process without TensorFlow: the reference of the ratios;
* ``ort_text``: Python onnxruntime's text graph (``OnnxTranslator.translate``: tokenization inside; beam only);
* ``node``: the JS client's ``translate([text])`` (JS tokenization, graph, detokenization), in a Node process;
* ``node_raw``: the JS client's ``translateIds`` on Python's ids (the graph alone), same Node process;
* ``saved_model``: the SavedModel's text signatures (``translate_greedy`` / ``serving_default``), in this process;
* ``saved_model_ids``: its ``translate_ids_greedy`` / ``translate_ids`` on Python's ids.

Interleaved as benchmarks/decode_speed.py does: each strategy's sentences are split into rounds and every
runtime decodes a round in turn, the order rotating from round to round, so a change of load on the shared
machine touches all alike. Also reported: whether Node's source ids equal Python's and whether Node's and Python's
output ids agree per sentence.

    python benchmarks/node_speed.py --export saved_models/multi30k_small/1 --sentences 200
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import sys
import tempfile
import time

import numpy as np

import runtimes
from bad_inputs import README_EXPORT, commit, machine
from workers import REPLY, Worker  # noqa: F401  (benchmarks/workers.py; clients_parity imports Worker here)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ROUNDS = 5
REFERENCE = "ort_ids"


def ort_worker(export_dir: str, inputs: str) -> None:
    """TensorFlow-free worker: one OnnxTranslator call per sentence of each request line."""
    import onnxruntime

    from tfs2s.export.onnx.runtime import OnnxTranslator

    with open(inputs, encoding="utf-8") as f:
        data = json.load(f)
    translator = OnnxTranslator(export_dir)

    def once(runtime, strategy, index):
        if runtime == "ort_text":
            return {"text": translator.translate([data["sentences"][index]])[0]}
        out = translator.translate_ids(np.asarray([data["ids"][index]], np.int32), strategy)
        return out["tokens"][0, 0, :out["length"][0, 0]].tolist()

    print(REPLY + json.dumps({"ready": True, "onnxruntime": onnxruntime.__version__,
                              "tensorflow_imported": "tensorflow" in sys.modules}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            return
        seconds, outputs = [], []
        for index in request["indices"]:
            started = time.perf_counter()
            outputs.append(once(request["runtime"], request["strategy"], index))
            seconds.append(time.perf_counter() - started)
        print(REPLY + json.dumps({"seconds": seconds, "outputs": outputs}), flush=True)




def read_sentences(export_dir: str, data_dir: str, count: int) -> list[str]:
    with open(os.path.join(export_dir, "assets.extra", "config.json"), encoding="utf-8") as f:
        lang = json.load(f)["data"]["source_lang"]
    path = os.path.join(data_dir, "multi30k", f"test_2016_flickr.{lang}.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for _, line in zip(range(count), f)]


class SavedModel:
    """The SavedModel's text and ids signatures, in this process."""

    def __init__(self, export_dir: str, sentences: list[str], ids: list[list[int]]):
        import tensorflow as tf

        if runtimes.read_metadata(export_dir).get("requires_tensorflow_text"):
            import tensorflow_text  # noqa: F401
        self.tf, self.sentences, self.ids = tf, sentences, ids
        self.signatures = tf.saved_model.load(export_dir).signatures
        self.names = {("saved_model", "greedy"): "translate_greedy", ("saved_model", "beam"): "serving_default",
                      ("saved_model_ids", "greedy"): "translate_ids_greedy",
                      ("saved_model_ids", "beam"): "translate_ids"}

    def ask(self, runtime: str, strategy: str, indices: list[int], **_) -> dict:
        tf, signature = self.tf, self.signatures[self.names[runtime, strategy]]
        seconds, outputs = [], []
        for index in indices:
            started = time.perf_counter()
            if runtime == "saved_model":
                out = signature(text=tf.constant([self.sentences[index]]))
            else:
                out = signature(encoder_token_ids=tf.constant([self.ids[index]], tf.int32))
            tokens = out["tokens"].numpy()[0, 0, :int(out["length"].numpy()[0, 0])].tolist()
            seconds.append(time.perf_counter() - started)
            outputs.append({"text": out["text"].numpy()[0].decode("utf-8"), "ids": tokens}
                           if runtime == "saved_model" else tokens)
        return {"seconds": seconds, "outputs": outputs}


def time_strategy(strategy: str, runners: dict, count: int) -> tuple[dict, dict]:
    """Every runtime over sentences 0..count-1 at batch 1, interleaved in rounds. Returns seconds and outputs."""
    seconds = {r: [] for r in runners}
    outputs = {r: [None] * count for r in runners}
    for runtime, ask in runners.items():
        ask(op="time", runtime=runtime, strategy=strategy, indices=[0])  # warm-up: tracing, session creation
    names = list(runners)
    for turn, indices in enumerate(np.array_split(np.arange(count), ROUNDS)):
        for runtime in names[turn % len(names):] + names[:turn % len(names)]:
            time.sleep(0.05)  # lets another process's idle threads stop spinning (onnxruntime's do)
            answer = runners[runtime](op="time", runtime=runtime, strategy=strategy, indices=indices.tolist())
            seconds[runtime] += answer["seconds"]
            for index, output in zip(indices, answer["outputs"]):
                outputs[runtime][index] = output
    return seconds, outputs


def _summary(latencies: list) -> dict:
    return {"sentences": len(latencies), "sentences_per_second": round(len(latencies) / sum(latencies), 1),
            "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 2),
            "p95_ms": round(1000 * float(np.percentile(latencies, 95)), 2)}


def _ids_of(output) -> list:
    return output["ids"] if isinstance(output, dict) else output


def agreement(outputs: dict) -> dict:
    """Sentences whose output ids differ from Python onnxruntime's, per runtime (text runtimes: their ids)."""
    reference = outputs[REFERENCE]
    return {r: sum(_ids_of(a) != _ids_of(b) for a, b in zip(out, reference))
            for r, out in outputs.items() if r != REFERENCE and r != "ort_text"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", default=README_EXPORT, help="an export's version folder (default: the README's)")
    parser.add_argument("--sentences", type=int, default=200, help="first N sentences of test_2016_flickr")
    parser.add_argument("--data-dir", default=os.path.join(ROOT, "..", "shared", "data"))
    parser.add_argument("--output", default=os.path.join(HERE, "results", "node_speed.json"))
    parser.add_argument("--ort-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ort_worker:
        ort_worker(*args.ort_worker)
        return
    for reason in filter(None, [runtimes.not_runnable("node greedy", args.export),
                                runtimes.not_runnable("node beam", args.export)]):
        raise SystemExit(f"Node cannot run {args.export}: {reason}")
    run(args)


def run(args) -> None:
    meta = runtimes.read_metadata(args.export)
    sentences = read_sentences(args.export, args.data_dir, args.sentences)
    tokenization = runtimes.PythonTokenization(args.export)
    pad = meta["special_ids"]["pad"]
    ids = [[i for i in row if i != pad] or [pad] for row in tokenization.source_ids(sentences)["ids"]]
    work = tempfile.mkdtemp(prefix="tfs2s-node-speed-")
    inputs = os.path.join(work, "inputs.json")
    with open(inputs, "w", encoding="utf-8") as f:
        json.dump({"sentences": sentences, "ids": ids}, f, ensure_ascii=False)

    saved_model = SavedModel(args.export, sentences, ids)
    ort = Worker([sys.executable, os.path.abspath(__file__), "--ort-worker", args.export, inputs], ROOT, hello=True)
    node = Worker(["node", "bench/speed.mjs", os.path.abspath(args.export), inputs], runtimes.JS_CLIENT, hello=True)
    node_ids = node.ask(op="encode", indices=list(range(len(sentences))))["ids"]
    has_text_graph = os.path.exists(os.path.join(args.export, "onnx", runtimes.GRAPHS["text"]))
    results, mismatches = {}, {}
    for strategy in ("greedy", "beam"):
        runners = {"ort_ids": ort.ask, "node": node.ask, "node_raw": node.ask, "saved_model": saved_model.ask,
                   "saved_model_ids": saved_model.ask}
        if strategy == "beam" and has_text_graph:
            runners["ort_text"] = ort.ask
        seconds, outputs = time_strategy(strategy, runners, len(sentences))
        for runtime, latencies in seconds.items():
            results[f"{runtime}/{strategy}"] = _summary(latencies)
        mismatches[strategy] = agreement(outputs)
        mismatches[strategy]["node text != saved_model text"] = sum(
            a["text"] != b["text"] for a, b in zip(outputs["node"], outputs["saved_model"]))
    ort.close()
    node.close()
    report(args, meta, results, mismatches, {"ort": ort.hello, "node": node.hello}, node_ids == ids)


def report(args, meta: dict, results: dict, mismatches: dict, versions: dict, same_ids: bool) -> None:
    reference = {key: results[f"{REFERENCE}/{key.split('/')[1]}"]["sentences_per_second"] for key in results}
    ratios = {key: round(r["sentences_per_second"] / reference[key], 2) for key, r in results.items()}
    import tensorflow as tf

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    record = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": f"{machine()}, {cpu}",
              "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]), "commit": commit(),
              "export": os.path.abspath(args.export), "sentences": args.sentences, "batch": 1,
              "beam_width": meta["decoding"]["beam_width"],
              "versions": {"tensorflow": tf.__version__, "onnxruntime": versions["ort"]["onnxruntime"],
                           "node": versions["node"]["node"],
                           "onnxruntime_node": versions["node"]["onnxruntime_node"]},
              "tensorflow_imported_in_ort_process": versions["ort"]["tensorflow_imported"],
              "timing": f"one sentence a call; interleaved in {ROUNDS} rounds, the runtime order rotating",
              "threads": "each runtime's default (onnxruntime: one intra-op thread per core)",
              "node_source_ids_equal_python": same_ids, "output_ids_differing_from_ort_ids": mismatches,
              "results": results, f"ratio_to_{REFERENCE}": ratios}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    print(f"runtime | strategy | sentences/s | x {REFERENCE} | p50 ms | p95 ms")
    for key, r in sorted(results.items(), key=lambda kv: (kv[0].split("/")[1] != "greedy", kv[0])):
        runtime, strategy = key.split("/")
        print(f"{runtime} | {strategy} | {r['sentences_per_second']} | {ratios[key]} | {r['p50_ms']} | {r['p95_ms']}")
    print(json.dumps({"node_source_ids_equal_python": same_ids, "output_ids_differing_from_ort_ids": mismatches}))
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
