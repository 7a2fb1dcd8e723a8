"""What each ``tfs2s`` command does, once ``tfs2s.cli`` has parsed its arguments."""

from __future__ import annotations

import json
import os
import sys
import time

from tfs2s import tasks
from tfs2s.apps.batch import check_parallel, in_batches, read_lines
from tfs2s.apps.chat import Conversation
from tfs2s.apps.exported import ExportedTranslator
from tfs2s.apps.translation import evaluate_split, plot_sentence
from tfs2s.tasks.image.task import evaluate_run as evaluate_images
from tfs2s.tasks.series.task import evaluate_run as evaluate_series
from tfs2s.core.config import load_config
from tfs2s.core.errors import InputError
from tfs2s.core.metrics import bleu_scores
from tfs2s.training.averaging import average_run

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


def export(args) -> int:
    """``tfs2s export``: SavedModel (and ONNX) of a run of any task, reloaded and checked against the model."""
    predictor = tasks.load(args.run_dir)
    path = tasks.export(predictor, args.export_dir, args.name, args.version, overwrite=args.overwrite,
                        onnx=args.onnx, max_beam_width=args.max_beam_width, quantize=args.quantize)
    report = {"export": path, "verified": tasks.verify(path, predictor)}
    print(json.dumps(report, indent=2))
    _write_json(args.info, report)
    return 0


def average(args) -> int:
    """``tfs2s average``: a run's final model becomes the average of its last ``--last`` kept epochs."""
    print(json.dumps(average_run(args.run_dir, args.last), indent=2))
    return 0


def _overrides(args) -> dict:
    return {dest: getattr(args, src) for src, dest in DECODE_OPTIONS.items() if getattr(args, src, None) is not None}


def _json_lines(texts: list[str], out: dict) -> list[str]:
    return [json.dumps({"source": text, "translations": [str(t) for t in out["text"][i]],
                        "scores": [round(float(x), 4) for x in out["scores"][i]]}, ensure_ascii=False)
            for i, text in enumerate(texts)]


def _translator(args):
    """The ``--model`` export's or the ``--run-dir`` run's translator."""
    if args.model:
        return ExportedTranslator(args.model)
    return _load_run(args, expect="tokens")


def _load_run(args, expect: str | None = None):
    """The ``--run-dir`` run's predictor over its ``--weights`` checkpoint (``best`` where a command has none)."""
    return tasks.load(args.run_dir, getattr(args, "weights", "best"), expect=expect,
                      data_dir=getattr(args, "data_dir", None))


def _batch_function(translator, strategy: str | None, overrides: dict, as_json: bool = False,
                    replace_unknown: bool | None = None):
    """``batch of sources -> one output line each`` for ``translator`` (a run's or an export's).

    Raises:
        InputError: An option the translator cannot take (checked here, before any file is read or written).
    """
    exported = isinstance(translator, ExportedTranslator)
    if exported:
        if replace_unknown is False:
            raise InputError("--no-replace-unknown applies to run folders; an export's <unk> handling is built in")
        translator.options(strategy, **overrides)
    else:
        options = translator.options(strategy, **overrides)
        if options.strategy == "beam" and not 1 <= options.n_best <= options.beam_width:
            raise InputError(f"--n-best {options.n_best} must be between 1 and the beam width ({options.beam_width})")
    if as_json:
        return lambda batch: _json_lines(batch, translator.translate_batch(batch, strategy, **overrides))
    extra = {} if exported or replace_unknown is None else {"replace_unknown": replace_unknown}
    return lambda batch: translator.translate(batch, strategy, batch_size=len(batch) or 1, **extra, **overrides)


def _sources(args) -> list[str]:
    if args.input and args.text:
        raise InputError("give sentences as arguments or --input FILE, not both")
    if args.input:
        return read_lines(args.input)
    return args.text or [line.rstrip("\n").removesuffix("\r") for line in sys.stdin]


