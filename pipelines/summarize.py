"""Summarization pipeline: train a headline / subject-line model (AESLC by default; also gigaword_sample and
bbc_news), score it with ROUGE next to the lead and random-sentence baselines on the validation split (with
and without unknown-word replacement from the attention), export it (SavedModel + ONNX) and summarize samples
with the export.

    python pipelines/summarize.py                                           # AESLC, about 35 minutes
    python pipelines/summarize.py --set data.corpus=bbc_news --run-dir runs/bbc
    python pipelines/summarize.py --set data.limit=500 --set training.epochs=1 --eval-limit 100   # smoke run

Long documents are truncated to ``data.max_source_length`` words (100 for AESLC), in training and serving.
Running it again with the same --run-dir resumes an interrupted training run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = ["Please find attached the revised schedule for the Houston meeting next Tuesday. Let me know if the "
           "time does not work for you.", ""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=os.path.join(HERE, "configs", "aeslc.yaml"))
    parser.add_argument("--run-dir", default="runs/aeslc")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data-dir")
    parser.add_argument("--eval-limit", type=int, default=0, help="score the first N validation pairs only")
    parser.add_argument("--export-dir", default="saved_models", help="root of exported models")
    parser.add_argument("--no-onnx", action="store_true", help="export the SavedModel only")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfs2s.cli import main as cli

    overrides = [f"--set={s}" for s in args.set] + ([f"--data-dir={args.data_dir}"] if args.data_dir else [])
    status = _call(cli, ["train", "--config", args.config, *overrides, "--run-dir", args.run_dir])
    if status:
        return status

    from tfs2s import corpora
    from tfs2s.evaluation import evaluate_summaries
    from tfs2s.training import load_run
    from tfs2s.translator import Translator

    cfg, models, source_tok, target_tok = load_run(args.run_dir)
    if args.data_dir:
        cfg = cfg.replace(**{"data.data_dir": args.data_dir})
    translator = Translator(models, source_tok, target_tok, cfg)
    train_pairs = corpora.load_split(cfg.data, "train", cfg.data.limit)
    val_pairs = corpora.load_split(cfg.data, "validation", args.eval_limit)
    print(f"\n# {cfg.data.corpus} validation: {len(val_pairs)} documents", flush=True)
    scores = evaluate_summaries(translator, train_pairs, val_pairs)
    with open(os.path.join(args.run_dir, "summary_scores.json"), "w", encoding="utf-8") as f:
        json.dump(scores, f, indent=2, ensure_ascii=False)
    print("system | ROUGE-1 | ROUGE-2 | ROUGE-L")
    for name in ("model", "model_unk_replaced", "lead", "random_sentence"):
        if name in scores:
            s = scores[name]
            label = f"lead-{scores['lead_words']}" if name == "lead" else name
            print(f"{label} | {s['rouge1']} | {s['rouge2']} | {s['rougeL']}")
    for example in scores["examples"][:3]:
        print(f"  document: {example['document'][:120]}...\n  summary:  {example['summary']}")

    export_info = os.path.join(args.run_dir, "export.json")
    status = _call(cli, ["export", "--run-dir", args.run_dir, "--export-dir", args.export_dir, "--info", export_info]
                   + ([] if args.no_onnx else ["--onnx"]))
    if status:
        return status
    with open(export_info, encoding="utf-8") as f:
        exported = json.load(f)["export"]
    print(f"\n$ tfs2s translate --model {exported} ...", flush=True)
    return _call(cli, ["translate", "--model", exported, *SAMPLES])


def _call(cli, argv) -> int:
    try:
        cli(argv)
    except SystemExit as done:
        return int(done.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
