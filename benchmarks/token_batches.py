"""Token batches (``data.batch_tokens``) against sentence batches of the same mean size, in one run, back to back.

The two variants differ only in how training batches are filled. The token budget is chosen so that token
batches hold as many sentences per batch on average as the sentence batches of ``--batch-size`` (default the
config's ``data.batch_size``) do, measured (their buckets' partial batches make that mean a little lower than
the batch size): both then take the same number of updates per epoch. With ``--batch-tokens B``
the budget is given and the sentence batches are sized to match its mean instead. Both counts come from one
pass over the real training pipeline (``tfs2s.core.text_data.make_dataset``), before any training.

Reported per variant:

* batches per epoch, mean sentences per batch, mean and largest padded batch (rows x longest side: the memory a
  step needs), and the padding share (of the source and target positions the model runs over, the share that is
  padding), from one epoch of the pipeline;
* training target tokens/s (``</s>`` included, padding not) and steps/s of a training run;
* validation BLEU (greedy): with ``--minutes M`` each variant trains M minutes with BLEU every M/4 minutes, and the
  table gives the BLEU after M minutes and the minutes each took to reach the lower of the two final BLEUs; with
  ``--steps N`` (default) each trains N steps and BLEU is measured once at the end.

Variants train one after the other in their own process, never at once; ``--rounds R`` repeats the pair in
alternating order (A B B A ...) so a change of machine load touches both alike. Prints a table and writes
``benchmarks/results/token_batches.json``.

    python benchmarks/token_batches.py --minutes 10
    python benchmarks/token_batches.py --steps 200 --output /tmp/token_batches_smoke.json   # a smoke run
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from collections import Counter

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def config_path(name: str) -> str:
    """``multi30k_<name>.yaml`` of the package's configs, or a path."""
    if os.path.exists(name):
        return name
    path = os.path.join(ROOT, "tfs2s", "configs", f"multi30k_{name}.yaml")
    if not os.path.exists(path):
        raise SystemExit(f"no config {name!r} (neither a file nor tfs2s/configs/multi30k_{name}.yaml)")
    return path


def training_examples(cfg):
    """``(pairs, source tokenizer, target tokenizer)`` of ``cfg``'s training split (tokenizers as a run learns
    them, in a scratch folder)."""
    from tfs2s.data import corpora
    from tfs2s.tasks.base import prepare_text_tokenizers

    pairs = corpora.load_split(cfg.data, "train", cfg.data.limit)
    source, target = prepare_text_tokenizers(cfg, tempfile.mkdtemp(prefix="tfs2s-token-batches-"), pairs)
    return pairs, source, target


def example_lengths(cfg, pairs, source, target) -> np.ndarray:
    """Each kept training example's longer side (the length buckets are made of), as the pipeline computes it."""
    from tfs2s.core import text_data as data

    d = cfg.data
    ds = (data.from_pairs(pairs).apply(data.tokenize_pairs(source, target, d.max_source_length, d.reverse_source))
          .apply(data.filter_length(d.max_target_length)))
    return np.array([max(len(ex["source"]), len(ex["target_out"])) for ex in ds.as_numpy_iterator()])


def mean_rows(lengths: np.ndarray, batch_tokens: int, bucket_width: int, max_length: int) -> float:
    """Mean sentences per token batch over one epoch (each bucket's examples in batches of its size)."""
    from tfs2s.core import text_data as data

    boundaries, uppers = data.bucket_bounds(bucket_width, max_length)
    sizes = data.token_batch_sizes(batch_tokens, uppers)
    buckets = Counter(np.searchsorted(boundaries, lengths, side="right").tolist())
    return len(lengths) / sum(math.ceil(n / sizes[b]) for b, n in buckets.items())


def matching_budget(lengths: np.ndarray, batch_size: float, bucket_width: int, max_length: int) -> int:
    """The token budget whose batches hold ``batch_size`` sentences on average (closest; mean rows grow with
    the budget)."""
    low, high = 1, math.ceil(batch_size) * max_length
    while low < high:
        mid = (low + high) // 2
        if mean_rows(lengths, mid, bucket_width, max_length) < batch_size:
            low = mid + 1
        else:
            high = mid
    return min({max(1, low - 1), low}, key=lambda b: abs(mean_rows(lengths, b, bucket_width, max_length) - batch_size))


