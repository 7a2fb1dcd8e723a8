"""The bad-input corpus through every runtime of one export: a table runtime x case, answered / of.

Runs tests/data/bad_inputs.json (and the sanity checks' reference batch) through the runtimes of
``benchmarks/runtimes.py`` (the code tests/test_bad_inputs.py runs): the SavedModel's ``serving_default`` and
``translate_greedy`` in a TensorFlow-only process, Python onnxruntime's text graph and greedy / beam ids graphs,
and the JS client in Node (greedy, beam). A runtime whose graph the export lacks is listed as not run. The
browser's column comes from the report tests/test_web_demo.py writes (``--browser-report``). A cell is
``answered/of``, or the error; "problems" lists what the sanity checks found (``problems``). The checks and
the table are here, the runtimes in ``runtimes``; tests/test_bad_inputs.py uses both.

    python benchmarks/bad_inputs.py --export saved_models/multi30k_small/1 [--browser-report FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile

import runtimes
from summary import commit, machine  # noqa: F401  (benchmarks/summary.py; re-exported to the other scripts)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
README_EXPORT = os.path.join(ROOT, "saved_models", "multi30k_small", "1")
ANSWER_CHARS = 200  # answers kept per input in the results file


ALONE = "check: mixed_batch's first input alone"  # not a corpus case: the sanity check's reference


def with_checks(cases: list[dict]) -> list[dict]:
    """``cases`` plus the batch the sanity checks compare with: the mixed batch's first input on its own."""
    mixed = next((c for c in cases if c["name"] == "mixed_batch"), None)
    return cases + ([{"name": ALONE, "batch": mixed["batch"][:1]}] if mixed and mixed["batch"] else [])


def problems(cases: dict) -> list[str]:
    """What is wrong in one runtime's ``{case: outcome}``: unanswered cases and cheap sanity checks.

    Every case answered (one string per input, no error); texts with no words (``empty``, ``whitespace_only``
    and the mixed batch's "" and " ") translate to ""; a batch of zero gets zero answers; the mixed batch's first
    input gets the same answer as on its own (a sentence translates the same whatever it is batched with).
    """
    errors = {o["error"] for o in cases.values()}
    if len(cases) > 1 and len(errors) == 1 and None not in errors:  # one reason for all (not run, died at start)
        return [f"every case: {errors.pop()}"]
    found = []
    for name, outcome in cases.items():
        if outcome["error"] or outcome["answered"] != outcome["of"]:
            found.append(f"{name}: {outcome['answered']}/{outcome['of']} answered, {outcome['error']}")
        elif outcome["answers"] is not None and not all(isinstance(a, str) for a in outcome["answers"]):
            found.append(f"{name}: a non-string answer")
    for name in ("empty", "whitespace_only"):
        if name in cases and not cases[name]["error"] and cases[name]["answers"] not in (None, [""]):
            found.append(f"{name}: answered {cases[name]['answers']!r}, not ['']")
    zero = cases.get("batch_of_zero")
    if zero and (zero["of"] != 0 or zero["answered"] or zero["answers"]):
        found.append(f"batch_of_zero: {zero['answered']} answers")
    mixed, alone = cases.get("mixed_batch"), cases.get(ALONE)
    if mixed and alone and mixed["answers"] and alone["answers"] and mixed["answers"][0] != alone["answers"][0]:
        found.append(f"mixed_batch: first answer {mixed['answers'][0]!r}, alone {alone['answers'][0]!r}")
    return found


def add_browser_report(report: dict, path: str) -> dict:
    """``report`` with the column of a browser run (``tests/test_web_demo.py`` writes it where
    ``TFS2S_BAD_INPUT_REPORT`` says: ``{"runtime", "cases": {name: {"answered", "of", "error"}}}``)."""
    with open(path, encoding="utf-8") as f:
        browser = json.load(f)
    cases = {name: {"answered": o["answered"], "of": o["of"], "error": o.get("error"), "answers": o.get("answers")}
             for name, o in browser["cases"].items()}
    return {**report, browser.get("runtime", "browser"): cases}


def table(report: dict, case_names: list[str]) -> str:
    """A Markdown table, case x runtime: ``answered/of``, or the error's first words."""
    runtimes = list(report)
    lines = ["| case | " + " | ".join(runtimes) + " |", "|---" * (len(runtimes) + 1) + "|"]
    for name in case_names:
        cells = []
        for runtime in runtimes:
            outcome = report[runtime].get(name)
            if outcome is None:
                cells.append("not run")
            elif outcome["error"] and outcome["error"].startswith("not run"):
                cells.append("not run")
            elif outcome["error"]:
                cells.append(f"{outcome['answered']}/{outcome['of']} **{outcome['error'][:40]}**")
            else:
                cells.append(f"{outcome['answered']}/{outcome['of']}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", default=README_EXPORT, help="an export's version folder (default: the README's)")
    parser.add_argument("--corpus", default=runtimes.CORPUS)
    parser.add_argument("--runtimes", default=",".join(runtimes.RUNTIMES),
                        help=f"comma-separated, of: {', '.join(runtimes.RUNTIMES)}")
    parser.add_argument("--browser-report", help="the browser's report (tests/test_web_demo.py writes it where "
                                                 "TFS2S_BAD_INPUT_REPORT says)")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "bad_inputs.json"))
    args = parser.parse_args()
    if not os.path.isdir(args.export):
        raise SystemExit(f"no export at {args.export}: pass --export DIR (a folder written by tfs2s export --onnx)")
    names = [n.strip() for n in args.runtimes.split(",") if n.strip()]
    unknown = sorted(set(names) - set(runtimes.RUNTIMES))
    if unknown:
        raise SystemExit(f"unknown runtimes {unknown}; choose from {', '.join(runtimes.RUNTIMES)}")

    corpus = runtimes.read_corpus(args.corpus)
    cases = with_checks(corpus)
    report = runtimes.run_runtimes(args.export, cases, names, tempfile.mkdtemp(prefix="tfs2s-bad-inputs-"))
    if args.browser_report:
        report = add_browser_report(report, args.browser_report)
    found = {runtime: problems(outcomes) for runtime, outcomes in report.items()}
    corpus_names = [c["name"] for c in corpus]
    text = table(report, corpus_names)
    print(text)
    for runtime, lines in found.items():
        print(f"{runtime}: " + ("all answered, sane" if not lines else "; ".join(f[:300] for f in lines)))

    for outcomes in report.values():  # the results file keeps the start of each answer
        for outcome in outcomes.values():
            if outcome.get("answers"):
                outcome["answers"] = [a[:ANSWER_CHARS] if isinstance(a, str) else a for a in outcome["answers"]]
    meta = runtimes.read_metadata(args.export)
    record = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
              "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]), "commit": commit(),
              "export": os.path.abspath(args.export), "corpus": os.path.relpath(args.corpus, ROOT),
              "export_tokenizer": meta.get("tokenizer"), "export_has_host_tokenization": "host_tokenization" in meta,
              "answered_means": "one string answer per input, no exception, no crash; batch of zero: zero answers",
              "all_answered_and_sane": not any(found.values()), "problems": found, "table": text,
              "report": report}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1, ensure_ascii=False)
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
