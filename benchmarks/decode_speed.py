"""Decoding speed and ONNX parity of an exported model, all runtimes side by side in one run.

Exports a trained run (SavedModel + ONNX) into a temporary folder, then decodes Multi30k test_2016 sources with:
TF ``tf.function`` (in-memory model), the reloaded SavedModel, ONNX Runtime with the whole loop in the graph, and
ONNX Runtime driving encoder.onnx + decoder_step.onnx from a numpy loop (greedy only). ONNX Runtime runs in a
worker process that never imports TensorFlow. The runtimes are interleaved, one at a time: each case's batches
are split into rounds and every runtime decodes a round's batches in turn (the order rotating from round to
round), so a change of load on a shared machine touches all of them alike and the ratios hold. (Alternating
every single batch was tried: at batch 1 every runtime then ran 1.4-1.7 x slower than in a run by rounds right
after, likely because each call found the other process's weights in the cache and its idle threads spinning.) Reports sentences/s and p50/p95 latency per batch call, the
ratios to the reloaded SavedModel, and the parity of ONNX vs TF on all 1,000 test sentences (greedy and beam
token ids, teacher-forced logits).

    python benchmarks/decode_speed.py --run-dir runs/benchmark/bahdanau
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# (batch size, strategy, sentences timed)
CASES = [(1, "greedy", 100), (32, "greedy", 320), (1, "beam", 40), (32, "beam", 320), (64, "beam", 640)]
ROUNDS = 5  # each case's batches in rounds; within a round, each runtime decodes them all, in rotating order
from workers import REPLY, Worker  # noqa: E402  (benchmarks/workers.py)


def _batches(ids: np.ndarray, batch: int, count: int) -> list:
    chunks = []
    for start in range(0, min(count, len(ids)), batch):
        chunk = ids[start:start + batch]
        width = max(1, int((chunk != 0).sum(axis=1).max()))
        chunks.append(chunk[:, :width])
    return chunks


def _summary(latencies: list, sentences: int) -> dict:
    return {"sentences": sentences, "sentences_per_second": round(sentences / sum(latencies), 1),
            "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 1),
            "p95_ms": round(1000 * float(np.percentile(latencies, 95)), 1)}


def ort_worker(export_dir: str, inputs: str) -> None:
    """TensorFlow-free worker: times one onnxruntime call per request line; writes the parity outputs."""
    from tfs2s.export.onnx.runtime import OnnxTranslator

    data = np.load(inputs)
    ids = data["ids"]
    t = OnnxTranslator(export_dir)
    runners = {"ort_loop": lambda x, strategy: t.translate_ids(x, strategy),
               "ort_host": lambda x, strategy: t.greedy_host_loop(x)}
    cases = {}  # (batch, count) -> that case's batches, split once
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "time":
            key = (request["batch"], request["count"])
            if key not in cases:
                cases[key] = _batches(ids, *key)
            chunk = cases[key][request["index"]]
            started = time.perf_counter()
            runners[request["runtime"]](chunk, request["strategy"])
            reply = {"seconds": time.perf_counter() - started}
        elif request["op"] == "parity":
            parity = {s: np.concatenate([_pad(t.translate_ids(c, s)["tokens"][:, 0], 200)
                                         for c in _batches(ids, 100, len(ids))]) for s in ("greedy", "beam")}
            logits = t.session("logits").run(["logits"], {"encoder_token_ids": data["tf_ids"],
                                                          "decoder_token_ids": data["decoder_ids"]})[0]
            np.savez(request["output"], greedy=parity["greedy"], beam=parity["beam"], logits=logits)
            reply = {"tensorflow_imported": "tensorflow" in sys.modules}
        else:
            return
        print(REPLY + json.dumps(reply), flush=True)




def _pad(tokens: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((len(tokens), width), np.int32)
    out[:, : min(width, tokens.shape[1])] = tokens[:, :width]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default=os.path.join(ROOT, "runs", "benchmark", "bahdanau"))
    parser.add_argument("--data-dir", default=None, help="where Multi30k lies (default: the run's config)")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "decode_speed.json"))
    parser.add_argument("--ort-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ort_worker:
        ort_worker(*args.ort_worker)
        return

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from tfs2s.data import corpora
    from tfs2s import tasks

    translator = tasks.load(args.run_dir, expect="tokens")
    cfg = translator.config
    sources = [s for s, _ in corpora.load_pairs("multi30k", "test", args.data_dir or cfg.data.data_dir,
                                                 cfg.data.source_lang, cfg.data.target_lang)]
    ids = translator.encode(tf.constant(sources)).numpy()
    work = tempfile.mkdtemp(prefix="tfs2s-decode-speed-")
    started = time.perf_counter()
    export = tasks.export(translator, work, "model", onnx=True)
    export_minutes = (time.perf_counter() - started) / 60

    spec = [tf.TensorSpec([None, None], tf.int32)]
    options = {"greedy": translator.options("greedy"), "beam": translator.options("beam", n_best=1)}
    functions = {s: tf.function(lambda x, o=o: translator.decode_ids(x, o, alignment=False), input_signature=spec)
                 for s, o in options.items()}
    loaded = tf.saved_model.load(export)
    signatures = {"greedy": loaded.signatures["translate_ids_greedy"], "beam": loaded.signatures["translate_ids"]}
    local = {"tf_function": lambda x, strategy: functions[strategy](tf.constant(x)),
             "saved_model": lambda x, strategy: signatures[strategy](encoder_token_ids=tf.constant(x))}

    # Parity inputs: TF outputs on all test sentences, plus teacher-forced logits on 64 of them.
    tf_tokens = {s: np.concatenate([_pad(signatures[s](encoder_token_ids=tf.constant(c))["tokens"].numpy()[:, 0], 200)
                                    for c in _batches(ids, 100, len(ids))]) for s in ("greedy", "beam")}
    decoder_ids = np.concatenate([np.full((64, 1), 2, np.int32), tf_tokens["greedy"][:64, :20]], axis=1)
    tf_ids = ids[:64, : max(1, int((ids[:64] != 0).sum(1).max()))]
    tf_logits = loaded.signatures["logits"](encoder_token_ids=tf.constant(tf_ids),
                                            decoder_token_ids=tf.constant(decoder_ids))["logits"].numpy()
    inputs = os.path.join(work, "inputs.npz")
    np.savez(inputs, ids=ids, tf_ids=tf_ids, decoder_ids=decoder_ids)
    worker = Worker([sys.executable, __file__, "--ort-worker", export, inputs])

    results = {}
    for batch, strategy, count in CASES:
        batches = _batches(ids, batch, count)
        runtimes = ["tf_function", "saved_model", "ort_loop"] + (["ort_host"] if strategy == "greedy" else [])

        def call(runtime, index):
            if runtime in local:
                started = time.perf_counter()
                local[runtime](batches[index], strategy)
                return time.perf_counter() - started
            return worker.ask(op="time", runtime=runtime, strategy=strategy, batch=batch, count=count,
                              index=index)["seconds"]

        for runtime in runtimes:
            call(runtime, 0)  # warm-up (tracing, session initialisation)
        latencies = {runtime: [] for runtime in runtimes}
        for turn, indices in enumerate(np.array_split(np.arange(len(batches)), ROUNDS)):
            for runtime in runtimes[turn % len(runtimes):] + runtimes[:turn % len(runtimes)]:
                time.sleep(0.05)  # lets the other process's idle threads stop spinning (ONNX Runtime's do)
                for index in indices:
                    latencies[runtime].append(call(runtime, int(index)))
        sentences = sum(len(c) for c in batches)
        for runtime in runtimes:
            results[f"{runtime}/{strategy}/{batch}"] = _summary(latencies[runtime], sentences)

    ort_out = os.path.join(work, "ort.npz")
    tensorflow_imported = worker.ask(op="parity", output=ort_out)["tensorflow_imported"]
    worker.close()
    got = np.load(ort_out)
    parity = {"sentences": len(sources), "tensorflow_imported_in_ort_process": tensorflow_imported,
              "greedy_mismatched_sentences": int((got["greedy"] != tf_tokens["greedy"]).any(axis=1).sum()),
              "beam_mismatched_sentences": int((got["beam"] != tf_tokens["beam"]).any(axis=1).sum()),
              "teacher_forced_max_abs_logit_diff": float(np.abs(got["logits"] - tf_logits).max())}
    ratios = {key.replace("/", " ", 1): round(r["sentences_per_second"] /
                                             results["saved_model/" + key.split("/", 1)[1]]["sentences_per_second"], 2)
              for key, r in results.items() if not key.startswith("saved_model/")}

    record = {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "command": " ".join(sys.argv), "run_dir": args.run_dir, "export_minutes": round(export_minutes, 2),
              "timing": f"interleaved in {ROUNDS} rounds: each runtime decodes a round's batches in turn, one at a time",
              "model": cfg.model.__dict__, "beam_width": cfg.decoding.beam_width, "results": results,
              "ratio_to_saved_model": ratios, "parity": parity}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(record, f, indent=2)
    print("runtime | strategy | batch | sentences/s | x SavedModel | p50 ms | p95 ms")
    for key, r in sorted(results.items(), key=lambda kv: (kv[0].split("/")[1], int(kv[0].split("/")[2]), kv[0])):
        runtime, strategy, batch = key.split("/")
        ratio = ratios.get(key.replace("/", " ", 1), 1.0)
        print(f"{runtime} | {strategy} | {batch} | {r['sentences_per_second']} | {ratio} | {r['p50_ms']} | "
              f"{r['p95_ms']}")
    print(json.dumps(parity, indent=2))


if __name__ == "__main__":
    main()
