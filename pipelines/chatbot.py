"""Conversational model pipeline (Vinyals & Le 2015): train on DailyDialog (context -> reply), compare its
response perplexity with a smoothed n-gram model's on the validation responses, score replies (BLEU,
distinct-1/2, beam search vs sampling), export it (SavedModel + ONNX) and chat with the export.

    python pipelines/chatbot.py                                       # about 35 minutes on 2 CPU cores
    python pipelines/chatbot.py --set data.limit=500 --set training.epochs=1 --eval-limit 200   # smoke run

Running it again with the same --run-dir resumes an interrupted training run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = ["Hi , how are you doing today ?", "What do you want to eat tonight ?", "I lost my keys again .", ""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=os.path.join(HERE, "configs", "dailydialog.yaml"))
    parser.add_argument("--run-dir", default="runs/dailydialog")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data-dir")
    parser.add_argument("--eval-limit", type=int, default=0, help="score the first N validation pairs only")
    parser.add_argument("--ngram-order", type=int, default=3)
    parser.add_argument("--decode-limit", type=int, default=2000,
                        help="decode replies for the first N validation contexts (0 = all); perplexity uses all")
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
    from tfs2s.evaluation import evaluate_dialogue
    from tfs2s.training import load_run
    from tfs2s.translator import Translator

    cfg, models, source_tok, target_tok = load_run(args.run_dir)
    if args.data_dir:
        cfg = cfg.replace(**{"data.data_dir": args.data_dir})
    translator = Translator(models, source_tok, target_tok, cfg)
    d, dc = cfg.data, cfg.decoding
    train_pairs = corpora.load_split(d, "train", d.limit)
    val_pairs = corpora.load_split(d, "validation", args.eval_limit)
    print(f"\n# validation: {len(val_pairs)} (context -> reply) pairs; n-gram baseline of order {args.ngram_order}",
          flush=True)
    scores = evaluate_dialogue(translator, train_pairs, val_pairs, args.ngram_order,
                               sample_options={"temperature": dc.temperature, "top_k": dc.top_k},
                               decode_limit=args.decode_limit)
    with open(os.path.join(args.run_dir, "dialogue_scores.json"), "w", encoding="utf-8") as f:
        json.dump(scores, f, indent=2, ensure_ascii=False)
    print(f"perplexity: seq2seq {scores['seq2seq_perplexity']} vs {args.ngram_order}-gram "
          f"{scores['ngram_perplexity']} (ratio {scores['perplexity_ratio']}) on {scores['responses']} responses")
    for strategy in (dc.strategy, "sample"):
        s = scores[strategy]
        print(f"{strategy}: BLEU {s['bleu']}, distinct-1 {s['distinct_1']}, distinct-2 {s['distinct_2']}")
    for example in scores[dc.strategy]["examples"][:4]:
        print(f"  context: {example['context']}\n  reply:   {example['reply']}")

    export_info = os.path.join(args.run_dir, "export.json")
    status = _call(cli, ["export", "--run-dir", args.run_dir, "--export-dir", args.export_dir, "--info", export_info]
                   + ([] if args.no_onnx else ["--onnx"]))
    if status:
        return status
    with open(export_info, encoding="utf-8") as f:
        exported = json.load(f)["export"]
    print(f"\n$ tfs2s chat --model {exported} --say ...", flush=True)
    return _call(cli, ["chat", "--model", exported] + [f"--say={s}" for s in SAMPLES])


def _call(cli, argv) -> int:
    try:
        cli(argv)
    except SystemExit as done:
        return int(done.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
