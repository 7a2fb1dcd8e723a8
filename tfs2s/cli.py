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
import json
import logging
import os
import sys


# Sentences an export is checked on after it is written (reloaded from disk vs the in-memory model).
SAMPLE_CHECK = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "", "Eine Frau singt auf einer Bühne."]


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


def _chat(args) -> int:
    """``tfs2s chat``: one-shot replies with ``--say``, else an interactive prompt (``/reset``, ``/quit``)."""
    from tfs2s.apps.chat import Conversation

    conversation = Conversation(args.model, args.strategy, args.temperature, args.top_k, args.seed, args.beam_width)
    if args.say:
        for message in args.say:
            print(conversation.reply(message), flush=True)
        return 0
    interactive = sys.stdin.isatty()
    if interactive:
        print("Talk to the model; /reset forgets the conversation, /quit (or Ctrl-D) ends it.")
    while True:
        try:
            message = input("you> " if interactive else "")
        except (EOFError, KeyboardInterrupt):
            if interactive:
                print()
            return 0
        if message.strip() == "/quit":
            return 0
        if message.strip() == "/reset":
            conversation.reset()
            continue
        print(("bot> " if interactive else "") + conversation.reply(message), flush=True)


def _decode_overrides(args) -> dict:
    names = {"beam_width": "beam_width", "n_best": "n_best", "length_penalty": "length_penalty_alpha",
             "temperature": "temperature", "top_k": "top_k", "seed": "seed",
             "no_repeat_ngram": "no_repeat_ngram_size"}
    return {dest: getattr(args, src) for src, dest in names.items() if getattr(args, src) is not None}


def _load_translator(run_dir: str, data_dir: str | None = None):
    from tfs2s.pipeline import load_translator

    return load_translator(run_dir, data_dir)


def _translate_exported(path: str, texts: list[str], overrides: dict, as_json: bool) -> int:
    """Translates with an exported SavedModel (``translate_options`` signature: beam search)."""
    import tensorflow as tf

    from tfs2s.export.savedmodel import read_metadata

    meta = read_metadata(path)
    if meta["requires_tensorflow_text"]:
        import tensorflow_text  # noqa: F401  (registers the ops the export needs)
    unknown = set(overrides) - {"beam_width", "n_best"}
    if unknown:
        raise ValueError(f"an exported model decodes by beam search; {sorted(unknown)} cannot be set here")
    signature = tf.saved_model.load(path).signatures["translate_options"]
    d = meta["decoding"]
    out = signature(text=tf.constant(texts, tf.string), beam_width=tf.constant(overrides.get("beam_width", d["beam_width"])),
                    n_best=tf.constant(overrides.get("n_best", d["n_best"])), max_length=tf.constant(0))
    for i, text in enumerate(texts):
        if as_json:
            print(json.dumps({"source": text, "translations": [t.decode() for t in out["translations"][i].numpy()],
                              "scores": [round(float(x), 4) for x in out["scores"][i].numpy()]}, ensure_ascii=False))
        else:
            print(out["text"][i].numpy().decode("utf-8"))
    return 0


def _run_input(run_dir: str) -> str:
    """The ``model.input_encoder`` of a run folder (``tokens`` when it has no readable config)."""
    try:
        with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
            return json.load(f).get("model", {}).get("input_encoder", "tokens")
    except (OSError, ValueError):
        return "tokens"  # the text path reports the missing run folder


def _application(input_encoder: str, what: str):
    """``train`` / ``load`` / ``export`` / ``verify`` of the image (captioning) or vectors (forecasting) runs."""
    if input_encoder == "image":
        from tfs2s.tasks.image import task as m

        return {"train": m.train_captioner, "load": m.load_captioner, "export": m.export_captioner}[what]
    from tfs2s.tasks.series import task as m

    return {"train": m.train_forecaster, "load": m.load_forecaster, "export": m.export_forecaster}[what]


def _export_application(args, input_encoder: str) -> dict:
    """``tfs2s export`` of an image or forecasting run: export, then reload and compare with the model."""
    import numpy as np

    model = _application(input_encoder, "load")(args.run_dir)
    path = _application(input_encoder, "export")(model, args.export_dir, args.name or model.config.name,
                                                  args.version, overwrite=args.overwrite, onnx=args.onnx)
    rng = np.random.default_rng(0)
    if input_encoder == "image":
        from tfs2s.tasks.image.task import verify_caption_export

        verified = verify_caption_export(path, model, rng.random((3, *model.image_shape), np.float32))
    else:
        from tfs2s.tasks.series.task import verify_forecast_export

        window = rng.standard_normal((3, model.lookback, len(model.columns))).astype(np.float32)
        verified = verify_forecast_export(path, model, window * model.standardizer.std + model.standardizer.mean)
    return {"export": path, "verified": verified}


