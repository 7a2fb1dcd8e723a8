"""Quality benchmarks of issue 21 that compare variants of one application's config, each trained alone.

``--task aeslc``: email subject lines (``pipelines/configs/aeslc.yaml``) with and without copy attention, ROUGE F1
x 100 (``rouge-score``, stemming) on the validation emails next to the lead and random-sentence baselines, scored
as ``pipelines/summarize.py`` scores them (against each email's original subject), and also against the three
human-written subjects of each dev email (the mean over them and the best of them). Headline: the best variant's
ROUGE-L (its default output: ``<unk>`` replaced where the model allows it) as ``aeslc_dev_rougeL``. Anchors (test split, not this one): Zhang &
Tetreault 2019's best model 23.44; PEGASUS's Transformer from scratch 14.93.

``--task dailydialog``: the conversational model (``pipelines/configs/dailydialog.yaml``) with and without the
regularisation switches, response perplexity against the interpolated Kneser-Ney trigram's on the same validation
responses, as ``pipelines/chatbot.py`` measures it. Headline: the best variant's ratio as
``dailydialog_ppl_ratio``. Anchor: Vinyals & Le 2015's open-domain 0.61 x (OpenSubtitles, a 5-gram).

Each variant trains in its own process, one after the other (time-boxed by ``--max-minutes``, best checkpoint by
validation loss; running the command again resumes unfinished runs). Prints a table, writes
``benchmarks/results/<task>.json`` and, for full runs only (no ``data.limit``, the whole validation split), the
headline in ``benchmarks/results/quality_summary.json``.

    python benchmarks/quality.py --task aeslc --variants copy,plain --max-minutes 30         # about 70 minutes
    python benchmarks/quality.py --task dailydialog --variants regularised,plain --max-minutes 75   # 170 minutes
    python benchmarks/quality.py --task aeslc --variants copy --max-minutes 0.3 --set data.limit=300 \\
        --eval-limit 50 --runs-dir /tmp/q --output /tmp/q.json                                # a smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REGULARISED = ["model.variational_dropout=0.2", "model.weight_dropout=0.3", "model.embedding_dropout=0.1",
               "training.average_checkpoints=3"]


@dataclasses.dataclass(frozen=True)
class Task:
    """One application's benchmark: its config stem, variants (overrides), headline key and direction."""
    config: str
    variants: dict
    key: str
    higher_is_better: bool


TASKS = {
    "aeslc": Task("aeslc", {"plain": [], "copy": ["model.copy=true"]}, "aeslc_dev_rougeL", True),
    "dailydialog": Task("dailydialog", {"plain": [], "regularised": REGULARISED}, "dailydialog_ppl_ratio", False),
}


def score(task: str, translator, eval_limit: int, decode_limit: int = 2000) -> dict:
    """The task's validation scores, as its pipeline computes them (``decode_limit``: dialogue contexts decoded)."""
    from tfs2s.data import corpora

    d, dc = translator.config.data, translator.config.decoding
    train_pairs = corpora.load_split(d, "train", d.limit)
    val_pairs = corpora.load_split(d, "validation", eval_limit)
    if task == "aeslc":
        from tfs2s.apps.summarization import evaluate_summaries
        from tfs2s.data.summarization import read_aeslc_annotations

        # Also against the three human-written subjects of each dev email, whose protocol anchors may follow.
        corpus = corpora.get_corpus(d.corpus)
        root = corpora.prepare_corpus(d.corpus, ["validation"], d.data_dir, progress=False)
        tarball = os.path.join(root, corpus.folder, corpus.splits["validation"])
        annotations = read_aeslc_annotations(tarball)[:len(val_pairs)]
        return evaluate_summaries(translator, train_pairs, val_pairs, annotations=annotations)
    from tfs2s.apps.dialogue import evaluate_dialogue
    return evaluate_dialogue(translator, train_pairs, val_pairs, 3, decode_limit=decode_limit,
                             sample_options={"temperature": dc.temperature, "top_k": dc.top_k})


def headline(task: str, scores: dict) -> float:
    """The figure that goes to the quality summary (see the module docstring)."""
    if task == "aeslc":
        return scores.get("model_unk_replaced", scores["model"])["rougeL"]
    return scores["perplexity_ratio"]


def run_one(task: str, variant: str, overrides: list[str], run_dir: str, eval_limit: int) -> dict:
    """Trains (or resumes) one variant in ``run_dir`` and scores it on the validation split."""
    from tfs2s.core.config import load_config
    from tfs2s.tasks import load, train
    from tfs2s.training.run_dir import checkpoint_path

    variant_overrides = TASKS[task].variants[variant] + overrides
    summary = train(load_config(TASKS[task].config, variant_overrides), run_dir, verbose=2)
    scores = score(task, load(run_dir), eval_limit)
    result = {"variant": variant, "overrides": variant_overrides, "run_dir": run_dir, "train": summary,
              "validation": scores, "weights": "best", "headline": headline(task, scores)}
    if task == "dailydialog" and os.path.exists(checkpoint_path(run_dir, "best_epoch")):
        # An averaging run: the average (what the run ships) against its best single epoch, by the same validation
        # perplexity (averaging cost 0.5-0.75 BLEU on Multi30k, where the model still improved every epoch).
        # Perplexities only: one context decoded, not 2,000.
        alone = score(task, load(run_dir, "best_epoch"), eval_limit, decode_limit=1)
        result["best_epoch_validation"] = alone
        if headline(task, alone) < result["headline"]:
            result.update(weights="best_epoch", headline=headline(task, alone))
    return result


