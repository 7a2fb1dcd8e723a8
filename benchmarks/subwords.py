"""Multi30k German->English: the word model against SentencePiece subwords, same model and training time.

Every variant (the config's word tokenizer, then SentencePiece at each ``--vocab-sizes`` size) trains in its own
process, all side by side (at once, so that each sees the same machine load; ``--sequential`` runs them one
after the other), with the same model section and the same ``training.max_minutes``. The SentencePiece size is
chosen on validation BLEU (greedy); test_2016_flickr is then decoded with the config's decoding (beam search) for
every variant. Reported: test BLEU and chrF (sacrebleu, cased, detokenized text), validation BLEU, ``<unk>`` in
the test outputs, and "numbers copied": of the test sentences whose source holds digit strings, the share whose
every digit string appears in the output. The word model is also scored with unknown-word replacement
(``replace_unknown``), which copies source words for ``<unk>`` (numbers among them).
Prints a table and writes ``benchmarks/results/subwords.json``.

    python benchmarks/subwords.py --vocab-sizes 4000,8000 --max-minutes 30
    python benchmarks/subwords.py --vocab-sizes 300 --max-minutes 0.3 --set data.limit=2000 \
        --output /tmp/subwords_smoke.json   # a smoke run
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DIGITS = re.compile(r"\d+")


def config_path(name: str) -> str:
    """``multi30k_<name>.yaml`` of the package's configs (``pipelines/configs`` in older checkouts)."""
    for folder in (os.path.join(ROOT, "tfs2s", "configs"), os.path.join(ROOT, "pipelines", "configs")):
        path = os.path.join(folder, f"multi30k_{name}.yaml")
        if os.path.exists(path):
            return path
    raise SystemExit(f"no config multi30k_{name}.yaml")


def numbers_copied(sources: list[str], outputs: list[str]) -> dict:
    """Of the sources holding digit strings, how many outputs hold every one of them."""
    with_digits = [(DIGITS.findall(s), o) for s, o in zip(sources, outputs) if DIGITS.search(s)]
    copied = sum(all(n in DIGITS.findall(o) for n in numbers) for numbers, o in with_digits)
    return {"sentences": len(with_digits), "copied": copied,
            "share": round(copied / len(with_digits), 4) if with_digits else None}


def score(translator, pairs: list[tuple[str, str]], **options) -> dict:
    """BLEU/chrF of ``translator`` on ``pairs`` plus the ``<unk>`` count and numbers copied."""
    from tfs2s.core.features import UNK
    from tfs2s.core.metrics import bleu_scores

    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    outputs = translator.translate(sources, **options)
    scores = bleu_scores(outputs, references)
    return {"bleu": scores["bleu"], "chrf": scores["chrf"], "bleu_lowercase": scores["bleu_lowercase"],
            "bleu_signature": scores["bleu_signature"], "unk": sum(o.count(UNK) for o in outputs),
            "numbers_copied": numbers_copied(sources, outputs),
            "examples": [{"source": s, "output": o, "reference": r}
                         for s, o, r in list(zip(sources, outputs, references))[:5]]}


def run_one(config: str, overrides: list[str], run_dir: str) -> dict:
    """Trains one variant in this process and scores it on validation (greedy) and test (config's decoding)."""
    from tfs2s.core.config import load_config
    from tfs2s.data import corpora
    from tfs2s.tasks import load, train

    cfg = load_config(config_path(config), overrides)
    summary = train(cfg, run_dir, verbose=2)
    translator = load(run_dir)
    d = translator.config.data
    validation = score(translator, corpora.load_split(d, "validation"), strategy="greedy")
    test_pairs = corpora.load_split(d, "test")
    # The word model's raw output (its <unk> visible) in "test"; with unknown-word replacement (decoding's
    # default since it became one) in "test_replace_unknown".
    replaceable = translator.can_replace_unknown
    result = {"overrides": overrides, "run_dir": run_dir, "train": summary, "validation": validation,
              "test": score(translator, test_pairs, **({"replace_unknown": False} if replaceable else {}))}
    if replaceable:
        result["test_replace_unknown"] = score(translator, test_pairs, replace_unknown=True)
    return result