def epoch_stats(cfg, pairs, source, target, batch_size: int, batch_tokens: int) -> dict:
    """Batch figures of one epoch of the real training pipeline."""
    from tfs2s.core import features as F
    from tfs2s.core import text_data as data

    d = cfg.data
    ds = data.make_dataset(pairs, source, target, batch_size=batch_size, bucket_width=d.bucket_width,
                           batch_tokens=batch_tokens, training=True, shuffle_buffer=d.shuffle_buffer, seed=d.seed,
                           **data.source_target_options(d))
    batches = rows = real = positions = target_tokens = 0
    padded = []
    for features, targets, weight in ds:
        src, tgt = features[F.ENCODER_TOKEN_IDS].numpy(), targets.numpy()
        batches += 1
        rows += src.shape[0]
        positions += src.size + tgt.size
        real += int((src != F.PAD_ID).sum() + (tgt != F.PAD_ID).sum())
        target_tokens += int(weight.numpy().sum())
        padded.append(src.shape[0] * max(src.shape[1], tgt.shape[1]))
    return {"batches": batches, "sentences": rows, "mean_sentences_per_batch": round(rows / batches, 2),
            "mean_padded_batch_tokens": round(float(np.mean(padded)), 1), "max_padded_batch_tokens": int(max(padded)),
            "target_tokens_per_batch": round(target_tokens / batches, 1),
            "padding_share": round(1 - real / positions, 4)}


def run_one(config: str, overrides: list[str], run_dir: str) -> dict:
    """Trains one variant in this process; its summary's speed and BLEU figures."""
    from tfs2s.core.config import load_config
    from tfs2s.tasks import train

    summary = train(load_config(config_path(config), overrides), run_dir, verbose=0)
    curve = [{"train_minutes": p["train_minutes"], "bleu": p["greedy_bleu"]} for p in summary["val_bleu_curve"]]
    return {"train_minutes": summary["train_minutes"], "train_steps": summary["train_steps"],
            "train_tokens_per_second": summary["train_tokens_per_second"],
            "steps_per_second": round(summary["train_steps"] / max(summary["train_minutes"] * 60, 1e-9), 3),
            "val_loss": summary["val_loss"], "bleu_curve": curve, "final_bleu": curve[-1]["bleu"] if curve else None}


