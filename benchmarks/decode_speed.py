"""Decoding speed and ONNX parity of an exported model, all runtimes side by side in one run.

Exports a trained run (SavedModel + ONNX) into a temporary folder, then decodes Multi30k test_2016 sources with:
TF ``tf.function`` (in-memory model), the reloaded SavedModel, ONNX Runtime with the whole loop in the graph, and
ONNX Runtime driving encoder.onnx + decoder_step.onnx from a numpy loop (greedy only). ONNX Runtime runs in a
subprocess that never imports TensorFlow. Reports sentences/s and p50/p95 latency per batch call, and the
parity of ONNX vs TF on all 1,000 test sentences (greedy and beam token ids, teacher-forced logits).

    python benchmarks/decode_speed.py --run-dir runs/benchmark/bahdanau
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# (batch size, strategy, sentences timed)
CASES = [(1, "greedy", 60), (32, "greedy", 320), (1, "beam", 40), (32, "beam", 320), (64, "beam", 640)]


def _batches(ids: np.ndarray, batch: int, count: int):
    for start in range(0, min(count, len(ids)), batch):
        chunk = ids[start:start + batch]
        width = max(1, int((chunk != 0).sum(axis=1).max()))
        yield chunk[:, :width]


def _time(fn, ids, batch, count) -> dict:
    batches = list(_batches(ids, batch, count))
    fn(batches[0])  # warm-up (tracing, session init)
    latencies = []
    started = time.perf_counter()
    for chunk in batches:
        t0 = time.perf_counter()
        fn(chunk)
        latencies.append(time.perf_counter() - t0)
    total = time.perf_counter() - started
    n = sum(len(c) for c in batches)
    return {"sentences": n, "sentences_per_second": round(n / total, 1),
            "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 1),
            "p95_ms": round(1000 * float(np.percentile(latencies, 95)), 1)}


def ort_main(export_dir: str, inputs: str, output: str) -> None:
    """Runs in the TensorFlow-free subprocess: timings and parity outputs of onnxruntime."""
    from tfs2s.onnx_runtime import OnnxTranslator

    data = np.load(inputs)
    ids = data["ids"]
    t = OnnxTranslator(export_dir)
    results = {"tensorflow_imported": False}
    for batch, strategy, count in CASES:
        results[f"ort_loop/{strategy}/{batch}"] = _time(lambda x: t.translate_ids(x, strategy), ids, batch, count)
        if strategy == "greedy":
            results[f"ort_host/{strategy}/{batch}"] = _time(lambda x: t.greedy_host_loop(x), ids, batch, count)
    parity = {s: np.concatenate([_pad(t.translate_ids(c, s)["tokens"][:, 0], 200) for c in _batches(ids, 100, len(ids))])
              for s in ("greedy", "beam")}
    logits = t.session("logits").run(["logits"], {"encoder_token_ids": data["tf_ids"],
                                                  "decoder_token_ids": data["decoder_ids"]})[0]
    results["tensorflow_imported"] = "tensorflow" in sys.modules
    np.savez(output, greedy=parity["greedy"], beam=parity["beam"], logits=logits)
    with open(output + ".json", "w") as f:
        json.dump(results, f)


def _pad(tokens: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((len(tokens), width), np.int32)
    out[:, : min(width, tokens.shape[1])] = tokens[:, :width]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default=os.path.join(ROOT, "runs", "benchmark", "bahdanau"))
    parser.add_argument("--output", default=os.path.join(HERE, "results", "decode_speed.json"))
    parser.add_argument("--ort", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ort:
        ort_main(*args.ort)
        return

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from tfs2s import corpora
    from tfs2s.export import export_saved_model, load_translator_from_run

    translator = load_translator_from_run(args.run_dir)
    cfg = translator.config
    sources = [s for s, _ in corpora.load_pairs("multi30k", "test", cfg.data.data_dir, cfg.data.source_lang,
                                                 cfg.data.target_lang)]
    ids = translator.encode(tf.constant(sources)).numpy()
    work = tempfile.mkdtemp(prefix="tfs2s-decode-speed-")
    started = time.perf_counter()
    export = export_saved_model(translator, work, "model", onnx=True)
    export_minutes = (time.perf_counter() - started) / 60

    spec = [tf.TensorSpec([None, None], tf.int32)]
    d = cfg.decoding
    beam = dict(beam_width=d.beam_width, length_penalty_alpha=d.length_penalty, n_best=1)
    functions = {"greedy": tf.function(lambda x: translator.decode_ids(x, "greedy", alignment=False), input_signature=spec),
                 "beam": tf.function(lambda x: translator.decode_ids(x, "beam", alignment=False, **beam), input_signature=spec)}
    loaded = tf.saved_model.load(export)
    signatures = {"greedy": loaded.signatures["translate_ids_greedy"], "beam": loaded.signatures["translate_ids"]}
    results = {}
    for batch, strategy, count in CASES:
        results[f"tf_function/{strategy}/{batch}"] = _time(lambda x: functions[strategy](tf.constant(x)), ids, batch, count)
        results[f"saved_model/{strategy}/{batch}"] = _time(
            lambda x: signatures[strategy](encoder_token_ids=tf.constant(x)), ids, batch, count)

    # Parity inputs: TF outputs on all test sentences, plus teacher-forced logits on 64 of them.
    tf_tokens = {s: np.concatenate([_pad(signatures[s](encoder_token_ids=tf.constant(c))["tokens"].numpy()[:, 0], 200)
                                    for c in _batches(ids, 100, len(ids))]) for s in ("greedy", "beam")}
    decoder_ids = np.concatenate([np.full((64, 1), 2, np.int32), tf_tokens["greedy"][:64, :20]], axis=1)
    tf_ids = ids[:64, : max(1, int((ids[:64] != 0).sum(1).max()))]
    tf_logits = loaded.signatures["logits"](encoder_token_ids=tf.constant(tf_ids),
                                            decoder_token_ids=tf.constant(decoder_ids))["logits"].numpy()
    inputs = os.path.join(work, "inputs.npz")
    np.savez(inputs, ids=ids, tf_ids=tf_ids, decoder_ids=decoder_ids)
    ort_out = os.path.join(work, "ort.npz")
    proc = subprocess.run([sys.executable, __file__, "--ort", export, inputs, ort_out], text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if proc.returncode:
        raise SystemExit("onnxruntime subprocess failed")
    with open(ort_out + ".json") as f:
        ort_results = json.load(f)
    got = np.load(ort_out)
    parity = {"sentences": len(sources), "tensorflow_imported_in_ort_process": ort_results.pop("tensorflow_imported"),
              "greedy_mismatched_sentences": int((got["greedy"] != tf_tokens["greedy"]).any(axis=1).sum()),
              "beam_mismatched_sentences": int((got["beam"] != tf_tokens["beam"]).any(axis=1).sum()),
              "teacher_forced_max_abs_logit_diff": float(np.abs(got["logits"] - tf_logits).max())}
    results.update(ort_results)

    record = {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "command": " ".join(sys.argv), "run_dir": args.run_dir, "export_minutes": round(export_minutes, 2),
              "model": cfg.model.__dict__, "beam_width": d.beam_width, "results": results, "parity": parity}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(record, f, indent=2)
    print("runtime | strategy | batch | sentences/s | p50 ms | p95 ms")
    for key, r in sorted(results.items(), key=lambda kv: (kv[0].split("/")[1], int(kv[0].split("/")[2]), kv[0])):
        runtime, strategy, batch = key.split("/")
        print(f"{runtime} | {strategy} | {batch} | {r['sentences_per_second']} | {r['p50_ms']} | {r['p95_ms']}")
    print(json.dumps(parity, indent=2))


if __name__ == "__main__":
    main()
