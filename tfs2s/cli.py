"""Command line: ``tfs2s train | evaluate | export | translate``.

Examples::

    tfs2s train --config pipelines/configs/multi30k_small.yaml --run-dir runs/small --set model.hidden=256
    TF_CONFIG='{"cluster": {"worker": ["h0:2222", "h1:2222"]}, "task": {"type": "worker", "index": 0}}' \
        tfs2s train --config ... --run-dir runs/big --strategy multi_worker     # on each machine, its own index
    tfs2s evaluate --run-dir runs/small --split test
    tfs2s export --run-dir runs/small --name multi30k_small --onnx
    tfs2s translate --run-dir runs/small "Ein Mann fährt Fahrrad." --strategy beam --n-best 3
    echo "Zwei Hunde spielen." | tfs2s translate --run-dir runs/small
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from tfs2s.core.errors import Tfs2sError  # no TensorFlow: safe to import before the log level is set


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _add_run_dir(p):
    p.add_argument("--run-dir", required=True, help="run folder (written by `tfs2s train`)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tfs2s`` command."""
    parser = argparse.ArgumentParser(prog="tfs2s", description="RNN sequence-to-sequence toolkit")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train (or resume, or extend) a model")
    p.add_argument("--config", help="YAML config (pipelines/configs/*.yaml); default: the run folder's "
                                    "config.json when it has one, else the built-in defaults")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. --set model.hidden=256 (repeatable)")
    p.add_argument("--data-dir", help="folder holding the corpora (default: ../shared/data when present)")
    p.add_argument("--strategy", choices=["default", "mirrored", "multi_worker"], default="default",
                   help="tf.distribute strategy: one device, all local devices, or one process per machine "
                        "(cluster from the TF_CONFIG environment variable)")
    p.add_argument("--connect-timeout", type=float, default=120.0, metavar="SECONDS",
                   help="multi_worker: fail if the other workers do not answer within this time (default 120)")
    p.add_argument("--extend", action="store_true",
                   help="train a finished run further from its last checkpoint (weights and optimizer state), "
                        "up to a larger training.max_minutes or training.epochs given with --set")
    _add_run_dir(p)

    p = sub.add_parser("evaluate", help="BLEU/chrF/perplexity of a trained model on a split")
    _add_run_dir(p)
    p.add_argument("--split", default="test")
    p.add_argument("--strategies", default="greedy,beam", help="comma-separated: greedy,beam,sample")
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N pairs only")
    p.add_argument("--data-dir")
    p.add_argument("--output", help="write the results as JSON here")
    p.add_argument("--plot", metavar="TEXT", help="also save the attention heatmap of TEXT")
    p.add_argument("--plot-path", default="alignment.png")

    p = sub.add_parser("export", help="export a trained run as a SavedModel (TF Serving layout) and ONNX")
    _add_run_dir(p)
    p.add_argument("--name", help="model name (default: the config's name)")
    p.add_argument("--export-dir", default="saved_models", help="root of exported models (default: saved_models)")
    p.add_argument("--version", type=int, help="version number (default: the next free one)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing version")
    p.add_argument("--onnx", action="store_true", help="also convert the ONNX graphs (into <version>/onnx/)")
    p.add_argument("--max-beam-width", type=int, default=16)
    p.add_argument("--info", help="also write the export path and verification report as JSON here")

    p = sub.add_parser("translate", help="translate sentences (arguments, or one per line on stdin)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir", help="a training run folder")
    source.add_argument("--model", help="an exported SavedModel version folder (saved_models/<name>/<version>)")
    p.add_argument("text", nargs="*", help="sentences; read from stdin when none are given")
    p.add_argument("--strategy", choices=["greedy", "beam", "sample"])
    p.add_argument("--beam-width", type=int)
    p.add_argument("--n-best", type=int)
    p.add_argument("--length-penalty", type=float)
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--no-repeat-ngram", type=int, metavar="N", help="forbid repeating any N-gram (run folders)")
    p.add_argument("--json", action="store_true", help="print n-best lists with scores as JSON lines")

    p = sub.add_parser("chat", help="talk to an exported conversational model (keeps the conversation context)")
    p.add_argument("--model", required=True, help="an exported SavedModel version folder")
    p.add_argument("--say", action="append", metavar="TEXT",
                   help="one-shot: say TEXT, print the reply and exit (repeat for several turns)")
    p.add_argument("--strategy", choices=["beam", "sample"], default="beam")
    p.add_argument("--beam-width", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--seed", type=int, default=0)
    return parser


def run(argv=None) -> int:
    """Runs the command line and returns the exit status."""
    args = build_parser().parse_args(argv)
    _quiet_tensorflow()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Imported here, after the arguments are parsed and TensorFlow's log level is set: `--help` and argument
    # errors stay instant, and TensorFlow's start-up lines are quieted.
    from tfs2s import commands

    return commands.COMMANDS[args.command](args)


def main(argv=None) -> None:
    """Entry point: tfs2s's own errors (bad config, missing data or run, bad input) end with a one-line message
    and exit status 2; any other exception is a bug and shows its traceback."""
    try:
        status = run(argv)
    except Tfs2sError as err:
        print(f"tfs2s: error: {err}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        print("tfs2s: interrupted; `tfs2s train` resumes from its last backup when run again with the same --run-dir",
              file=sys.stderr)
        status = 130
    sys.exit(status)


if __name__ == "__main__":
    main()
