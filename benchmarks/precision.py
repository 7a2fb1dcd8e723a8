"""Mixed precision against float32 in training: target tokens/s in one run, and BLEU after the same minutes.

Speed: the Multi30k small config (``tfs2s/configs/multi30k_small.yaml``) is built twice in one process, once
under ``float32`` and once under ``--precision`` (default ``mixed_bfloat16``), from the same seed, and both
train on the same batches, taken in turn: ``--rounds`` rounds of ``--steps / --rounds`` steps per policy,
alternating, after ``--warmup`` untimed steps each (tracing). The figure is target tokens (``</s>`` included,
padding not) per second of timed steps, per policy, and their ratio. Interleaving keeps a machine whose load
changes (shared cores) from favouring whichever policy ran first.

Quality (``--minutes M``): each policy then trains a full run of M minutes (``tfs2s.tasks.train``, one after
the other), and the run is loaded as it is served (``tfs2s.tasks.load``: float32, see
``tfs2s.training.precision``) and greedy-decodes the validation set: BLEU (sacrebleu) per policy.

Writes ``benchmarks/results/precision.json`` (machine, command, date, commit, figures) and the ratio as
``bf16_vs_fp32_training`` (or ``fp16_vs_fp32_training``) in ``benchmarks/results/speed_summary.json``.

    python benchmarks/precision.py --steps 60              # speed only, a few minutes on 2 cores
    python benchmarks/precision.py --steps 300 --minutes 20
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
CONFIG = os.path.join(ROOT, "tfs2s", "configs", "multi30k_small.yaml")
SUMMARY_KEYS = {"mixed_bfloat16": "bf16_vs_fp32_training", "mixed_float16": "fp16_vs_fp32_training"}

from summary import commit, machine, update_summary  # noqa: E402,F401  (benchmarks/summary.py; device_speed uses them)


def command() -> str:
    return " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])




def write_json(path: str, record: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
        f.write("\n")


def small_config(overrides: dict | None = None, data_dir: str | None = None):
    from tfs2s.core.config import load_config

    return load_config(CONFIG, {**({"data.data_dir": data_dir} if data_dir else {}), **(overrides or {})})


def text_job(cfg, work: str):
    """The text task's training job (data, vocabularies) in a scratch run folder."""
    from tfs2s.tasks.text.task import TextJob

    return TextJob(cfg, os.path.join(work, "job"))


def build_trainer(job, precision: str, seed: int = 1234):
    """The job's models built under ``precision`` (as ``train_run`` builds them) and its compiled training model."""
    import keras

    from tfs2s.training.precision import policy_scope

    keras.utils.set_random_seed(seed)
    with policy_scope(precision):
        models = job.build()
    job.start(models, True)
    model = job.compile(models, max(job.batches, 1))
    return models, model


def take_batches(job, count: int) -> list:
    """``count`` training batches (the bucketed dataset, repeated), as tensors reused by every policy."""
    return list(job.train.repeat().take(count))


def train_steps(model, batches: list) -> tuple[float, int]:
    """(seconds, target tokens) of one ``train_on_batch`` per batch."""
    tokens = 0
    started = time.perf_counter()
    for features, targets, weights in batches:
        model.train_on_batch(features, targets, sample_weight=weights)
        tokens += int(weights.numpy().sum())
    return time.perf_counter() - started, tokens


def interleaved_speed(trainers: dict, batches: list, warmup: int, rounds: int) -> dict:
    """``{name: {"tokens_per_second", "steps", "seconds"}}`` of models trained in turn on the same batches."""
    for model in trainers.values():
        train_steps(model, batches[:warmup])  # tracing (a few bucket shapes), not timed
    timed = batches[warmup:]
    per_round = max(1, len(timed) // rounds)
    totals = {name: [0.0, 0, 0] for name in trainers}
    for r in range(rounds):
        chunk = timed[r * per_round:(r + 1) * per_round]
        order = list(trainers) if r % 2 == 0 else list(reversed(trainers))  # who goes first alternates
        for name in order:
            seconds, tokens = train_steps(trainers[name], chunk)
            totals[name][0] += seconds
            totals[name][1] += tokens
            totals[name][2] += len(chunk)
    return {name: {"tokens_per_second": round(t / s, 1), "steps": n, "seconds": round(s, 2)}
            for name, (s, t, n) in totals.items()}


def minutes_bleu(precision: str, minutes: float, work: str, data_dir: str | None) -> dict:
    """Trains a full run of ``minutes`` under ``precision`` and scores its served (float32) model on validation."""
    from tfs2s.core.metrics import bleu_scores
    from tfs2s.data import corpora
    from tfs2s.tasks import load, train

    cfg = small_config({"training.precision": precision, "training.max_minutes": minutes,
                        "training.bleu_every_minutes": 0, "training.epochs": 1000}, data_dir)
    run_dir = os.path.join(work, f"run_{precision}")
    summary = train(cfg, run_dir, verbose=0)
    translator = load(run_dir)
    pairs = corpora.load_split(cfg.data, "validation")
    hypotheses = translator.translate([p[0] for p in pairs], strategy="greedy")
    bleu = bleu_scores(hypotheses, [p[1] for p in pairs])
    return {"minutes": minutes, "train_steps": summary["train_steps"],
            "train_tokens_per_second": summary["train_tokens_per_second"], "val_loss": summary["val_loss"],
            "val_bleu_greedy": bleu["bleu"], "bleu_signature": bleu["bleu_signature"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", default="mixed_bfloat16", choices=sorted(SUMMARY_KEYS))
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per policy")
    parser.add_argument("--warmup", type=int, default=8, help="untimed steps per policy first (tracing)")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of the policies over the timed steps")
    parser.add_argument("--minutes", type=float, default=0.0, help="also train each policy M minutes: BLEU")
    parser.add_argument("--data-dir", default=None, help="folder holding multi30k/ (default ../shared/data)")
    parser.add_argument("--note", default="", help="recorded with the figures (e.g. 'loaded machine')")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "precision.json"))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="tfs2s-precision-")
    cfg = small_config({"training.max_minutes": 0}, args.data_dir)
    job = text_job(cfg, work)
    batches = take_batches(job, args.warmup + args.steps)
    trainers = {p: build_trainer(job, p)[1] for p in ("float32", args.precision)}
    speed = interleaved_speed(trainers, batches, args.warmup, args.rounds)
    ratio = speed[args.precision]["tokens_per_second"] / speed["float32"]["tokens_per_second"]
    record = {"date": datetime.date.today().isoformat(), "machine": machine(), "command": command(),
              "commit": commit(), "note": args.note, "config": os.path.relpath(CONFIG, ROOT),
              "batch_size": cfg.data.batch_size, "speed": speed, "ratio": round(ratio, 3)}
    print("policy | training target tokens/s | timed steps | seconds")
    for name, s in speed.items():
        print(f"{name} | {s['tokens_per_second']} | {s['steps']} | {s['seconds']}")
    print(f"ratio {args.precision} / float32: {ratio:.2f}")
    if args.minutes:
        record["quality"] = {p: minutes_bleu(p, args.minutes, work, args.data_dir) for p in ("float32", args.precision)}
        print("policy | minutes | steps | val BLEU (greedy, served float32)")
        for name, q in record["quality"].items():
            print(f"{name} | {q['minutes']} | {q['train_steps']} | {q['val_bleu_greedy']}")
    write_json(args.output, record)
    update_summary({SUMMARY_KEYS[args.precision]: round(ratio, 3)})


if __name__ == "__main__":
    main()
