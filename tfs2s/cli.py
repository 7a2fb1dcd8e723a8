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
import glob
import logging
import os
import re
import sys
import tempfile

from tfs2s.core.errors import Tfs2sError  # no TensorFlow: safe to import before the log level is set


# Lines TensorFlow's C++ side writes at start-up, before its log level applies (absl logs everything until it is
# initialised): informational, or on a machine without an NVIDIA driver, the news that there is none.
_ALWAYS_NOISE = (re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
                            r"STDERR"),
                 re.compile(r"I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on"),
                 re.compile(r"I\d{4} [\d:. ]+\d+ cpu_feature_guard\.cc:\d+\] "),
                 re.compile(r"To enable the following instructions: .* rebuild TensorFlow with the appropriate "
                            r"compiler flags\.$"))
_NO_DRIVER_NOISE = (re.compile(r"I\d{4} [\d:. ]+\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers"),
                    re.compile(r"E\d{4} [\d:. ]+\d+ cuda_(platform|executor|diagnostics)\.cc:\d+\] "
                               r"failed call to cuInit"))


DATA_DIR_HELP = ("folder holding the corpora, only read (default: $TFS2S_DATA_DIR, else ../shared/data when "
                 "present, else ~/.cache/tfs2s, into which Multi30k, Topical-Chat and ETTh1 download themselves)")


def gpu_driver_present() -> bool:
    """Whether this machine has an NVIDIA driver (a device node, or a loadable ``libcuda``)."""
    if glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/dxg"):
        return True
    import ctypes.util

    return ctypes.util.find_library("cuda") is not None


def startup_noise(line: str, driver: bool) -> bool:
    """Whether ``line`` (of TensorFlow's start-up output) is noise to drop; ``driver``: a GPU driver exists.

    Without a driver, the CUDA plugin's "failed call to cuInit" error only says that; with one, it is a real
    error (a broken driver or a busy device) and stays.
    """
    line = line.rstrip("\n")
    patterns = _ALWAYS_NOISE + (() if driver else _NO_DRIVER_NOISE)
    return any(p.match(line) for p in patterns)


