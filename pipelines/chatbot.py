"""Conversational model pipeline (Vinyals & Le 2015): train on DailyDialog (context -> reply), compare its
response perplexity with a smoothed n-gram model's on the validation responses, score replies (BLEU,
distinct-1/2, beam search vs sampling), export it (SavedModel + ONNX) and chat with the export.

    python pipelines/chatbot.py                                       # about 95 minutes on 2 CPU cores
    python pipelines/chatbot.py --set data.limit=500 --set training.epochs=1 --eval-limit 200   # smoke run

Running it again with the same --run-dir resumes an interrupted training run.
"""

from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = ["Hi , how are you doing today ?", "What do you want to eat tonight ?", "I lost my keys again .", ""]


def main(argv=None) -> int:
    from tfs2s import pipeline

    parser = pipeline.parser(__doc__, os.path.join(HERE, "configs", "dailydialog.yaml"), "runs/dailydialog")
    parser.add_argument("--ngram-order", type=int, default=3, help="order of the n-gram baseline (default 3)")
    parser.add_argument("--decode-limit", type=int, default=2000,
                        help="decode replies for the first N validation contexts (0 = all); perplexity uses all")
    args = parser.parse_args(argv)
    status = pipeline.train(args)
    if status:
        return status

    from tfs2s.data import corpora
    from tfs2s.apps.dialogue import evaluate_dialogue

    translator = pipeline.load_translator(args.run_dir, args.data_dir)
    d, dc = translator.config.data, translator.config.decoding
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
    for part in ("seen_in_training", "unseen_in_training"):
        if part in scores:
            p = scores[part]
            print(f"  {p['responses']} responses {part.replace('_', ' ')}: seq2seq {p['seq2seq_perplexity']} vs "
                  f"{p['ngram_perplexity']} (ratio {p['perplexity_ratio']})")
    for strategy in (dc.strategy, "sample"):
        s = scores[strategy]
        print(f"{strategy}: BLEU {s['bleu']}, distinct-1 {s['distinct_1']}, distinct-2 {s['distinct_2']}")
    for example in scores[dc.strategy]["examples"][:4]:
        print(f"  context: {example['context']}\n  reply:   {example['reply']}")

    status, exported = pipeline.export(args)
    if status:
        return status
    return pipeline.cli(["chat", "--model", exported] + [f"--say={s}" for s in SAMPLES])


if __name__ == "__main__":
    sys.exit(main())
