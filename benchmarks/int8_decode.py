"""int8 greedy ONNX decoding against fp32 ONNX and the SavedModel: batch-1 speed, interleaved, and the BLEU cost.

Writes ``translate_ids_greedy.int8.onnx`` (``tfs2s.export.onnx.convert.int8_greedy_model``) from the export's
trained run into a temporary folder, beside the float32 greedy graph as today's code writes it, then:

- times batch-1 greedy decoding of the first ``--sentences`` Multi30k test_2016_flickr sources with the SavedModel
  (``translate_ids_greedy`` signature), the export's ``onnx/translate_ids_greedy.onnx``, the float32 graph written
  now, and the int8 graph, interleaved: the sentences are split into rounds and each runtime decodes a round in
  turn, the order rotating, so a change of load on the shared machine touches all of them alike;
- decodes all 1,000 test sentences with the float32 and the int8 graph (batch 1, and the int8 graph at batch 64
  too: its activations are quantised per batch tensor, so a sentence's result may depend on its batch), turns the
  ids into text as the export does (``Translator.finish``: the target tokenizer, ``<unk>`` replaced by the attended
  source word where the export says ``replace_unknown``) and scores cased, detokenized BLEU with sacrebleu;
- beam search (the export's width, 5 for the README export) at batch 64 over the first ``--beam-sentences`` test
  sources (default: all 1,000): the SavedModel (``translate_ids``), the export's ``onnx/translate_ids_beam.onnx``
  and its int8 copy written now (``tfs2s.export.onnx.int8_pass.quantize_products``, as ``--quantize int8`` writes
  ``translate_ids_beam.int8.onnx``), interleaved batch by batch, each one's BLEU from the same decoding;
- times random-weight models of three sizes (hidden 256-512, vocabularies 6k-16k) per decoding step;
- where ``node`` and clients/js's packages are installed, times the float32 and int8 graphs in onnxruntime-node too.

onnxruntime runs in a TensorFlow-free worker process (TensorFlow's idle thread pools would share its cores), each
graph at 1 intra-op thread and at onnxruntime's default (one per core); the headline ratio takes each graph at its
fastest setting in the run. The float32 graph's encoder is ONNX's fused GRU/LSTM nodes; the int8 graph's is written
out in loops with int8 products (``tfs2s.export.onnx.encoder_loop``), as ``tfs2s export --quantize int8`` writes it.

Prints a table, writes ``benchmarks/results/int8_decode.json`` and the keys ``int8_vs_fp32_onnx_greedy_b1``,
``int8_bleu_cost``, ``int8_vs_fp32_onnx_beam_b64``, ``int8_beam_bleu_cost`` and ``int8_model`` (the run measured) of
``benchmarks/results/speed_summary.json`` (read-modify-write: other scripts own other keys).

    python benchmarks/int8_decode.py [--export saved_models/multi30k_small/1] [--run-dir runs/multi30k_small]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from summary import SPEED_SUMMARY, commit, update_summary  # noqa: E402  (benchmarks/summary.py)
RESULTS = os.path.join(HERE, "results", "int8_decode.json")
DEFAULT_EXPORT = os.path.join(ROOT, "saved_models", "multi30k_small", "1")
DEFAULT_RUN = os.path.join(ROOT, "runs", "multi30k_small")  # the README main job's run, that export's source
# onnxruntime intra-op threads each graph is timed with (0: its default, one per core). On a loaded 2-core machine
# one thread decodes faster than two (no waiting on a preempted partner thread), so both are measured.
THREADS = [1, 0]
BEAM_BATCH = 64  # sentences per request of the beam rows
BEAM_GRAPHS = ("onnx_beam_fp32", "onnx_beam_int8")


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores shared with other sessions (load average "
            f"{os.getloadavg()[0]:.1f} at the start), {platform.system()} {platform.release()}")


def write_json(path: str, record: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
        f.write("\n")


# onnxruntime-node: the same graphs at batch 1, interleaved round by round (clients/js's installed package).
NODE_TIMING = r"""
import fs from 'node:fs';
import { createRequire } from 'node:module';
const [setupPath] = process.argv.slice(2);
const setup = JSON.parse(fs.readFileSync(setupPath, 'utf8'));
const ort = createRequire(setup.package)('onnxruntime-node');
const feeds = setup.rows.map((r) => ({ encoder_token_ids: new ort.Tensor('int32', Int32Array.from(r), [1, r.length]) }));
const result = {};
for (const threads of setup.threads) {
  const sessions = {};
  for (const [name, path] of Object.entries(setup.graphs)) {
    sessions[name] = await ort.InferenceSession.create(path, threads ? { intraOpNumThreads: threads } : {});
  }
  const names = Object.keys(sessions);
  const seconds = Object.fromEntries(names.map((n) => [n, 0]));
  for (const n of names) for (const f of feeds.slice(0, 3)) await sessions[n].run(f);
  const size = Math.ceil(feeds.length / setup.rounds);
  for (let k = 0; k < setup.rounds; k++) {
    for (const n of k % 2 ? [...names].reverse() : names) {
      const started = process.hrtime.bigint();
      for (const f of feeds.slice(k * size, (k + 1) * size)) await sessions[n].run(f);
      seconds[n] += Number(process.hrtime.bigint() - started) / 1e9;
    }
  }
  for (const n of names) result[`${n}/${threads || 'default'}_threads`] = +(feeds.length / seconds[n]).toFixed(1);
}
console.log(JSON.stringify(result));
"""


def node_speed(graphs: dict, ids: np.ndarray, sentences: int, rounds: int, folder: str) -> dict | None:
    """Batch-1 sentences/s of ``graphs`` in onnxruntime-node (None without ``node`` or clients/js's packages)."""
    package = os.path.join(ROOT, "clients", "js", "package.json")
    node = shutil.which("node")
    if node is None or not os.path.isdir(os.path.join(ROOT, "clients", "js", "node_modules", "onnxruntime-node")):
        return None
    script, setup = os.path.join(folder, "node_timing.mjs"), os.path.join(folder, "node_setup.json")
    with open(script, "w", encoding="utf-8") as f:
        f.write(NODE_TIMING)
    rows = [row[0].tolist() for row in batches(ids[:sentences], 1)]
    write_json(setup, {"package": package, "graphs": graphs, "rows": rows, "threads": THREADS, "rounds": rounds})
    proc = subprocess.run([node, script, setup], capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        raise SystemExit(f"onnxruntime-node failed on the graphs:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def trimmed(ids: np.ndarray) -> np.ndarray:
    """``ids`` cut to its longest row (at least one column), as a client pads a batch."""
    return ids[:, :max(1, int((ids != 0).sum(axis=1).max()))]


def batches(ids: np.ndarray, size: int) -> list:
    return [trimmed(ids[i:i + size]) for i in range(0, len(ids), size)]


from workers import REPLY, Worker  # noqa: E402  (benchmarks/workers.py)


def ort_worker(graphs_json: str, ids_path: str) -> None:
    """TensorFlow-free worker: runs the ONNX graphs on request (TensorFlow's idle thread pools would otherwise
    share the cores with onnxruntime's in one process); replies with seconds per sentence or decoded ids."""
    import onnxruntime as ort

    with open(graphs_json, encoding="utf-8") as f:
        setup = json.load(f)
    ids = np.load(ids_path)
    sessions = {}
    for threads in setup["threads"]:  # 0: onnxruntime's default (one per core)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        for graph, path in setup["graphs"].items():
            sessions[runtime_name(graph, threads)] = ort.InferenceSession(path, options,
                                                                          providers=["CPUExecutionProvider"])
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            break
        session = sessions[request["runtime"]]
        if request["op"] == "time":  # rows: indices of batches of request["batch"] (default 1) sentences
            rows = batches(ids[:request.get("sentences", setup["sentences"])], request.get("batch", 1))
            seconds, steps = [], 0
            for i in request["rows"]:
                row = np.minimum(rows[i], request.get("max_id", np.iinfo(np.int32).max))
                started = time.perf_counter()
                steps += session.run(["tokens"], {"encoder_token_ids": row})[0].shape[2]
                seconds.append(time.perf_counter() - started)
            reply = {"seconds": seconds, "steps": steps}
        else:  # decode: every row, for BLEU
            out = decode_all(session, ids[:request.get("sentences", len(ids))], request["batch"])
            np.savez(request["output"], **out)
            reply = {"tensorflow_imported": "tensorflow" in sys.modules}
        print(REPLY + json.dumps(reply), flush=True)


def runtime_name(graph: str, threads: int) -> str:
    return f"{graph}/{threads or 'default'}_threads"




def interleaved(runners: dict, count: int, rounds: int) -> dict:
    """Seconds per sentence per runtime over ``count`` batch-1 rows, decoded round by round in rotating order.

    ``runners``: ``{name: f(row indices) -> seconds per row}``. The first 3 rows run once untimed first (a
    session's first runs allocate).
    """
    names = list(runners)
    for name in names:
        runners[name](list(range(min(3, count))))
    seconds = {name: [] for name in names}
    for k, chunk in enumerate(np.array_split(np.arange(count), rounds)):
        for name in names[k % len(names):] + names[:k % len(names)]:
            seconds[name].extend(runners[name](chunk.tolist()))
    return seconds


# Random-weight models of growing size (hidden, embedding, target vocabulary): how the int8 gain grows with the
# weights read per step. Source vocabulary 8,000 (the test ids are clipped into it).
SIZES = [(256, 128, 6246), (512, 256, 6242), (512, 256, 16000)]
SIZE_SOURCE_VOCAB = 8000


def size_graphs(folder: str) -> dict:
    """``{"h{hidden}_v{vocab}/{fp32|int8}": path}``: greedy graphs of random bidirectional-GRU Bahdanau models.

    ``min_length`` 1000 keeps ``</s>`` out, so every row decodes to its length limit in both graphs (the same step
    count whatever the random weights choose).
    """
    import keras

    from tfs2s.core.config import DecodingConfig, ModelConfig
    from tfs2s.core.models import build_models
    from tfs2s.export.onnx.encoder import build_encoder, compose
    from tfs2s.export.onnx.graph import save_model
    from tfs2s.export.onnx.greedy import build_greedy_decoder

    paths = {}
    for hidden, embedding, vocab in SIZES:
        keras.utils.set_random_seed(0)
        models = build_models(ModelConfig(embedding_dim=embedding, hidden=hidden, attention_units=hidden // 2,
                                          dropout=0.0), SIZE_SOURCE_VOCAB, vocab)
        rng = np.random.default_rng(0)
        models.training.set_weights([rng.normal(0, 0.05, w.shape).astype(np.float32)
                                     for w in models.training.get_weights()])
        decoding = DecodingConfig(max_length_ratio=1.5, max_length_offset=10, min_length=1000)
        encoder = build_encoder(models)
        for quantize in (None, "int8"):
            name = f"h{hidden}_v{vocab}/{quantize or 'fp32'}"
            paths[name] = save_model(compose(encoder, build_greedy_decoder(models, decoding, quantize=quantize)),
                                     os.path.join(folder, name.replace("/", "_") + ".onnx"))
    return paths


def size_sweep(worker, sentences: int, rounds: int) -> dict:
    """Microseconds per decoding step (encoder included) of each size's fp32 and int8 graph, 1 thread, interleaved."""
    seconds = {name: 0.0 for name in (f"h{h}_v{v}/{q}" for h, _, v in SIZES for q in ("fp32", "int8"))}
    steps = dict.fromkeys(seconds, 0)
    for k, chunk in enumerate(np.array_split(np.arange(sentences), rounds)):
        for name in (list(seconds) if k % 2 else list(seconds)[::-1]):
            reply = worker.ask(op="time", runtime=runtime_name(name, 1), rows=chunk.tolist(),
                               max_id=SIZE_SOURCE_VOCAB - 1)
            seconds[name] += sum(reply["seconds"])
            steps[name] += reply["steps"]
    out = {}
    for hidden, embedding, vocab in SIZES:
        key = f"h{hidden}_v{vocab}"
        us = {q: round(1e6 * seconds[f"{key}/{q}"] / steps[f"{key}/{q}"], 1) for q in ("fp32", "int8")}
        out[key] = {"hidden": hidden, "embedding": embedding, "target_vocab": vocab, "us_per_step": us,
                    "int8_vs_fp32": round(us["fp32"] / us["int8"], 2)}
    return out


def beam_rows(worker, signature, ids: np.ndarray, sentences: int, rounds: int, folder: str) -> tuple[dict, dict]:
    """Beam search at batch ``BEAM_BATCH`` over the first ``sentences`` rows of ``ids``: the SavedModel's
    ``signature`` (``translate_ids``, in this process) and ``BEAM_GRAPHS`` (in the worker, each thread setting),
    interleaved batch by batch in rotating order. Returns the speeds (with the int8 / fp32 ``round_ratios``) and each
    runtime's tokens and alignment from the timed decoding itself."""
    import tensorflow as tf

    chunks = batches(ids[:sentences], BEAM_BATCH)
    kept = {}

    def savedmodel(indices):
        seconds = []
        for i in indices:
            started = time.perf_counter()
            out = signature(encoder_token_ids=tf.constant(chunks[i]))
            kept[i] = {k: out[k].numpy() for k in ("tokens", "alignment")}
            seconds.append(time.perf_counter() - started)
        return seconds

    runners = {"savedmodel_beam": savedmodel}
    runners.update({runtime_name(g, t): (lambda indices, k=runtime_name(g, t): worker.ask(
        op="time", runtime=k, rows=indices, batch=BEAM_BATCH, sentences=sentences)["seconds"])
        for t in THREADS for g in BEAM_GRAPHS})
    rounds = min(rounds, len(chunks))
    seconds = interleaved(runners, len(chunks), rounds)
    timing = {k: batch_speed(v, [len(c) for c in chunks]) for k, v in seconds.items()}
    timing["round_ratios"] = round_ratios(seconds, len(chunks), rounds, *BEAM_GRAPHS)
    decoded = {"savedmodel_beam": joined([kept[i] for i in range(len(chunks))], ids.shape[1])}
    for graph in BEAM_GRAPHS:
        path = os.path.join(folder, f"{graph}.npz")
        request = dict(op="decode", runtime=runtime_name(graph, 0), batch=BEAM_BATCH, sentences=sentences,
                       output=path)
        assert not worker.ask(**request)["tensorflow_imported"]
        decoded[graph] = dict(np.load(path))
    return timing, decoded


def round_ratios(seconds: dict, count: int, rounds: int, fp32: str = "onnx_fp32", int8: str = "onnx_int8") -> dict:
    """int8 / fp32 speed ratio per round (the runtimes of a round ran back to back: the load was alike), each graph
    at its faster thread setting in that round, and per thread setting; medians over the rounds."""
    bounds = np.cumsum([0] + [len(c) for c in np.array_split(np.arange(count), rounds)])
    per_round = {k: np.array([sum(v[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]) for k, v in seconds.items()}

    def fastest(graph):
        return np.min([per_round[runtime_name(graph, t)] for t in THREADS], axis=0)

    ratios = {"best_thread_setting": fastest(fp32) / fastest(int8)}
    ratios.update({f"{t or 'default'}_threads": per_round[runtime_name(fp32, t)]
                   / per_round[runtime_name(int8, t)] for t in THREADS})
    return {k: {"median": round(float(np.median(v)), 2), "min": round(float(v.min()), 2),
                "max": round(float(v.max()), 2)} for k, v in ratios.items()}


def speed(latencies: list) -> dict:
    return {"sentences": len(latencies), "sentences_per_second": round(len(latencies) / sum(latencies), 1),
            "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 2),
            "p95_ms": round(1000 * float(np.percentile(latencies, 95)), 2)}


def batch_speed(seconds: list, sentences: list) -> dict:
    """Speed of batched requests: ``seconds`` per batch of ``sentences[i]`` sentences."""
    return {"sentences": int(sum(sentences)), "batch": BEAM_BATCH,
            "sentences_per_second": round(sum(sentences) / sum(seconds), 1),
            "p50_ms_per_batch": round(1000 * float(np.percentile(seconds, 50)), 1),
            "p95_ms_per_batch": round(1000 * float(np.percentile(seconds, 95)), 1)}


def decode_all(session, ids: np.ndarray, size: int) -> dict:
    """The graph's tokens and alignment for every row of ``ids`` (padded to one width), in batches of ``size``."""
    return joined([dict(zip(["tokens", "alignment"], session.run(["tokens", "alignment"], {"encoder_token_ids": b})))
                   for b in batches(ids, size)], ids.shape[1])


def joined(outputs: list, source_width: int) -> dict:
    """Batches' ``tokens [b, N, L]`` and ``alignment [b, N, L, S]`` padded to one ``L`` (and ``S``), concatenated."""
    width = max(o["tokens"].shape[2] for o in outputs)
    tokens = np.concatenate([np.pad(o["tokens"], [(0, 0), (0, 0), (0, width - o["tokens"].shape[2])])
                             for o in outputs])
    alignment = np.concatenate([np.pad(o["alignment"], [(0, 0), (0, 0), (0, width - o["alignment"].shape[2]),
                                                        (0, source_width - o["alignment"].shape[3])])
                                for o in outputs])
    return {"tokens": tokens, "alignment": alignment}


def same_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, whether token arrays ``[B, 1, L]`` of possibly different widths hold the same ids."""
    width = max(a.shape[2], b.shape[2])
    a, b = (np.pad(x, [(0, 0), (0, 0), (0, width - x.shape[2])]) for x in (a, b))
    return (a == b).all(axis=(1, 2))


def texts(translator, decoded: dict, ids: np.ndarray, sources: list) -> list:
    """The export's text of decoded ids: detokenized, ``<unk>`` replaced where the export replaces it."""
    import tensorflow as tf

    replace = translator.replaces_unknown
    out = translator.finish({"tokens": tf.constant(decoded["tokens"]), "alignment": tf.constant(decoded["alignment"])},
                            tf.constant(ids), tf.constant(sources) if replace else None)
    return [t.decode("utf-8") for t in out["text"].numpy()[:, 0]]


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", default=DEFAULT_EXPORT, help="a version folder exported with --onnx")
    parser.add_argument("--run-dir", default=DEFAULT_RUN, help="the trained run the export was made from")
    parser.add_argument("--sentences", type=int, default=200, help="test sentences timed at batch 1")
    parser.add_argument("--rounds", type=int, default=8, help="rounds the timed sentences are split into")
    parser.add_argument("--beam-sentences", type=int, default=1000,
                        help=f"test sentences decoded with beam search at batch {BEAM_BATCH} (0: no beam rows)")
    parser.add_argument("--size-sentences", type=int, default=60,
                        help="sentences per random model of the size sweep (0: no sweep)")
    parser.add_argument("--results", default=RESULTS, help="where the results go (a smoke run: elsewhere)")
    parser.add_argument("--summary", default=SPEED_SUMMARY, help="the summary file whose keys are updated")
    parser.add_argument("--ort-worker", nargs=2, help=argparse.SUPPRESS)
    return parser.parse_args()


def main():
    args = arguments()
    if args.ort_worker:
        return ort_worker(*args.ort_worker)
    import tensorflow as tf

    from tfs2s.data import corpora
    import onnx

    from tfs2s.export.onnx.convert import INT8_BEAM_FILE, INT8_GREEDY_FILE, int8_greedy_model
    from tfs2s.export.onnx.encoder import build_encoder, compose
    from tfs2s.export.onnx.graph import save_model
    from tfs2s.export.onnx.greedy import build_greedy_decoder
    from tfs2s.export.onnx.int8_pass import quantize_products
    from tfs2s.tasks import load

    started = time.time()
    load_average = os.getloadavg()[0]
    translator = load(args.run_dir)
    with open(os.path.join(args.export, "assets.extra", "tfs2s_export.json"), encoding="utf-8") as f:
        exported_decoding = json.load(f)["decoding"]
    if exported_decoding != translator.config.decoding.__dict__:
        print(f"warning: the run's decoding {translator.config.decoding.__dict__} is not the export's "
              f"{exported_decoding}", file=sys.stderr)
    pairs = corpora.load_split(translator.config.data, "test")
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    ids = translator.encode(tf.constant(sources)).numpy()
    folder = tempfile.mkdtemp(prefix="tfs2s_int8_")
    graphs = {"onnx_fp32": save_model(compose(build_encoder(translator.models),
                                              build_greedy_decoder(translator.models, translator.config.decoding)),
                                      os.path.join(folder, "translate_ids_greedy.onnx")),
              "onnx_int8": save_model(int8_greedy_model(translator.models, translator.config.decoding),
                                      os.path.join(folder, INT8_GREEDY_FILE)),
              "onnx_fp32_export": os.path.join(args.export, "onnx", "translate_ids_greedy.onnx"),
              **(size_graphs(folder) if args.size_sentences else {})}
    if args.beam_sentences:  # the beam graph as exported (tf2onnx's conversion) and its int8 copy written now
        graphs["onnx_beam_fp32"] = os.path.join(args.export, "onnx", "translate_ids_beam.onnx")
        graphs["onnx_beam_int8"] = save_model(quantize_products(onnx.load(graphs["onnx_beam_fp32"])),
                                              os.path.join(folder, INT8_BEAM_FILE))
    ids_path = os.path.join(folder, "ids.npy")
    np.save(ids_path, ids)
    setup_path = os.path.join(folder, "setup.json")
    write_json(setup_path, {"graphs": graphs, "threads": THREADS, "sentences": args.sentences})
    worker = Worker([sys.executable, __file__, "--ort-worker", setup_path, ids_path])
    loaded = tf.saved_model.load(args.export)
    signature = loaded.signatures["translate_ids_greedy"]
    rows = batches(ids[:args.sentences], 1)

    def savedmodel(indices):
        seconds = []
        for i in indices:
            started = time.perf_counter()
            signature(encoder_token_ids=tf.constant(rows[i]))["tokens"].numpy()
            seconds.append(time.perf_counter() - started)
        return seconds

    runners = {"savedmodel": savedmodel}
    runners.update({runtime_name(g, t): (lambda indices, k=runtime_name(g, t): worker.ask(
        op="time", runtime=k, rows=indices)["seconds"]) for t in THREADS for g in ("onnx_fp32", "onnx_int8")})
    seconds = interleaved(runners, len(rows), args.rounds)
    timing = {k: speed(v) for k, v in seconds.items()}
    timing["round_ratios"] = round_ratios(seconds, len(rows), args.rounds)

    decoded = {}
    for name, graph, size in (("onnx_fp32", "onnx_fp32", 1), ("onnx_int8", "onnx_int8", 1),
                              ("onnx_int8_batch64", "onnx_int8", 64), ("onnx_fp32_export", "onnx_fp32_export", 64)):
        path = os.path.join(folder, f"{name}.npz")
        request = dict(op="decode", runtime=runtime_name(graph, 1), batch=size, output=path)
        assert not worker.ask(**request)["tensorflow_imported"]
        decoded[name] = dict(np.load(path))
    beam = (beam_rows(worker, loaded.signatures["translate_ids"], ids, args.beam_sentences, args.rounds, folder)
            if args.beam_sentences else None)
    sweep = size_sweep(worker, args.size_sentences, 4) if args.size_sentences else None
    worker.close()
    node = node_speed({k: graphs[k] for k in ("onnx_fp32", "onnx_int8")}, ids, args.sentences, args.rounds, folder)
    export_tokens = decoded.pop("onnx_fp32_export")["tokens"]
    quality = scored(translator, decoded, "onnx_fp32", ids, sources, references)
    if beam is not None:
        n = args.beam_sentences
        beam = {"timing": beam[0], "quality": scored(translator, beam[1], "onnx_beam_fp32", ids[:n], sources[:n],
                                                     references[:n])}
    fp32_export_same = bool(same_rows(export_tokens, decoded["onnx_fp32"]["tokens"]).all())
    report(args, translator, graphs, timing, quality, fp32_export_same, load_average, started, node, sweep, beam)


def scored(translator, decoded: dict, reference: str, ids, sources, references) -> dict:
    """Cased BLEU and chrF of each runtime's decoded ids, and how many outputs equal those of ``reference``."""
    from tfs2s.core.metrics import bleu_scores

    quality = {}
    for name, out in decoded.items():
        scores = bleu_scores(texts(translator, out, ids, sources), references)
        quality[name] = {"bleu": scores["bleu"], "chrf": scores["chrf"], "bleu_signature": scores["bleu_signature"],
                         f"same_tokens_as_{reference.removeprefix('onnx_')}": round(float(same_rows(
                             out["tokens"], decoded[reference]["tokens"]).mean()), 4)}
    return quality


def report(args, translator, graphs, timing, quality, fp32_export_same, load_average, started, node, sweep, beam):
    def best(graph):  # a graph's fastest thread setting in this run
        return max((timing[runtime_name(graph, t)]["sentences_per_second"], t) for t in THREADS)

    (int8_speed, int8_threads), (fp32_speed, fp32_threads) = best("onnx_int8"), best("onnx_fp32")
    rounds = timing.pop("round_ratios")
    ratio = rounds["best_thread_setting"]["median"]  # the headline: robust to the load changing between rounds
    per_threads = {runtime_name("ratio", t): round(timing[runtime_name("onnx_int8", t)]["sentences_per_second"]
                                                   / timing[runtime_name("onnx_fp32", t)]["sentences_per_second"], 2)
                   for t in THREADS}
    cost = round(quality["onnx_fp32"]["bleu"] - quality["onnx_int8"]["bleu"], 2)
    sizes = {k: round(os.path.getsize(p) / 1e6, 1) for k, p in graphs.items() if k.startswith("onnx")}
    cfg = translator.config.model
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(), "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "machine": machine(), "load_average_at_start": round(load_average, 2),
        "note": ("2 CPU cores shared with other sessions: absolute figures move +-15 % run to run; runtimes were "
                 "interleaved round by round (onnxruntime in a TensorFlow-free worker process, the SavedModel in "
                 "the main one) so the ratios hold better than the absolute figures"),
        "export": os.path.relpath(args.export, ROOT) if args.export.startswith(ROOT) else args.export,
        "model": {"cell": cfg.cell, "attention": cfg.attention, "hidden": cfg.hidden,
                  "target_vocab": int(translator.models.decoder_step.output["logits"].shape[-1])},
        "graph_megabytes": sizes,
        "fp32_written_now_equals_export_fp32_tokens": fp32_export_same,
        "batch1_greedy": timing,
        "test_2016_flickr": quality,
        "int8_vs_fp32_onnx_greedy_b1": ratio,
        "int8_vs_fp32_onnx_greedy_b1_how": ("median over the rounds of fp32 / int8 seconds, each graph at its faster "
                                            "onnxruntime thread setting (1 or the default) in that round"),
        "int8_vs_fp32_round_ratios": rounds,
        "int8_vs_fp32_whole_run": {"ratio": round(int8_speed / fp32_speed, 2),
                                   "int8_threads": int8_threads or "default",
                                   "fp32_threads": fp32_threads or "default"},
        "int8_vs_fp32_per_thread_setting": per_threads,
        "int8_vs_savedmodel_greedy_b1": round(int8_speed / timing["savedmodel"]["sentences_per_second"], 2),
        "int8_bleu_cost": cost,
        "int8_bleu_cost_note": "fp32 ONNX BLEU minus int8 ONNX BLEU (batch 1); negative: int8 scored higher",
        "onnxruntime_node_batch1_greedy_sentences_per_second": node,
        "size_sweep_random_weights_1_thread": sweep,
        "beam_batch64": beam_record(beam, translator),
        "seconds": round(time.time() - started, 1),
    }
    print(f"\nbatch-1 greedy, first {args.sentences} test_2016_flickr sentences ({record['machine']})")
    print(f"{'runtime':<30}{'sent/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'MB':>8}")
    for name, t in timing.items():
        size = sizes.get(name.split("/")[0], "")
        print(f"{name:<30}{t['sentences_per_second']:>9}{t['p50_ms']:>9}{t['p95_ms']:>9}{size:>8}")
    print(f"\ntest_2016_flickr, 1000 sentences, cased BLEU (sacrebleu)")
    for name, q in quality.items():
        print(f"{name:<30}{q['bleu']:>7}   same tokens as fp32: {100 * q['same_tokens_as_fp32']:.1f} %")
    print(f"\nint8 / fp32 ONNX at batch 1: {ratio}x ({record['int8_vs_fp32_onnx_greedy_b1_how']}); per round: "
          f"{rounds}; whole run per thread setting {per_threads}; BLEU cost {cost}")
    if node:
        print(f"onnxruntime-node, batch 1 sentences/s: {node}")
    for row in (sweep or {}).values():
        print(f"random model hidden {row['hidden']}, vocabulary {row['target_vocab']}: us/step fp32 "
              f"{row['us_per_step']['fp32']}, int8 {row['us_per_step']['int8']} ({row['int8_vs_fp32']}x)")
    # Which model the int8 keys measured: the gain grows with the weights read per step (the size sweep).
    headline = {"int8_vs_fp32_onnx_greedy_b1": ratio, "int8_bleu_cost": cost,
                "int8_model": f"{translator.config.name}: {cfg.cell} {cfg.hidden}, target vocabulary "
                              f"{record['model']['target_vocab']}"}
    if beam is not None:
        print_beam(record["beam_batch64"])
        headline.update({k: record["beam_batch64"][k] for k in ("int8_vs_fp32_onnx_beam_b64", "int8_beam_bleu_cost")})
    write_json(args.results, record)
    update_summary(headline, args.summary)
    print(f"wrote {os.path.relpath(args.results, ROOT)} and {os.path.relpath(args.summary, ROOT)}")


def beam_record(beam: dict | None, translator) -> dict | None:
    """The beam rows' part of the results: speeds, BLEU, the int8 / fp32 ratio (median over rounds) and BLEU cost."""
    if beam is None:
        return None
    timing, quality = dict(beam["timing"]), beam["quality"]
    rounds = timing.pop("round_ratios")
    return {"beam_width": translator.config.decoding.beam_width, "batch": BEAM_BATCH, "timing": timing,
            "test_2016_flickr": quality, "int8_vs_fp32_round_ratios": rounds,
            "int8_vs_fp32_onnx_beam_b64": rounds["best_thread_setting"]["median"],
            "int8_beam_bleu_cost": round(quality["onnx_beam_fp32"]["bleu"] - quality["onnx_beam_int8"]["bleu"], 2)}


def print_beam(record: dict) -> None:
    sentences = next(iter(record["timing"].values()))["sentences"]
    print(f"\nbeam {record['beam_width']} at batch {record['batch']}, first {sentences} test_2016_flickr sentences")
    print(f"{'runtime':<32}{'sent/s':>9}{'p50 ms/batch':>14}{'BLEU':>8}{'same as fp32':>14}")
    for name, t in record["timing"].items():
        q = record["test_2016_flickr"].get(name.split("/")[0])
        bleu, same = (q["bleu"], f"{100 * q['same_tokens_as_beam_fp32']:.1f} %") if q else ("", "")
        print(f"{name:<32}{t['sentences_per_second']:>9}{t['p50_ms_per_batch']:>14}{bleu:>8}{same:>14}")
    print(f"int8 / fp32 ONNX beam at batch {record['batch']}: {record['int8_vs_fp32_onnx_beam_b64']}x (per round: "
          f"{record['int8_vs_fp32_round_ratios']}); BLEU cost {record['int8_beam_bleu_cost']}")


if __name__ == "__main__":
    main()
