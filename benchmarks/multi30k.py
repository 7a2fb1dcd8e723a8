"""Multi30k German->English benchmark: train each configuration, report BLEU, perplexity and speed.

Each configuration trains in its own process (train on train, select on val by loss, time-boxed by the
config's ``training.max_minutes``), then is evaluated on test_2016_flickr with greedy and beam-5 decoding.
Prints a table and writes ``benchmarks/results/multi30k.json``.

    python benchmarks/multi30k.py --configs bahdanau,cho,sutskever
    python benchmarks/multi30k.py --configs bahdanau --set training.max_minutes=5   # quicker
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
JOEYNMT_TOKENS_PER_SECOND = 898.0  # peer measured on this kind of machine (see BENCHMARKS.md)


def run_one(name: str, overrides: list[str], runs_dir: str) -> dict:
    """Trains and evaluates one configuration in this process."""
    from tfs2s.config import load_config
    from tfs2s.evaluation import evaluate_split
    from tfs2s.training import load_run, train
    from tfs2s.translator import Translator

    cfg = load_config(os.path.join(ROOT, "pipelines", "configs", f"multi30k_{name}.yaml"), overrides)
    run_dir = os.path.join(runs_dir, name)
    summary = train(cfg, run_dir, verbose=2)
    cfg, models, source_tok, target_tok = load_run(run_dir)
    translator = Translator(models, source_tok, target_tok, cfg)
    test = evaluate_split(translator, "test", ["greedy", "beam"])
    return {"config": name, "overrides": overrides, "train": summary, "test": test}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="bahdanau,cho,sutskever")
    parser.add_argument("--set", action="append", default=[], help="override applied to every config")
    parser.add_argument("--runs-dir", default=os.path.join(ROOT, "runs", "benchmark"))
    parser.add_argument("--output", default=os.path.join(HERE, "results", "multi30k.json"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        print("RESULT " + json.dumps(run_one(args.one, args.set, args.runs_dir)), flush=True)
        return

    rows = []
    for name in [c for c in args.configs.split(",") if c]:
        cmd = [sys.executable, __file__, "--one", name, "--runs-dir", args.runs_dir] + \
              [f"--set={s}" for s in args.set]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        result = next((json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")), None)
        if result is None:
            print(proc.stdout[-3000:])
            raise SystemExit(f"{name} failed (exit {proc.returncode})")
        rows.append(result)
        print(f"finished {name}", flush=True)

    record = {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "command": " ".join(sys.argv), "results": rows}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, ensure_ascii=False)

    header = ("config", "train min", "tok/s", "x JoeyNMT", "test ppl", "greedy BLEU", "beam5 BLEU", "beam5 lc",
              "beam5 chrF", "val BLEU curve (min: greedy)")
    print(" | ".join(header))
    for r in rows:
        tr, te = r["train"], r["test"]
        curve = ", ".join(f"{p['train_minutes']:.0f}: {p['greedy_bleu']:.1f}" for p in tr["val_bleu_curve"])
        print(" | ".join(str(x) for x in (
            r["config"], tr["train_minutes"], tr["train_tokens_per_second"],
            round(tr["train_tokens_per_second"] / JOEYNMT_TOKENS_PER_SECOND, 2), te["perplexity"],
            te["greedy"]["bleu"], te["beam"]["bleu"], te["beam"]["bleu_lowercase"], te["beam"]["chrf"], curve)))


if __name__ == "__main__":
    main()