def table(task: str, rows: list[dict]) -> None:
    """Prints one line per variant."""
    if task == "aeslc":
        header = ("variant", "train min", "steps", "val ppl", "ROUGE-1", "ROUGE-2", "ROUGE-L", "ROUGE-L <unk> shown",
                  "lead ROUGE-L", "ROUGE-L vs annotations mean / best", "lead vs annotations")
        cells = [(s.get("model_unk_replaced", s["model"]), s) for s in (r["validation"] for r in rows)]

        def against(scores, who):  # the human-written subjects (results written before them have none)
            a = scores.get("annotations", {}).get(who)
            return f"{a['mean']['rougeL']} / {a['best']['rougeL']}" if a else "-"

        lines = [(b["rouge1"], b["rouge2"], b["rougeL"], s["model"]["rougeL"], s["lead"]["rougeL"], against(s, "model"),
                  against(s, "lead")) for b, s in cells]
    else:
        header = ("variant", "train min", "steps", "val ppl", "seq2seq ppl", "trigram ppl", "ratio",
                  "best epoch's ratio")
        lines = [(r["validation"]["seq2seq_perplexity"], r["validation"]["ngram_perplexity"],
                  r["validation"]["perplexity_ratio"], r.get("best_epoch_validation", {}).get("perplexity_ratio", "-"))
                 for r in rows]
    print(" | ".join(header))
    for r, line in zip(rows, lines):
        tr = r["train"]
        print(" | ".join(str(x) for x in (r["variant"], tr["train_minutes"], tr["train_steps"],
                                            tr.get("val_perplexity"), *line)))


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, choices=sorted(TASKS))
    parser.add_argument("--variants", help="comma-separated (default: every variant of the task, in order)")
    parser.add_argument("--max-minutes", type=float, help="training minutes of each variant (default: the config's)")
    parser.add_argument("--set", action="append", default=[], help="override applied to every variant")
    parser.add_argument("--eval-limit", type=int, default=0, help="validation examples scored (0 = all)")
    parser.add_argument("--runs-dir", help="default: runs/<task>_bench")
    parser.add_argument("--output", help="default: benchmarks/results/<task>.json")
    parser.add_argument("--no-summary", dest="summary", action="store_false",
                        help="leave benchmarks/results/quality_summary.json as it is")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    known = TASKS[args.task].variants
    args.variants = [v for v in (args.variants or ",".join(known)).split(",") if v]
    unknown = sorted(set(args.variants) - set(known))
    if unknown or not args.variants:
        parser.error(f"--variants of {args.task}: choose from {sorted(known)} (got {','.join(args.variants)!r})")
    args.runs_dir = args.runs_dir or os.path.join(ROOT, "runs", f"{args.task}_bench")
    args.output = args.output or os.path.join(HERE, "results", f"{args.task}.json")
    return args


def main(argv=None) -> None:
    args = parse(argv)
    overrides = ([f"training.max_minutes={args.max_minutes}"] if args.max_minutes is not None else []) + args.set
    if args.one:
        result = run_one(args.task, args.one, overrides, os.path.join(args.runs_dir, args.one), args.eval_limit)
        print("RESULT " + json.dumps(result, ensure_ascii=False), flush=True)
        return

    rows = []
    for variant in args.variants:
        # One process per variant: each trains on a fresh TensorFlow runtime, as the pipelines do.
        cmd = [sys.executable, __file__, "--one", variant] + [a for a in sys.argv[1:] if not a.startswith("--one")]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        result = next((json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")), None)
        if result is None:
            print(proc.stdout[-3000:])
            raise SystemExit(f"variant {variant} failed (exit {proc.returncode})")
        rows.append(result)
        print(f"finished {variant}: {TASKS[args.task].key} {result['headline']}", flush=True)

    from summary import QUALITY_SUMMARY, commit, machine, update_summary  # benchmarks/summary.py

    record = {"date": datetime.date.today().isoformat(), "commit": commit(), "machine": machine(),
              "command": " ".join(sys.argv), "results": rows}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, ensure_ascii=False)
    table(args.task, rows)
    full = args.eval_limit == 0 and not any(s.startswith("data.limit=") for s in args.set)
    if args.summary and full:
        task = TASKS[args.task]
        best = (max if task.higher_is_better else min)(rows, key=lambda r: r["headline"])
        update_summary({task.key: best["headline"], f"{args.task}_variant": best["variant"]}, QUALITY_SUMMARY)


if __name__ == "__main__":
    main()
