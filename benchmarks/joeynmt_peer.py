"""Training speed of tfs2s next to its peer JoeyNMT 2.3, side by side in one run on the same machine.

Issue 2 sets tfs2s's training-speed target as a ratio to JoeyNMT 2.3 (PyTorch) training the same architecture on
Multi30k de-en on this kind of 2-core machine. Machines of this kind differ from day to day, so this script
measures both, one after the other, and reports the ratio:

* JoeyNMT 2.3 (its own virtual environment: ``--install`` creates it with CPU PyTorch): bidirectional GRU 512
  encoder, GRU 512 decoder, Bahdanau attention, embeddings 256, word vocabularies (Moses pre-tokenisation,
  minimum frequency 2), batch 64 sentences, Adam, label smoothing 0.1, dropout 0.2, its defaults otherwise
  (input feeding on, as in JoeyNMT's RNN decoder). The learning-rate schedule is JoeyNMT's step decay rather than
  its plateau scheduler, which passes an argument that current PyTorch removed; the schedule does not change the
  speed. Its throughput is the mean of the "Tokens per Sec" it logs every 20 updates (target tokens, ``</s>``
  included), the first interval left out.
* tfs2s: ``pipelines/configs/multi30k_bahdanau.yaml`` (same sizes and training settings); its throughput is
  ``train_tokens_per_second`` of the run summary (target tokens with ``</s>``, first-step tracing included).

Each trains for ``--minutes`` (validation and checkpoints out of the way), in its own process, never both at
once. The figure is training throughput, not quality: quality at 40 minutes is ``benchmarks/multi30k.py``.

    python benchmarks/joeynmt_peer.py --install --minutes 5
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
# JoeyNMT 2.3 imports importlib_metadata without declaring it.
JOEYNMT = ["joeynmt==2.3.0", "importlib_metadata"]
RATE = re.compile(r"Tokens per Sec:\s+([0-9.]+)")


def install(venv: str) -> None:
    """Creates the peer's virtual environment: CPU-only PyTorch first, so pip does not pull the CUDA build."""
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    pip = [os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q"]
    # PyPI's Linux torch wheels carry CUDA (gigabytes); PyTorch's CPU index has the small build. Where that
    # index is out of reach, a CPU wheel can be given as TFS2S_PEER_TORCH (a path or a requirement).
    torch = os.environ.get("TFS2S_PEER_TORCH")
    cpu = subprocess.run(pip + ([torch] if torch else ["torch", "--index-url", "https://download.pytorch.org/whl/cpu"]))
    if cpu.returncode:
        print("CPU-only PyTorch not installed; JoeyNMT will pull PyPI's default (CUDA) build", file=sys.stderr)
    subprocess.run(pip + JOEYNMT, check=True)


def write_data(work: str, data_dir: str | None) -> str:
    """Writes Multi30k as JoeyNMT's plain files (``train.de``/``train.en``...), read through tfs2s's reader."""
    from tfs2s.data import corpora

    out = os.path.join(work, "data")
    os.makedirs(out, exist_ok=True)
    for split, stem in (("train", "train"), ("validation", "val"), ("test", "test")):
        pairs = corpora.load_pairs("multi30k", split, data_dir, "de", "en")
        for index, lang in ((0, "de"), (1, "en")):
            with open(os.path.join(out, f"{stem}.{lang}"), "w", encoding="utf-8") as f:
                f.writelines(p[index].replace("\n", " ") + "\n" for p in pairs)
    return out


def joeynmt_config(data: str, model_dir: str) -> str:
    side = lambda lang: f"""
        lang: "{lang}"
        level: "word"
        lowercase: False
        max_length: 100
        voc_min_freq: 2
        tokenizer_cfg:
            pretokenizer: "moses"
"""  # noqa: E731
    enc_dec = """
        type: "recurrent"
        rnn_type: "gru"
        embeddings:
            embedding_dim: 256
        hidden_size: 512
        dropout: 0.2
        num_layers: 1
"""
    return f"""name: "multi30k_peer"
joeynmt_version: "2.3.0"
data:
    train: "{data}/train"
    dev: "{data}/val"
    test: "{data}/test"
    dataset_type: "plain"
    src:{side("de")}
    trg:{side("en")}
testing:
    beam_size: 5
    beam_alpha: 0.6
    batch_size: 64
training:
    random_seed: 42
    optimizer: "adam"
    learning_rate: 0.001
    clip_grad_norm: 1.0
    label_smoothing: 0.1
    batch_size: 64
    batch_type: "sentence"
    normalization: "tokens"
    scheduling: "decaying"
    decaying_step_size: 1000
    epochs: 100
    validation_freq: 1000000
    logging_freq: 20
    model_dir: "{model_dir}"
    overwrite: True
    use_cuda: False
    fp16: False
    print_valid_sents: []
model:
    encoder:{enc_dec}        bidirectional: True
    decoder:{enc_dec}        hidden_dropout: 0.2
        attention: "bahdanau"
"""


def run_joeynmt(venv: str, work: str, data: str, minutes: float) -> dict:
    model_dir = os.path.join(work, "joeynmt_model")
    config = os.path.join(work, "joeynmt.yaml")
    with open(config, "w", encoding="utf-8") as f:
        f.write(joeynmt_config(data, model_dir))
    python = os.path.join(venv, "bin", "python")
    log = open(os.path.join(work, "joeynmt.out"), "w")
    proc = subprocess.Popen([python, "-m", "joeynmt", "train", config], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    train_log = os.path.join(model_dir, "train.log")
    deadline, started = None, time.time()
    while proc.poll() is None:
        time.sleep(5)
        # The clock starts at the first logged training interval, after data loading and vocabulary building.
        if deadline is None and os.path.exists(train_log) and RATE.search(open(train_log).read()):
            deadline = time.time() + minutes * 60
        if (deadline and time.time() > deadline) or time.time() - started > minutes * 60 + 600:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
    text = open(train_log).read() if os.path.exists(train_log) else ""
    rates = [float(r) for r in RATE.findall(text)]
    if len(rates) < 3:
        raise SystemExit(f"JoeyNMT logged {len(rates)} training intervals; see {work}/joeynmt.out")
    return {"tokens_per_second": round(statistics.mean(rates[1:]), 1), "intervals": len(rates) - 1,
            "updates": 20 * len(rates)}


def run_tfs2s(work: str, minutes: float, data_dir: str | None) -> dict:
    run_dir = os.path.join(work, "tfs2s_run")
    cmd = [sys.executable, "-m", "tfs2s.cli", "train", "--config",
           os.path.join(ROOT, "pipelines", "configs", "multi30k_bahdanau.yaml"), "--run-dir", run_dir,
           "--set", f"training.max_minutes={minutes}", "--set", "training.bleu_every_minutes=0"]
    if data_dir:
        cmd += ["--set", f"data.data_dir={data_dir}"]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    with open(os.path.join(run_dir, "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    return {"tokens_per_second": summary["train_tokens_per_second"], "updates": summary["train_steps"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", default=os.path.join(HERE, ".peer-venv"), help="JoeyNMT's virtual environment")
    parser.add_argument("--install", action="store_true", help="create --venv if it does not exist")
    parser.add_argument("--minutes", type=float, default=5.0, help="training minutes for each toolkit")
    parser.add_argument("--data-dir", default=None, help="folder holding multi30k/ (default ../shared/data)")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "joeynmt_peer.json"))
    parser.add_argument("--no-summary", dest="summary", action="store_false",
                        help="do not write tfs2s_vs_joeynmt_training into benchmarks/results/speed_summary.json")
    args = parser.parse_args()
    if not os.path.exists(os.path.join(args.venv, "bin", "python")):
        if not args.install:
            raise SystemExit(f"no JoeyNMT environment at {args.venv}: pass --install to create it")
        install(args.venv)
    work = tempfile.mkdtemp(prefix="tfs2s-peer-")
    data = write_data(work, args.data_dir)
    peer = run_joeynmt(args.venv, work, data, args.minutes)
    ours = run_tfs2s(work, args.minutes, args.data_dir)
    ratio = ours["tokens_per_second"] / peer["tokens_per_second"]
    record = {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "command": " ".join(sys.argv), "minutes": args.minutes, "joeynmt": peer, "tfs2s": ours,
              "ratio": round(ratio, 3)}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(record, f, indent=2)
    if args.summary:
        from summary import update_summary  # benchmarks/summary.py (this folder is on sys.path as the script's)

        update_summary({"tfs2s_vs_joeynmt_training": round(ratio, 3)})
    print("toolkit | training target tokens/s | updates")
    print(f"JoeyNMT 2.3 | {peer['tokens_per_second']} | {peer['updates']}")
    print(f"tfs2s | {ours['tokens_per_second']} | {ours['updates']}")
    print(f"ratio tfs2s / JoeyNMT: {ratio:.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