def variants(args) -> list[tuple[str, list[str]]]:
    common = [f"training.max_minutes={args.max_minutes}"] + args.set
    rows = [("word", common + ["data.tokenizer=word"])]
    for size in [int(s) for s in args.vocab_sizes.split(",") if s]:
        sp = ["data.tokenizer=sentencepiece", f"data.subword_model={args.subword_model}",
              f"data.source_vocab_size={size}", f"data.target_vocab_size={size}",
              f"data.shared_vocab={'true' if args.shared else 'false'}"]
        rows.append((f"sp-{args.subword_model}-{size}{'-shared' if args.shared else ''}", common + sp))
    return rows


def launch(args, name: str, overrides: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--one", args.config, "--run-dir", os.path.join(args.runs_dir, name)] + \
          [f"--set={s}" for s in overrides]
    log = open(os.path.join(args.runs_dir, f"{name}.log"), "w", encoding="utf-8")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)


def collect(name: str, proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    result = next((json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")), None)
    if result is None:
        print(out[-3000:])
        raise SystemExit(f"{name} failed (exit {proc.returncode}); see its .log in the runs folder")
    print(f"finished {name}", flush=True)
    return {"variant": name, **result}


def print_table(rows: list[dict], chosen: str | None) -> None:
    header = ("variant", "vocab src/tgt", "train min", "val BLEU", "test BLEU", "test chrF", "<unk>", "numbers copied")
    print(" | ".join(header))
    for r in rows:
        tr = r["train"]
        for label, test in (("", r["test"]), (" +unk-replace", r.get("test_replace_unknown"))):
            if test is None:
                continue
            n = test["numbers_copied"]
            mark = " (chosen)" if r["variant"] == chosen and not label else ""
            print(" | ".join(str(x) for x in (
                r["variant"] + label + mark, f"{tr.get('source_vocab_size')}/{tr.get('target_vocab_size')}",
                tr.get("train_minutes"), r["validation"]["bleu"], test["bleu"], test["chrf"], test["unk"],
                f"{n['copied']}/{n['sentences']}")))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="small", help="multi30k_<config>.yaml (model and decoding)")
    parser.add_argument("--vocab-sizes", default="8000", help="SentencePiece sizes tried (each side; comma-separated)")
    parser.add_argument("--subword-model", default="unigram", choices=("unigram", "bpe"))
    parser.add_argument("--shared", action="store_true", help="one SentencePiece model for both sides")
    parser.add_argument("--max-minutes", type=float, default=12.0, help="training.max_minutes of every variant")
    parser.add_argument("--set", action="append", default=[], help="override applied to every variant")
    parser.add_argument("--sequential", action="store_true", help="train one variant after the other")
    parser.add_argument("--runs-dir", default=os.path.join(ROOT, "runs", "subwords"))
    parser.add_argument("--output", default=os.path.join(HERE, "results", "subwords.json"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        print("RESULT " + json.dumps(run_one(args.one, args.set, args.run_dir), ensure_ascii=False), flush=True)
        return

    os.makedirs(args.runs_dir, exist_ok=True)
    rows = []
    if args.sequential:
        for name, overrides in variants(args):
            rows.append(collect(name, launch(args, name, overrides)))
    else:
        running = [(name, launch(args, name, overrides)) for name, overrides in variants(args)]
        rows = [collect(name, proc) for name, proc in running]
    subword_rows = [r for r in rows if r["variant"] != "word"]
    chosen = max(subword_rows, key=lambda r: r["validation"]["bleu"])["variant"] if subword_rows else None
    record = {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "command": " ".join(sys.argv), "chosen_on_validation": chosen, "results": rows}
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, ensure_ascii=False)
    print_table(rows, chosen)


if __name__ == "__main__":
    main()