def quiet_startup() -> None:
    """Imports TensorFlow without its start-up noise; call it before anything imports TensorFlow.

    Sets ``TF_CPP_MIN_LOG_LEVEL=2`` (errors only) unless the user set it, then imports TensorFlow and lists the
    physical devices (which starts the CUDA plugin) with file descriptor 2 sent to a file: the lines written
    there are replayed on stderr, less the informational ones and, on a machine without an NVIDIA driver, the
    CUDA plugin's complaint about it (see ``startup_noise``). Nothing else is hidden, and no device: GPUs are
    found as before. Only the start-up goes through the file, so later errors reach stderr at once.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return  # too late to catch its start-up lines; nothing to do
    driver = gpu_driver_present()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no stderr to redirect (a daemon): just import
        import tensorflow  # noqa: F401

        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            sys.stderr.write("".join(line for line in text.splitlines(keepends=True)
                                     if not startup_noise(line, driver)))
            sys.stderr.flush()


def version() -> str:
    """The installed package's version (its metadata), else the source tree's ``tfs2s.__version__``."""
    from importlib import metadata

    try:
        return metadata.version("tfs2s")
    except metadata.PackageNotFoundError:  # run from a source checkout that is not installed
        from tfs2s import __version__

        return __version__


def _add_run_dir(p, required=True):
    p.add_argument("--run-dir", required=required, help="run folder (written by `tfs2s train`)")


def _add_decoding(p):
    p.add_argument("--strategy", choices=["greedy", "beam", "sample"],
                   help="decoding strategy (default: the config's decoding.strategy)")
    p.add_argument("--beam-width", type=int, help="beams kept by beam search (default: decoding.beam_width)")
    p.add_argument("--n-best", type=int, help="beam search: hypotheses returned per input, at most the beam "
                                              "width (default: decoding.n_best; shown with --json)")
    p.add_argument("--length-penalty", type=float,
                   help="beam search: GNMT length-penalty exponent (run folders; an export has its own built in)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default: decoding.temperature)")
    p.add_argument("--top-k", type=int, help="sample among the K most likely tokens, 0: all (default: decoding.top_k)")
    p.add_argument("--seed", type=int, help="seed of the sampler, for repeatable samples (default 0)")
    p.add_argument("--no-repeat-ngram", type=int, metavar="N",
                   help="forbid repeating any N-gram (run folders; an export has its own built in)")
    p.add_argument("--no-replace-unknown", action="store_true",
                   help="run folders: keep <unk> in the output instead of copying the source word it attends to")


def _add_batching(p):
    p.add_argument("--batch-size", type=int, default=64, help="sentences translated together (default 64)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (shown on stderr when it is a terminal)")


def _add_train(sub):
    p = sub.add_parser("train", help="train (or resume, or extend) a model")
    p.add_argument("--config", help="YAML config (pipelines/configs/*.yaml); default: the run folder's "
                                    "config.json when it has one, else the built-in defaults")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. --set model.hidden=256 (repeatable)")
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    p.add_argument("--strategy", choices=["default", "mirrored", "multi_worker"], default="default",
                   help="tf.distribute strategy: one device, all local devices, or one process per machine "
                        "(cluster from the TF_CONFIG environment variable)")
    p.add_argument("--connect-timeout", type=float, default=120.0, metavar="SECONDS",
                   help="multi_worker: fail if the other workers do not answer within this time (default 120)")
    p.add_argument("--extend", action="store_true",
                   help="train a finished run further from its last checkpoint (weights and optimizer state), "
                        "up to a larger training.max_minutes or training.epochs given with --set")
    _add_run_dir(p)


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="scores of a run on a corpus split (BLEU/chrF and perplexity for text, "
                                        "accuracy for images, MSE/MAE for series), of a model on files, or of a "
                                        "file of translations", description=EVALUATE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    model = p.add_mutually_exclusive_group()
    model.add_argument("--run-dir", help="a training run folder (written by `tfs2s train`)")
    model.add_argument("--model", help="an exported SavedModel version folder (with --src and --ref)")
    p.add_argument("--split", default="test", help="with --run-dir and no --src: the corpus split (default test)")
    p.add_argument("--src", metavar="FILE", help="source sentences, one per line, to translate and score")
    p.add_argument("--ref", metavar="FILE", help="reference translations, line-parallel to --src or --hyp")
    p.add_argument("--hyp", metavar="FILE", help="translations to score against --ref, without a model")
    p.add_argument("--strategies", default="greedy,beam", help="comma-separated: greedy,beam,sample "
                                                               "(default greedy,beam)")
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N pairs (or images) only (0: all)")
    p.add_argument("--weights", choices=("best", "last", "best_epoch"), default="best",
                   help="with --run-dir: the checkpoint scored: best (the run's final model, with "
                        "training.average_checkpoints the average; default), last (the last epoch's) or best_epoch "
                        "(an averaging run's best single epoch)")
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    p.add_argument("--output", help="write the results as JSON here")
    p.add_argument("--plot", metavar="TEXT", help="run folders: also save the attention heatmap of TEXT")
    p.add_argument("--plot-path", default="alignment.png", help="where --plot saves it (default alignment.png)")
    _add_batching(p)


def _add_export(sub):
    p = sub.add_parser("export", help="export a trained run as a SavedModel (TF Serving layout) and ONNX")
    _add_run_dir(p)
    p.add_argument("--name", help="model name (default: the config's name)")
    p.add_argument("--export-dir", default="saved_models", help="root of exported models (default: saved_models)")
    p.add_argument("--version", type=int, help="version number of the export (default: the next free one)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing version")
    p.add_argument("--onnx", action="store_true", help="also convert the ONNX graphs (into <version>/onnx/)")
    p.add_argument("--quantize", choices=["int8"], help="with --onnx: also write onnx/translate_ids_greedy.int8.onnx "
                   "and translate_ids_beam.int8.onnx (greedy and beam decoding with int8 matrix products in the "
                   "decoding loop, and in the greedy graph's encoder; text models)")
    p.add_argument("--max-beam-width", type=int, default=16,
                   help="largest beam width a request may ask for (default 16)")
    p.add_argument("--info", help="also write the export path and verification report as JSON here")


def _add_average(sub):
    p = sub.add_parser("average", help="make a run's final model the average of its last N epochs' weights "
                                       "(kept when trained with training.average_checkpoints)")
    _add_run_dir(p)
    p.add_argument("--last", type=int, metavar="N",
                   help="epochs to average (default: the run's training.average_checkpoints)")


def _add_translate(sub):
    p = sub.add_parser("translate", help="translate sentences (arguments, stdin or --input FILE)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir", help="a training run folder")
    source.add_argument("--model", help="an exported SavedModel version folder (saved_models/<name>/<version>)")
    p.add_argument("text", nargs="*", help="sentences; read from --input or stdin when none are given")
    p.add_argument("--input", metavar="FILE", help="translate this file, one sentence per line")
    p.add_argument("--output", metavar="FILE", help="write the translations here, one line per input line, "
                                                    "as each batch finishes (default: stdout)")
    _add_decoding(p)
    _add_batching(p)
    p.add_argument("--json", action="store_true", help="print n-best lists with scores as JSON lines")


def _add_chat(sub):
    p = sub.add_parser("chat", help="talk to an exported conversational model (keeps the conversation context)")
    p.add_argument("--model", required=True, help="an exported SavedModel version folder")
    p.add_argument("--say", action="append", metavar="TEXT",
                   help="one-shot: say TEXT, print the reply and exit (repeat for several turns)")
    p.add_argument("--strategy", choices=["beam", "sample"], default="beam", help="decoding strategy (default beam)")
    p.add_argument("--beam-width", type=int, help="beams kept by beam search (default: the export's config)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default: the export's config)")
    p.add_argument("--top-k", type=int, help="sample among the K most likely tokens, 0: all "
                                             "(default: the export's config)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first sampled reply (default 0)")


EVALUATE_HELP = """Scores translations with sacrebleu (BLEU cased and lowercased, chrF):

  tfs2s evaluate --run-dir R [--split test]          a run on its corpus split (also perplexity)
  tfs2s evaluate --run-dir R --src F --ref G         a run on any line-parallel files
  tfs2s evaluate --model saved_models/m/1 --src F --ref G   an export on files
  tfs2s evaluate --hyp H --ref G                     translations already made, no model
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tfs2s`` command."""
    parser = argparse.ArgumentParser(prog="tfs2s", description="RNN sequence-to-sequence toolkit")
    parser.add_argument("--version", action="version", version=f"tfs2s {version()}",
                        help="print the version of tfs2s and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_train, _add_evaluate, _add_export, _add_average, _add_translate, _add_chat):
        add(sub)
    return parser


def run(argv=None) -> int:
    """Runs the command line and returns the exit status."""
    args = build_parser().parse_args(argv)
    quiet_startup()
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