def run(argv=None) -> int:
    """Runs the command line and returns the exit status."""
    args = build_parser().parse_args(argv)
    _quiet_tensorflow()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "train":
        from tfs2s.core.config import load_config
        from tfs2s.training.run import train

        overrides = list(args.set) + ([f"data.data_dir={args.data_dir}"] if args.data_dir else [])
        saved = os.path.join(args.run_dir, "config.json")
        cfg = load_config(args.config or (saved if os.path.exists(saved) else None), overrides)
        if cfg.model.input_encoder != "tokens":
            if args.strategy != "default":
                raise ValueError(f"--strategy {args.strategy} is available for text models only")
            summary = _application(cfg.model.input_encoder, "train")(cfg, args.run_dir, extend=args.extend)
        else:
            summary = train(cfg, args.run_dir, strategy=args.strategy, connect_timeout=args.connect_timeout,
                            extend=args.extend)
        print(json.dumps({k: v for k, v in summary.items() if k != "val_bleu_curve"}, indent=2))
    elif args.command == "evaluate":
        from tfs2s.apps.evaluation import evaluate_split, plot_sentence

        translator = _load_translator(args.run_dir, args.data_dir)
        results = evaluate_split(translator, args.split, [s for s in args.strategies.split(",") if s], args.limit)
        print(json.dumps(results, indent=2, ensure_ascii=False))
        if args.output:
            with open(args.output, "w", encoding="utf-8") as f:
                json.dump(results, f, indent=2, ensure_ascii=False)
        if args.plot:
            print(f"alignment heatmap: {plot_sentence(translator, args.plot, args.plot_path)}")
    elif args.command == "export" and _run_input(args.run_dir) != "tokens":
        report = _export_application(args, _run_input(args.run_dir))
        print(json.dumps(report, indent=2))
        if args.info:
            with open(args.info, "w", encoding="utf-8") as f:
                json.dump(report, f, indent=2)
    elif args.command == "export":
        from tfs2s.export.savedmodel import export_saved_model, verify_export

        translator = _load_translator(args.run_dir)
        path = export_saved_model(translator, args.export_dir, args.name or translator.config.name, args.version,
                                  overwrite=args.overwrite, onnx=args.onnx, max_beam_width=args.max_beam_width)
        report = {"export": path, "verified": verify_export(path, translator, SAMPLE_CHECK)}
        print(json.dumps(report, indent=2))
        if args.info:
            with open(args.info, "w", encoding="utf-8") as f:
                json.dump(report, f, indent=2)
    elif args.command == "chat":
        return _chat(args)
    elif args.command == "translate":
        texts = args.text or [line.rstrip("\n") for line in sys.stdin]
        overrides = _decode_overrides(args)
        if args.model:
            return _translate_exported(args.model, texts, overrides, args.json)
        translator = _load_translator(args.run_dir)
        if args.json:
            out = translator.translate_batch(texts, args.strategy, **overrides)
            for i, text in enumerate(texts):
                print(json.dumps({"source": text, "translations": list(out["text"][i]),
                                  "scores": [round(float(s), 4) for s in out["scores"][i]]}, ensure_ascii=False))
        else:
            for line in translator.translate(texts, args.strategy, **overrides):
                print(line)
    return 0


def main(argv=None) -> None:
    """Entry point: user mistakes end with a one-line error and exit status 2, not a traceback."""
    from tfs2s.core.config import ConfigError
    from tfs2s.data.corpora import DataError
    from tfs2s.training.distribute import DistributeError
    from tfs2s.export.savedmodel import ExportError

    try:
        status = run(argv)
    except (ConfigError, DataError, DistributeError, ExportError, FileNotFoundError, ValueError) as err:
        print(f"tfs2s: error: {err}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        print("tfs2s: interrupted; `tfs2s train` resumes from its last backup when run again with the same --run-dir",
              file=sys.stderr)
        status = 130
    sys.exit(status)


if __name__ == "__main__":
    main()
