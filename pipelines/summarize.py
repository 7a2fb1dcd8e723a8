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

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = ["Please find attached the revised schedule for the Houston meeting next Tuesday. Let me know if the "
           "time does not work for you.", ""]


def main(argv=None) -> int:
    from tfs2s import pipeline

    args = pipeline.parser(__doc__, os.path.join(HERE, "configs", "aeslc.yaml"), "runs/aeslc").parse_args(argv)
    status = pipeline.train(args)
    if status:
        return status

    from tfs2s.data import corpora
    from tfs2s.apps.summarization import evaluate_summaries

    translator = pipeline.load_translator(args.run_dir, args.data_dir)
    d = translator.config.data
    train_pairs = corpora.load_split(d, "train", d.limit)
    val_pairs = corpora.load_split(d, "validation", args.eval_limit)
    print(f"\n# {d.corpus} validation: {len(val_pairs)} documents", flush=True)
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

    status, exported = pipeline.export(args)
    if status:
        return status
    return pipeline.cli(["translate", "--model", exported, *SAMPLES])


if __name__ == "__main__":
    sys.exit(main())
