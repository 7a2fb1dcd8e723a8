"""Translation pipeline: train a German->English translator on Multi30k, evaluate it, export it (SavedModel
for TF Serving + ONNX), and translate sample sentences with the exported SavedModel.

    python pipelines/translate.py                                   # the small model (about 15 minutes)
    python pipelines/translate.py --config pipelines/configs/multi30k_bahdanau.yaml --run-dir runs/bahdanau
    python pipelines/translate.py --set data.limit=300 --set training.epochs=1   # smoke run

Running it again with the same --run-dir resumes an interrupted training run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = ["Ein Mann fährt mit dem Fahrrad eine Straße entlang.", "Zwei Hunde spielen im Schnee.",
           "Eine Frau in einem roten Kleid singt auf einer Bühne.", "Kinder spielen Fußball auf einer Wiese."]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=os.path.join(HERE, "configs", "multi30k_small.yaml"))
    parser.add_argument("--run-dir", default="runs/multi30k_small")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data-dir")
    parser.add_argument("--eval-limit", type=int, default=0, help="evaluate on the first N test pairs only")
    parser.add_argument("--plot", default=None, help="save the attention heatmap of the first sample here")
    parser.add_argument("--export-dir", default="saved_models", help="root of exported models")
    parser.add_argument("--no-onnx", action="store_true", help="export the SavedModel only")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfs2s.cli import main as cli

    overrides = [f"--set={s}" for s in args.set] + ([f"--data-dir={args.data_dir}"] if args.data_dir else [])
    export_info = os.path.join(args.run_dir, "export.json")
    steps = [
        ["train", "--config", args.config, *overrides, "--run-dir", args.run_dir],
        ["evaluate", "--run-dir", args.run_dir, "--split", "test", "--limit", str(args.eval_limit),
         "--output", os.path.join(args.run_dir, "test_scores.json")]
        + (["--data-dir", args.data_dir] if args.data_dir else [])
        + (["--plot", SAMPLES[0], "--plot-path", args.plot] if args.plot else []),
        ["export", "--run-dir", args.run_dir, "--export-dir", args.export_dir, "--info", export_info]
        + ([] if args.no_onnx else ["--onnx"]),
    ]
    for command in steps:
        print(f"\n$ tfs2s {' '.join(command)}", flush=True)
        status = _call(cli, command)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
