"""Full vs sampled softmax on Anki English->Spanish with the full word vocabulary (issue 6).

Both variants share the vocabularies (learned once), the data order (same seed) and the architecture of
``pipelines/configs/spa_eng.yaml``; only ``training.loss`` differs. Two phases, each variant in its own process:

1. Throughput: the variants alternate (full, sampled, full, sampled, ...) for ``--rounds`` rounds of
   ``--steps`` timed training steps after a warm-up; target tokens/s is the median over rounds, and the ratio
   compares medians measured in the same run.
2. Quality: each variant trains ``--epochs`` epochs on the whole training split (the same batches), then
   decodes the test split (greedy and beam-5; BLEU by sacrebleu). Peak memory is the process's max RSS.

    python benchmarks/large_vocab.py                     # about 70 minutes on 2 idle CPU cores
    python benchmarks/large_vocab.py --epochs 1 --rounds 2 --steps 30 --limit 20000   # quicker

Prints a table and writes ``benchmarks/results/large_vocab.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
CONFIG = os.path.join(ROOT, "pipelines", "configs", "spa_eng.yaml")
VARIANTS = {"full": ["training.loss=cross_entropy"], "sampled": ["training.loss=sampled_softmax"]}


def _config(variant: str, args):
    from tfs2s.core.config import load_config

    overrides = VARIANTS[variant] + [f"training.epochs={max(1, args.epochs)}", f"data.limit={args.limit}"] + args.set
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    return load_config(CONFIG, overrides)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)  # KiB on Linux


def child_throughput(variant: str, args) -> dict:
    """Times ``args.steps`` training steps after ``args.warmup`` untimed ones."""
    import keras

    from tfs2s.data import corpora
    from tfs2s.core import text_data as data
    from tfs2s.tasks.base import SOURCE, TARGET, prepare_tokenizer
    from tfs2s.tasks.text.task import build_run_models
    from tfs2s.training.fit import compile_model

    cfg = _config(variant, args)
    d = cfg.data
    keras.utils.set_random_seed(d.seed)
    pairs = corpora.load_split(d, "train", d.limit)
    source_tok = prepare_tokenizer(cfg, args.vocab_dir, SOURCE, (p[0] for p in pairs), d.source_vocab_size)
    target_tok = prepare_tokenizer(cfg, args.vocab_dir, TARGET, (p[1] for p in pairs), d.target_vocab_size)
    ds = data.make_dataset(pairs, source_tok, target_tok, batch_size=d.batch_size, bucket_width=d.bucket_width,
                           max_source_length=d.max_source_length, max_target_length=d.max_target_length,
                           training=True, shuffle_buffer=d.shuffle_buffer, seed=d.seed)
    batches = list(ds.take(args.warmup + args.steps))
    models = build_run_models(cfg, source_tok.vocab_size, target_tok.vocab_size)
    model = compile_model(models, cfg, 1000)
    for features, targets, weight in batches[: args.warmup]:
        model.train_on_batch(features, targets, sample_weight=weight)
    tokens = 0
    started = time.perf_counter()
    for features, targets, weight in batches[args.warmup:]:
        model.train_on_batch(features, targets, sample_weight=weight)
        tokens += int(weight.numpy().sum())
    seconds = time.perf_counter() - started
    return {"variant": variant, "steps": args.steps, "target_tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_second": round(tokens / seconds, 1), "target_vocab_size": target_tok.vocab_size,
            "peak_rss_mb": _peak_rss_mb()}


def child_quality(variant: str, args) -> dict:
    """Trains one variant on the whole training split and evaluates it on test."""
    from tfs2s.apps.translation import evaluate_split
    from tfs2s.tasks import load, train

    cfg = _config(variant, args)
    run_dir = os.path.join(args.work_dir, variant)
    os.makedirs(run_dir, exist_ok=True)
    for name in os.listdir(args.vocab_dir):  # the same vocabularies for both variants
        shutil.copy(os.path.join(args.vocab_dir, name), run_dir)
    summary = train(cfg, run_dir, verbose=2)
    test = evaluate_split(load(run_dir), "test", ["greedy", "beam"])
    for strategy in ("greedy", "beam"):
        test[strategy].pop("examples", None)
    return {"variant": variant, "train": {k: v for k, v in summary.items() if k != "val_bleu_curve"},
            "val_bleu_curve": summary.get("val_bleu_curve"), "test": test, "peak_rss_mb": _peak_rss_mb()}


def _run_child(kind: str, variant: str, args) -> dict:
    out = os.path.join(args.work_dir, f"{kind}-{variant}-{time.time_ns()}.json")
    command = [sys.executable, __file__, "--child", kind, variant, out, "--work-dir", args.work_dir,
               "--epochs", str(args.epochs), "--limit", str(args.limit), "--steps", str(args.steps),
               "--warmup", str(args.warmup)] + [f"--set={s}" for s in args.set]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    proc = subprocess.run(command, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if proc.returncode:
        raise SystemExit(f"{kind} run of {variant} failed (exit {proc.returncode})")
    with open(out, encoding="utf-8") as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default=os.path.join(ROOT, "runs", "large_vocab"))
    parser.add_argument("--output", default=os.path.join(HERE, "results", "large_vocab.json"))
    parser.add_argument("--data-dir")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs of the quality phase (0 skips it)")
    parser.add_argument("--limit", type=int, default=0, help="training pairs read (0 = all)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating throughput rounds per variant")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per throughput round")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before each throughput round")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.vocab_dir = os.path.join(args.work_dir, "vocab")
    os.makedirs(args.vocab_dir, exist_ok=True)
    if args.child:
        kind, variant, out = args.child
        result = (child_throughput if kind == "throughput" else child_quality)(variant, args)
        with open(out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
        return

    rounds = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            rounds[variant].append(_run_child("throughput", variant, args))
            print(f"throughput {variant}: {rounds[variant][-1]['tokens_per_second']} target tokens/s", flush=True)
    throughput = {v: statistics.median(r["tokens_per_second"] for r in rs) for v, rs in rounds.items()}
    quality = {v: _run_child("quality", v, args) for v in VARIANTS} if args.epochs else {}

    record = {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "command": " ".join(sys.argv), "config": os.path.relpath(CONFIG, ROOT), "overrides": args.set,
              "target_vocab_size": rounds["full"][0]["target_vocab_size"],
              "throughput_rounds": rounds, "median_tokens_per_second": throughput,
              "speedup": round(throughput["sampled"] / throughput["full"], 2), "quality": quality}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    print(f"\ntarget vocabulary: {record['target_vocab_size']} words")
    print("loss | train tok/s (median) | peak RSS MB | train min | val ppl | test BLEU greedy | test BLEU beam-5")
    for v in VARIANTS:
        q = quality.get(v)
        row = [v, throughput[v]]
        if q:
            row += [q["peak_rss_mb"], q["train"]["train_minutes"], q["train"]["val_perplexity"],
                    q["test"]["greedy"]["bleu"], q["test"]["beam"]["bleu"]]
        print(" | ".join(str(x) for x in row))
    print(f"speed-up (sampled / full): {record['speedup']}x")


if __name__ == "__main__":
    main()
