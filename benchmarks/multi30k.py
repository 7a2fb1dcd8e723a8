"""Multi30k German->English benchmark: train each configuration, report BLEU, perplexity and speed.

Each configuration trains in its own process (train on train, select on val by loss, time-boxed by the
config's ``training.max_minutes``), then is evaluated on test_2016_flickr with greedy and beam-5 decoding.
Prints a table and writes ``benchmarks/results/multi30k.json``.

    python benchmarks/multi30k.py --configs bahdanau,cho,sutskever
    python benchmarks/multi30k.py --configs bahdanau --set training.max_minutes=5   # quicker
    python benchmarks/multi30k.py --sweep runs/benchmark/bahdanau    # decoding search on a trained run
    python benchmarks/multi30k.py --configs small --compare training.output_bias_init=zeros,unigram \
        --runs-dir runs/output_bias --output benchmarks/results/multi30k_output_bias.json   # an ablation

``--sweep`` chooses the checkpoint (where the run averages epochs: the average or the best single epoch), beam
width and length penalty on the validation split (greedy BLEU is the baseline) and
reports the chosen setting once on test; it writes ``benchmarks/results/multi30k_sweep.json`` (``--sweep-output``)
and, for a Multi30k run, ``multi30k_test2016_bleu`` in ``benchmarks/results/quality_summary.json``.

    python benchmarks/multi30k.py --configs best --runs-dir runs/best40    # the issue-21 configuration, 40 min
    python benchmarks/multi30k.py --sweep runs/best40/best
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
JOEYNMT_TOKENS_PER_SECOND = 898.0  # peer measured on this kind of machine (see BENCHMARKS.md)


def run_one(name: str, overrides: list[str], runs_dir: str, run_name: str | None = None) -> dict:
    """Trains and evaluates one configuration in this process (in ``runs_dir/run_name``, default the config
    name)."""
    from tfs2s.core.config import load_config
    from tfs2s.apps.translation import evaluate_split
    from tfs2s.tasks import load, train

    cfg = load_config(os.path.join(ROOT, "pipelines", "configs", f"multi30k_{name}.yaml"), overrides)
    run_dir = os.path.join(runs_dir, run_name or name)
    summary = train(cfg, run_dir, verbose=2)
    translator = load(run_dir)
    test = evaluate_split(translator, "test", ["greedy", "beam"])
    return {"config": run_name or name, "overrides": overrides, "train": summary, "test": test}


SWEEP = [(1, 0.0), (5, 0.0), (5, 0.6), (5, 1.0), (10, 0.0), (10, 0.6), (10, 1.0)]
TEST_2016 = "multi30k"  # the corpus whose test split is test_2016_flickr: its figure is the quality headline


WEIGHTS = ("best", "best_epoch")  # with training.average_checkpoints "best" is the average, "best_epoch" the best one


def _sweep_rows(translator, weights: str, val) -> list[dict]:
    from tfs2s.core.metrics import bleu_scores

    rows = []
    for width, alpha in SWEEP:
        strategy, options = ("greedy", {}) if width == 1 else ("beam", {"beam_width": width, "length_penalty": alpha})
        hyps = translator.translate([s for s, _ in val], strategy=strategy, **options)
        scores = bleu_scores(hyps, [t for _, t in val])
        rows.append({"weights": weights, "beam_width": width, "length_penalty": alpha, "val_bleu": scores["bleu"],
                     "val_bleu_lowercase": scores["bleu_lowercase"]})
        print(rows[-1], flush=True)
    return rows


def sweep(run_dir: str, output: str, summary: bool = True, weights: tuple = WEIGHTS) -> dict:
    """Checkpoint (the average or the best single epoch, where the run averages) x beam width x length penalty
    chosen on validation (greedy BLEU the baseline); the best setting evaluated once on test. On Multi30k the test
    BLEU goes to ``quality_summary.json`` as ``multi30k_test2016_bleu`` unless ``summary`` is false."""
    from tfs2s.apps.translation import evaluate_split
    from tfs2s.core.errors import RunNotFoundError
    from tfs2s.data import corpora
    from tfs2s.tasks import load

    from summary import QUALITY_SUMMARY, commit, machine, update_summary

    rows, translators = [], {}
    for name in weights:
        try:
            translators[name] = load(run_dir, name)
        except RunNotFoundError:  # a run without averaging has no best_epoch checkpoint
            continue
        val = corpora.load_split(translators[name].config.data, "validation")
        rows += _sweep_rows(translators[name], name, val)
    best = max(rows, key=lambda r: r["val_bleu"])
    translator = translators[best["weights"]]
    strategy = "greedy" if best["beam_width"] == 1 else "beam"
    options = {} if strategy == "greedy" else {"beam_width": best["beam_width"],
                                               "length_penalty": best["length_penalty"]}
    test = evaluate_split(translator, "test", [strategy], options=options)
    record = {"date": datetime.date.today().isoformat(), "commit": commit(), "machine": machine(),
              "command": " ".join(sys.argv), "run_dir": run_dir, "validation_sentences": len(val),
              "validation": rows, "chosen": best, "test": test}
    os.makedirs(os.path.dirname(output), exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, ensure_ascii=False)
    if summary and translator.config.data.corpus == TEST_2016:
        update_summary({"multi30k_test2016_bleu": test[strategy]["bleu"]}, QUALITY_SUMMARY)
    print(json.dumps({"chosen": best, "test": {k: v for k, v in test[strategy].items() if k != "examples"}},
                     indent=2))
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="bahdanau,cho,sutskever")
    parser.add_argument("--set", action="append", default=[], help="override applied to every config")
    parser.add_argument("--runs-dir", default=os.path.join(ROOT, "runs", "benchmark"))
    parser.add_argument("--output", default=os.path.join(HERE, "results", "multi30k.json"))
    parser.add_argument("--compare", metavar="KEY=V1,V2,...",
                        help="train each config once per value of KEY, one after the other (an ablation)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--run-name", help=argparse.SUPPRESS)
    parser.add_argument("--sweep", metavar="RUN_DIR", help="decoding search on a trained run (see above)")
    parser.add_argument("--sweep-output", default=os.path.join(HERE, "results", "multi30k_sweep.json"))
    parser.add_argument("--no-summary", action="store_true",
                        help="--sweep: leave benchmarks/results/quality_summary.json as it is")
    args = parser.parse_args()

    if args.sweep:
        sweep(args.sweep, args.sweep_output, summary=not args.no_summary)
        return

    if args.one:
        print("RESULT " + json.dumps(run_one(args.one, args.set, args.runs_dir, args.run_name)), flush=True)
        return

    from summary import commit, machine

    measured = commit()  # the code the runs train with, taken before they start (later edits do not count)
    key, _, values = (args.compare or "").partition("=")
    if args.compare and (not key or not values):
        parser.error("--compare takes KEY=V1,V2,...")
    rows = []
    for name in [c for c in args.configs.split(",") if c]:
        for value in [v for v in values.split(",") if v] or [None]:
            run_name = f"{name}-{value}" if value else name
            extra = [f"{key}={value}"] if value else []
            cmd = [sys.executable, __file__, "--one", name, "--run-name", run_name, "--runs-dir", args.runs_dir] + \
                  [f"--set={s}" for s in args.set + extra]
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
            result = next((json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")),
                          None)
            if result is None:
                print(proc.stdout[-3000:])
                raise SystemExit(f"{run_name} failed (exit {proc.returncode})")
            rows.append(result)
            print(f"finished {run_name}", flush=True)

    record = {"date": datetime.date.today().isoformat(), "commit": measured, "machine": machine(),
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
