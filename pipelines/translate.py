"""Translation pipeline: train a German->English translator on Multi30k, evaluate it, export it (SavedModel
for TF Serving + ONNX), and translate sample sentences with the exported SavedModel.

    python pipelines/translate.py                                   # the small model (about 15 minutes)
    python pipelines/translate.py --config pipelines/configs/multi30k_bahdanau.yaml --run-dir runs/bahdanau
    python pipelines/translate.py --set data.limit=300 --set training.epochs=1   # smoke run
    python pipelines/translate.py --config pipelines/configs/spa_eng.yaml --run-dir runs/spa_eng   # en->es,
                                  # 30k-word target vocabulary, sampled softmax (about 40 minutes)

Running it again with the same --run-dir resumes an interrupted training run.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# Sentences translated with the export at the end, by source language.
SAMPLES = {
    "de": ["Ein Mann fährt mit dem Fahrrad eine Straße entlang.", "Zwei Hunde spielen im Schnee.",
           "Eine Frau in einem roten Kleid singt auf einer Bühne.", "Kinder spielen Fußball auf einer Wiese."],
    "en": ["Tom is reading a book in the garden.", "I don't know where she went.", "It's raining again today.",
           "Can you help me carry these boxes?"],
    "es": ["Tom está leyendo un libro en el jardín.", "No sé adónde fue ella.", "Hoy vuelve a llover.",
           "¿Puedes ayudarme a llevar estas cajas?"],
}


def main(argv=None) -> int:
    from tfs2s import pipeline

    parser = pipeline.parser(__doc__, os.path.join(HERE, "configs", "multi30k_small.yaml"), "runs/multi30k_small")
    parser.add_argument("--plot", default=None, help="save the attention heatmap of the first sample here")
    args = parser.parse_args(argv)
    status = pipeline.train(args)
    if status:
        return status
    from tfs2s.core.config import load_config

    samples = SAMPLES.get(load_config(os.path.join(args.run_dir, "config.json")).data.source_lang, SAMPLES["de"])
    status = pipeline.cli(
        ["evaluate", "--run-dir", args.run_dir, "--split", "test", "--limit", str(args.eval_limit),
         "--output", os.path.join(args.run_dir, "test_scores.json")]
        + (["--data-dir", args.data_dir] if args.data_dir else [])
        + (["--plot", samples[0], "--plot-path", args.plot] if args.plot else []))
    if status:
        return status
    status, exported = pipeline.export(args)
    if status:
        return status
    return pipeline.cli(["translate", "--model", exported, *samples])


if __name__ == "__main__":
    sys.exit(main())
