"""Training and decoding speed of the Multi30k small config on whatever device TensorFlow finds, per precision.

One short run for a machine with a GPU (or without one): on TensorFlow's first GPU if there is one, else on the
CPU, it measures, under ``float32`` and the mixed policies that suit the device (``mixed_float16`` and, from
compute capability 8.0, ``mixed_bfloat16`` on a GPU; ``mixed_bfloat16`` on a CPU with AVX512_BF16 or AMX):

* training: target tokens/s of the Multi30k small config (``tfs2s/configs/multi30k_small.yaml``), the
  policies interleaved on the same batches after untimed warm-up steps (``benchmarks/precision.py``);
* decoding: sentences/s of greedy and beam search (the config's beam width) at batch 1 and batch 64 over
  validation sentences, with the trained weights of ``--run-dir`` (default ``runs/multi30k_small``, the
  README's run) rebuilt under each policy; without that run, the weights of the speed test's few steps
  (an untrained model writes up to its length limit, so its decoding figures are a worst case).

Prints a table and writes ``benchmarks/results/device_speed.json`` (device, machine, command, date, commit).
Under 5 minutes on a GPU with the defaults; ``--steps 20 --sentences 8 --batches 1`` is a CPU smoke run.

    python benchmarks/device_speed.py
    python benchmarks/device_speed.py --steps 20 --sentences 8 --batches 1   # quick, on a CPU
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from precision import (build_trainer, command, commit, interleaved_speed, machine, small_config,  # noqa: E402
                       take_batches, text_job, write_json)

README_RUN = os.path.join(ROOT, "runs", "multi30k_small")


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def find_device() -> dict:
    """``{"kind", "name", "policies", ...}`` of TensorFlow's first GPU, or of the CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        capability = tuple(details.get("compute_capability") or (0, 0))
        policies = ["float32", "mixed_float16"] + (["mixed_bfloat16"] if capability >= (8, 0) else [])
        return {"kind": "GPU", "name": details.get("device_name", gpus[0].name), "gpus": len(gpus),
                "compute_capability": ".".join(map(str, capability)), "policies": policies}
    flags = cpu_flags()
    bf16 = sorted(flags & {"avx512_bf16", "amx_bf16"})
    return {"kind": "CPU", "name": cpu_name(), "cores": os.cpu_count(), "bf16_flags": bf16,
            "policies": ["float32"] + (["mixed_bfloat16"] if bf16 else [])}


def decoders(run_dir: str | None, trained: dict, job, policies: list[str]):
    """``({policy: Translator}, weights description)``: the run's weights under each policy, or the speed
    test's models (``trained``: ``{policy: Seq2SeqModels}``)."""
    from tfs2s.tasks import load
    from tfs2s.tasks.text.predictor import Translator
    from tfs2s.tasks.text.task import build_run_models
    from tfs2s.training.precision import policy_scope

    if run_dir and os.path.exists(os.path.join(run_dir, "checkpoints", "best.weights.h5")):
        served = load(run_dir)
        out = {}
        for policy in policies:
            with policy_scope(policy):
                models = build_run_models(served.config, served.source_tokenizer.vocab_size,
                                          served.target_tokenizer.vocab_size)
            models.training.set_weights(served.models.training.get_weights())
            out[policy] = Translator(models, served.source_tokenizer, served.target_tokenizer, served.config)
        return out, f"trained: {os.path.relpath(run_dir, ROOT)} (best checkpoint)"
    return ({p: Translator(trained[p], job.source_tok, job.target_tok, job.cfg) for p in policies},
            "untrained (the speed test's steps only): outputs run to their length limit")


def decode_speed(translator, sentences: list[str], batch: int, strategy: str) -> float:
    """Sentences/s of ``translate_batch`` over ``sentences`` in batches of ``batch`` (one untimed call first)."""
    translator.translate_batch(sentences[:batch], strategy=strategy, alignment=False)  # tracing
    started = time.perf_counter()
    for i in range(0, len(sentences), batch):
        translator.translate_batch(sentences[i:i + batch], strategy=strategy, alignment=False)
    return round(len(sentences) / (time.perf_counter() - started), 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="timed training steps per policy")
    parser.add_argument("--warmup", type=int, default=10, help="untimed training steps per policy first")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of the policies in training")
    parser.add_argument("--sentences", type=int, default=64, help="validation sentences decoded at batch 1")
    parser.add_argument("--batches", type=int, default=4, help="batches of 64 validation sentences decoded")
    parser.add_argument("--policies", nargs="+", help="override the device's policies (float32 first)")
    parser.add_argument("--run-dir", default=README_RUN, help="trained run whose weights decode (default: README's)")
    parser.add_argument("--data-dir", default=None, help="folder holding multi30k/ (default ../shared/data)")
    parser.add_argument("--note", default="", help="recorded with the figures (e.g. 'loaded machine')")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "device_speed.json"))
    args = parser.parse_args()
    device = find_device()
    policies = args.policies or device["policies"]
    print(f"device: {device['kind']} {device['name']}; policies: {', '.join(policies)}")
    cfg = small_config({"training.max_minutes": 0}, args.data_dir)
    job = text_job(cfg, tempfile.mkdtemp(prefix="tfs2s-device-"))
    batches = take_batches(job, args.warmup + args.steps)
    built = {p: build_trainer(job, p) for p in policies}
    training = interleaved_speed({p: b[1] for p, b in built.items()}, batches, args.warmup, args.rounds)
    translators, weights = decoders(args.run_dir, {p: b[0] for p, b in built.items()}, job, policies)
    from tfs2s.data import corpora

    sources = [p[0] for p in corpora.load_split(cfg.data, "validation")]
    decoding = {}
    for policy, translator in translators.items():
        decoding[policy] = {f"{strategy}_b{batch}": decode_speed(translator, sources[:n], batch, strategy)
                            for strategy in ("greedy", "beam")
                            for batch, n in ((1, args.sentences), (64, 64 * args.batches))}
    record = {"date": datetime.date.today().isoformat(), "device": device, "machine": machine(),
              "command": command(), "commit": commit(), "note": args.note, "config": "tfs2s/configs/multi30k_small.yaml",
              "decoding_weights": weights, "beam_width": cfg.decoding.beam_width,
              "training_tokens_per_second": {p: t["tokens_per_second"] for p, t in training.items()},
              "training": training, "decoding_sentences_per_second": decoding}
    columns = ["greedy_b1", "greedy_b64", "beam_b1", "beam_b64"]
    print("policy | training target tokens/s | " + " | ".join(f"{c} sent/s" for c in columns))
    for p in policies:
        print(f"{p} | {training[p]['tokens_per_second']} | " + " | ".join(str(decoding[p][c]) for c in columns))
    write_json(args.output, record)


if __name__ == "__main__":
    main()