def train_variant(args, name: str, overrides: list[str], round_index: int) -> dict:
    run_dir = os.path.join(args.runs_dir, f"{name}-{round_index}")
    cmd = [sys.executable, os.path.abspath(__file__), "--one", args.config, "--run-dir", run_dir] + \
          [f"--set={s}" for s in overrides]
    with open(os.path.join(args.runs_dir, f"{name}-{round_index}.log"), "w", encoding="utf-8") as log:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT)
    result = next((json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")), None)
    if result is None:
        raise SystemExit(f"{name} failed (exit {proc.returncode}); see {run_dir}.log")
    print(f"trained {name} (round {round_index + 1}): {result['train_tokens_per_second']} target tokens/s, "
          f"BLEU {result['final_bleu']}", flush=True)
    return result


def minutes_to(curve: list[dict], bleu: float) -> float | None:
    """Training minutes of the first curve point at or above ``bleu``."""
    return next((p["train_minutes"] for p in curve if p["bleu"] >= bleu), None)


def schedule(args) -> list[str]:
    """Training overrides shared by both variants: M minutes with BLEU every M/4, or N steps."""
    if args.minutes:
        return [f"training.max_minutes={args.minutes}", f"training.bleu_every_minutes={args.minutes / 4}",
                "training.epochs=1000"]
    return [f"training.steps_per_epoch={args.steps}", "training.epochs=1", "training.max_minutes=0",
            "training.bleu_every_minutes=0"]


def summarize(variants: dict, runs: dict) -> dict:
    """Per variant: the epoch figures, the mean speed over rounds, and the minutes to the common BLEU."""
    finals = {name: [r["final_bleu"] for r in rs if r["final_bleu"] is not None] for name, rs in runs.items()}
    common = min(min(f) for f in finals.values()) if all(finals.values()) else None
    table = {}
    for name, rs in runs.items():
        table[name] = {**variants[name]["epoch"],
                       "train_tokens_per_second": round(float(np.mean([r["train_tokens_per_second"] for r in rs])), 1),
                       "steps_per_second": round(float(np.mean([r["steps_per_second"] for r in rs])), 3),
                       "final_bleu": round(float(np.mean(finals[name])), 2) if finals[name] else None,
                       "minutes_to_common_bleu": [minutes_to(r["bleu_curve"], common) for r in rs]
                       if common is not None else None}
    return {"common_bleu": common, "variants": table}


def print_table(summary: dict, minutes: float) -> None:
    header = ["variant", "batches/epoch", "sent/batch", "mean padded tok/batch", "max padded tok/batch", "padding",
              "target tok/s", "steps/s", f"val BLEU ({f'{minutes} min' if minutes else 'end'})"]
    if minutes:
        header.append(f"min to BLEU {summary['common_bleu']}")
    print(" | ".join(header))
    for name, v in summary["variants"].items():
        row = [name, v["batches"], v["mean_sentences_per_batch"], v["mean_padded_batch_tokens"],
               v["max_padded_batch_tokens"], f"{100 * v['padding_share']:.1f}%", v["train_tokens_per_second"],
               v["steps_per_second"], v["final_bleu"]]
        if minutes:
            row.append(v["minutes_to_common_bleu"])
        print(" | ".join(str(x) for x in row))


def git_commit() -> str:
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def plan(args) -> dict:
    """Both variants' settings and epoch figures, the two matched on mean sentences per batch."""
    from tfs2s.core.config import load_config

    cfg = load_config(config_path(args.config), args.set)
    d = cfg.data
    pairs, source, target = training_examples(cfg)
    max_length = max(d.max_source_length, d.max_target_length)
    lengths = example_lengths(cfg, pairs, source, target)
    if args.batch_tokens:  # sentence batches sized to the token batches' mean
        budget = args.batch_tokens
        batch_size = max(1, round(mean_rows(lengths, budget, d.bucket_width, max_length)))
        stats = {0: epoch_stats(cfg, pairs, source, target, batch_size, 0)}
    else:  # a budget whose batches hold as many sentences as the sentence batches do on average (measured)
        batch_size = args.batch_size or d.batch_size
        stats = {0: epoch_stats(cfg, pairs, source, target, batch_size, 0)}
        budget = matching_budget(lengths, stats[0]["mean_sentences_per_batch"], d.bucket_width, max_length)
    stats[budget] = epoch_stats(cfg, pairs, source, target, batch_size, budget)
    variants = {"sentence batches": {"overrides": [f"data.batch_size={batch_size}", "data.batch_tokens=0"],
                                     "epoch": stats[0]},
                "token batches": {"overrides": [f"data.batch_size={batch_size}", f"data.batch_tokens={budget}"],
                                  "epoch": stats[budget]}}
    return {"batch_size": batch_size, "batch_tokens": budget, "bucket_width": d.bucket_width, "variants": variants}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="small", help="multi30k_<config>.yaml, or a config file")
    parser.add_argument("--batch-size", type=int, default=0, help="sentences per batch (default: the config's)")
    parser.add_argument("--batch-tokens", type=int, default=0,
                        help="the token budget (default: the one matching --batch-size's mean)")
    parser.add_argument("--minutes", type=float, default=0.0, help="train each variant M minutes, BLEU every M/4")
    parser.add_argument("--steps", type=int, default=200, help="without --minutes: train each variant N steps")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the pair, alternating the order")
    parser.add_argument("--set", action="append", default=[], help="config override applied to both variants")
    parser.add_argument("--note", default="", help="recorded with the figures (e.g. the machine's load)")
    parser.add_argument("--runs-dir", default=os.path.join(ROOT, "runs", "token_batches"))
    parser.add_argument("--output", default=os.path.join(HERE, "results", "token_batches.json"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(args.one, args.set, args.run_dir)), flush=True)
        return

    setup = plan(args)
    print(f"sentence batches of {setup['batch_size']} vs token batches of {setup['batch_tokens']} tokens", flush=True)
    os.makedirs(args.runs_dir, exist_ok=True)
    runs = {name: [] for name in setup["variants"]}
    for r in range(args.rounds):
        order = list(setup["variants"]) if r % 2 == 0 else list(setup["variants"])[::-1]
        for name in order:
            overrides = args.set + setup["variants"][name]["overrides"] + schedule(args)
            runs[name].append(train_variant(args, name.replace(" ", "_"), overrides, r))
    summary = summarize(setup["variants"], runs)
    record = {"date": datetime.datetime.now().isoformat(timespec="minutes"), "commit": git_commit(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "command": " ".join(sys.argv),
              "note": args.note, "config": args.config, "overrides": args.set, "schedule": schedule(args),
              **{k: setup[k] for k in ("batch_size", "batch_tokens", "bucket_width")},
              "summary": summary, "runs": runs}
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    print_table(summary, args.minutes)


if __name__ == "__main__":
    main()
