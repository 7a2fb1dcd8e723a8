"""Translation pipeline: train a German->English translator on Multi30k, evaluate it, translate samples.

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
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfs2s.cli import main as cli

    overrides = [f"--set={s}" for s in args.set] + ([f"--data-dir={args.data_dir}"] if args.data_dir else [])
    for command in (["train", "--config", args.config, *overrides],
                    ["evaluate", "--split", "test", "--limit", str(args.eval_limit),
                     "--output", os.path.join(args.run_dir, "test_scores.json")]
                    + (["--data-dir", args.data_dir] if args.data_dir else [])
                    + (["--plot", SAMPLES[0], "--plot-path", args.plot] if args.plot else []),
                    ["translate", *SAMPLES]):
        print(f"\n$ tfs2s {' '.join(command[:1])} ...", flush=True)
        try:
            cli(command + ["--run-dir", args.run_dir])
        except SystemExit as done:
            if done.code:
                return int(done.code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