def translate(args) -> int:
    """``tfs2s translate``: sentences from the arguments, stdin or ``--input``, with a run folder or an export;
    the output (stdout or ``--output``) has one line per input line, in order, written batch by batch."""
    translator = _translator(args)
    translate_batch = _batch_function(translator, args.strategy, _overrides(args), args.json,
                                      False if args.no_replace_unknown else None)
    texts = _sources(args)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    progress = not args.quiet and sys.stderr.isatty() and (args.output is not None or not sys.stdout.isatty())
    try:
        for lines in in_batches(translate_batch, texts, args.batch_size, progress):
            out.write("".join(line + "\n" for line in lines))
            out.flush()  # what is translated is kept, even if a later batch fails or the run is stopped
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _evaluate_files(args) -> dict:
    """``tfs2s evaluate --src/--hyp --ref``: sacrebleu scores of a model's translations of ``--src``, or of the
    translations in ``--hyp``, against ``--ref``."""
    references = read_lines(args.ref)
    if args.hyp:
        if args.src or args.model or args.run_dir:
            raise InputError("--hyp scores translations already made: give it with --ref only")
        hypotheses = read_lines(args.hyp)
        check_parallel((args.hyp, hypotheses), (args.ref, references))
        return {"hypotheses": args.hyp, "reference": args.ref, "sentences": len(references),
                **bleu_scores(hypotheses, references)}
    if not (args.model or args.run_dir):
        raise InputError("--src needs a model to translate it: --run-dir or --model")
    sources = read_lines(args.src)
    check_parallel((args.src, sources), (args.ref, references))
    if args.limit:
        sources, references = sources[: args.limit], references[: args.limit]
    strategies = [s for s in args.strategies.split(",") if s]
    translator = _translator(args)
    results: dict = {"source": args.src, "reference": args.ref, "sentences": len(sources)}
    functions = {s: _batch_function(translator, s, {}) for s in strategies}  # all checked before any decoding
    progress = not args.quiet and sys.stderr.isatty()
    for strategy, function in functions.items():
        function(sources[: args.batch_size])  # traced (a run) or warmed up (an export) outside the timing
        started = time.perf_counter()
        hypotheses = [h for lines in in_batches(function, sources, args.batch_size, progress) for h in lines]
        seconds = time.perf_counter() - started
        results[strategy] = {**bleu_scores(hypotheses, references),
                             "sentences_per_second": round(len(sources) / max(seconds, 1e-9), 1),
                             "examples": [{"source": s, "reference": r, "hypothesis": h}
                                          for s, r, h in list(zip(sources, references, hypotheses))[:5]]}
    return results


def evaluate(args) -> int:
    """``tfs2s evaluate``: scores of a run on a split (with perplexity and an attention plot), of a run or an
    export on files, or of a file of translations."""
    if args.hyp and not args.ref or args.src and not args.ref:
        raise InputError(f"{'--hyp' if args.hyp else '--src'} needs --ref FILE, the reference translations")
    if args.ref and not (args.src or args.hyp):
        raise InputError("--ref needs --src FILE (to translate) or --hyp FILE (translations to score)")
    if args.plot and not args.run_dir:
        raise InputError("--plot draws a run folder's attention: give --run-dir")
    if args.weights != "best" and not args.run_dir:
        raise InputError(f"--weights {args.weights} picks a run folder's checkpoint: give --run-dir")
    translator = None
    if args.ref:
        results = _evaluate_files(args)
    elif args.run_dir:
        results, translator = _evaluate_run(args)
    else:
        raise InputError("evaluate what? give --run-dir R (its corpus split), --src F --ref G with --run-dir or "
                         "--model, or --hyp H --ref G")
    print(json.dumps(results, indent=2, ensure_ascii=False))
    _write_json(args.output, results)
    if args.plot:
        translator = translator or _load_run(args, expect="tokens")
        print(f"alignment heatmap: {plot_sentence(translator, args.plot, args.plot_path)}")
    return 0


def _evaluate_run(args) -> tuple[dict, object]:
    """A run's scores on its corpus split: BLEU and perplexity (text), caption accuracy (images), MSE / MAE beside
    the baselines (series). Returns the results and the text run's translator (else None)."""
    predictor = _load_run(args)
    strategies = [s for s in args.strategies.split(",") if s]
    kind = tasks.task_for(predictor.config).input_encoder
    if kind == "tokens":
        return evaluate_split(predictor, args.split, strategies, args.limit), predictor
    if args.plot:
        raise InputError("--plot draws a text model's attention; this run is not a text model")
    if kind == "image":
        return evaluate_images(predictor, args.split, [s for s in strategies if s != "sample"], args.limit), None
    return evaluate_series(predictor, args.split), None


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


COMMANDS = {"train": train, "evaluate": evaluate, "export": export, "translate": translate, "chat": chat,
            "average": average}
