"""What each ``tfs2s`` command does, once ``tfs2s.cli`` has parsed its arguments."""

from __future__ import annotations

import json
import os
import sys

import tensorflow as tf

from tfs2s import tasks
from tfs2s.apps.chat import Conversation
from tfs2s.apps.translation import evaluate_split, plot_sentence
from tfs2s.core.config import load_config
from tfs2s.core.errors import InputError
from tfs2s.export.savedmodel import read_metadata

# ``tfs2s translate`` options and the ``DecodeOptions`` fields they set.
DECODE_OPTIONS = {"beam_width": "beam_width", "n_best": "n_best", "length_penalty": "length_penalty",
                  "temperature": "temperature", "top_k": "top_k", "seed": "seed",
                  "no_repeat_ngram": "no_repeat_ngram_size"}


def _write_json(path: str | None, report: dict) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)


def train(args) -> int:
    """``tfs2s train``: train, resume or extend a run of any task."""
    overrides = list(args.set) + ([f"data.data_dir={args.data_dir}"] if args.data_dir else [])
    saved = os.path.join(args.run_dir, "config.json")
    cfg = load_config(args.config or (saved if os.path.exists(saved) else None), overrides)
    if cfg.model.input_encoder != "tokens" and args.strategy != "default":
        raise InputError(f"--strategy {args.strategy} is available for text models only")
    summary = tasks.train(cfg, args.run_dir, strategy=args.strategy, connect_timeout=args.connect_timeout,
                          extend=args.extend)
    print(json.dumps({k: v for k, v in summary.items() if k != "val_bleu_curve"}, indent=2))
    return 0


def evaluate(args) -> int:
    """``tfs2s evaluate``: BLEU / chrF / perplexity of a text run on a split, and an attention plot."""
    translator = tasks.load(args.run_dir, expect="tokens", data_dir=args.data_dir)
    results = evaluate_split(translator, args.split, [s for s in args.strategies.split(",") if s], args.limit)
    print(json.dumps(results, indent=2, ensure_ascii=False))
    _write_json(args.output, results)
    if args.plot:
        print(f"alignment heatmap: {plot_sentence(translator, args.plot, args.plot_path)}")
    return 0


def export(args) -> int:
    """``tfs2s export``: SavedModel (and ONNX) of a run of any task, reloaded and checked against the model."""
    predictor = tasks.load(args.run_dir)
    path = tasks.export(predictor, args.export_dir, args.name, args.version, overwrite=args.overwrite,
                        onnx=args.onnx, max_beam_width=args.max_beam_width)
    report = {"export": path, "verified": tasks.verify(path, predictor)}
    print(json.dumps(report, indent=2))
    _write_json(args.info, report)
    return 0


def _translate_exported(path: str, texts: list[str], overrides: dict, as_json: bool) -> int:
    """Translates with an exported SavedModel (``translate_options`` signature: beam search)."""
    meta = read_metadata(path)
    if meta["requires_tensorflow_text"]:
        import tensorflow_text  # noqa: F401  (registers the ops the export needs; only such exports need it)
    unknown = set(overrides) - {"beam_width", "n_best"}
    if unknown:
        raise InputError(f"an exported model decodes by beam search; {sorted(unknown)} cannot be set here")
    signature = tf.saved_model.load(path).signatures["translate_options"]
    d = meta["decoding"]
    out = signature(text=tf.constant(texts, tf.string),
                    beam_width=tf.constant(overrides.get("beam_width", d["beam_width"])),
                    n_best=tf.constant(overrides.get("n_best", d["n_best"])), max_length=tf.constant(0))
    for i, text in enumerate(texts):
        if as_json:
            print(json.dumps({"source": text, "translations": [t.decode() for t in out["translations"][i].numpy()],
                              "scores": [round(float(x), 4) for x in out["scores"][i].numpy()]}, ensure_ascii=False))
        else:
            print(out["text"][i].numpy().decode("utf-8"))
    return 0


def translate(args) -> int:
    """``tfs2s translate``: sentences from the arguments or stdin, with a run folder or an export."""
    texts = args.text or [line.rstrip("\n") for line in sys.stdin]
    overrides = {dest: getattr(args, src) for src, dest in DECODE_OPTIONS.items() if getattr(args, src) is not None}
    if args.model:
        return _translate_exported(args.model, texts, overrides, args.json)
    translator = tasks.load(args.run_dir, expect="tokens")
    if args.json:
        out = translator.translate_batch(texts, args.strategy, **overrides)
        for i, text in enumerate(texts):
            print(json.dumps({"source": text, "translations": list(out["text"][i]),
                              "scores": [round(float(s), 4) for s in out["scores"][i]]}, ensure_ascii=False))
    else:
        for line in translator.translate(texts, args.strategy, **overrides):
            print(line)
    return 0


def chat(args) -> int:
    """``tfs2s chat``: one-shot replies with ``--say``, else an interactive prompt (``/reset``, ``/quit``)."""
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


COMMANDS = {"train": train, "evaluate": evaluate, "export": export, "translate": translate, "chat": chat}
