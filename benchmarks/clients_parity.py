"""Texts of one export in Python, Node and the browser, compared sentence by sentence (issue 20's "Done when").

On the first N sentences of Multi30k test_2016_flickr (the export's source language), greedy and beam search
(the export's beam graph; its width is ``decoding.beam_width``), one sentence a call in every runtime:

* Python (the reference): the SavedModel's ``translate_greedy`` and ``serving_default`` text signatures
  (``node_speed.SavedModel``: their text output, ``<unk>`` replaced as the export's ``decoding.replace_unknown``
  says);
* Node: the JS client (clients/js/src/index.mjs) in onnxruntime-node, ``translate([text], {strategy})``
  (``clients/js/bench/speed.mjs``, the worker of benchmarks/node_speed.py);
* the browser: the demo page (clients/web/, served by clients/web/serve.mjs) in headless /usr/bin/chromium with
  onnxruntime-web (wasm, one thread), each sentence through the page's ``window.tfs2s.translate`` hook
  (clients/web/test/drive.mjs, its ``batch`` part).

Reported per strategy and runtime: sentences whose text equals Python's (and the first that differ, with both
texts and whether the output ids and the source ids agree, which tells tokenization, ``<unk>`` replacement and
search apart), sentences whose best output has an ``<unk>`` id (replaced in the text, or left), and the time the
calls took. ``--browser-report-out FILE`` also runs the bad-input corpus through the page's hook and writes the
browser's column for ``benchmarks/bad_inputs.py --browser-report FILE``.

    python benchmarks/clients_parity.py [--export DIR] [--sentences N] [--browser-report-out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import runtimes
from bad_inputs import README_EXPORT, commit, machine, with_checks
from node_speed import SavedModel, Worker, read_sentences

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WEB = os.path.join(ROOT, "clients", "web")
CHROMIUM = "/usr/bin/chromium"
STRATEGIES = ("greedy", "beam")
SHOWN = 5  # differing sentences kept per strategy and runtime
UNK = "<unk>"


def python_texts(export_dir: str, sentences: list[str], ids: list[list[int]]) -> dict:
    """``{strategy: {"texts", "ids", "seconds", "wall_seconds"}}`` of the SavedModel's text signatures."""
    started = time.perf_counter()
    model = SavedModel(export_dir, sentences, ids)
    out = {"load_seconds": None}
    for strategy in STRATEGIES:
        model.ask("saved_model", strategy, [0])  # warm-up: tracing
        out[strategy] = _timed(lambda: model.ask("saved_model", strategy, list(range(len(sentences)))))
    out["load_seconds"] = round(time.perf_counter() - started - sum(out[s]["wall_seconds"] for s in STRATEGIES), 1)
    return out


def node_texts(export_dir: str, inputs: str, count: int) -> dict:
    """The JS client in Node (bench/speed.mjs): texts, best ids and seconds per strategy, its source ids."""
    node = Worker(["node", "bench/speed.mjs", os.path.abspath(export_dir), inputs], runtimes.JS_CLIENT, hello=True)
    try:
        out = {"versions": node.hello, "source_ids": node.ask(op="encode", indices=list(range(count)))["ids"]}
        for strategy in STRATEGIES:
            node.ask(op="time", runtime="node", strategy=strategy, indices=[0])  # warm-up: session creation
            out[strategy] = _timed(lambda: node.ask(op="time", runtime="node", strategy=strategy,
                                                    indices=list(range(count))))
    finally:
        node.close()
    return out


def _timed(call) -> dict:
    started = time.perf_counter()
    answer = call()
    return {"texts": [o["text"] for o in answer["outputs"]], "ids": [o["ids"] for o in answer["outputs"]],
            "seconds": answer["seconds"], "wall_seconds": time.perf_counter() - started}


class Server:
    """``node clients/web/serve.mjs --export DIR`` on a free port; ``url`` is the page's address it prints."""

    def __init__(self, export_dir: str):
        self.proc = subprocess.Popen(["node", os.path.join(WEB, "serve.mjs"), "--export", export_dir],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.proc.kill()
            raise SystemExit(f"serve.mjs did not start: {self.url} {self.proc.stderr.read()}")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def browser_missing() -> str | None:
    """Why the browser cannot run here, or None."""
    needed = [os.path.join(WEB, "node_modules", p) for p in ("onnxruntime-web", "playwright-core")]
    if not all(os.path.isdir(p) for p in needed):
        return "clients/web has no node_modules: run `npm ci --ignore-scripts` in clients/web"
    return None if os.path.exists(CHROMIUM) else f"no Chromium at {CHROMIUM} (apt-get install chromium)"


def browser_texts(export_dir: str, sentences: list[str], bad_cases: list[dict] | None, work: str) -> dict:
    """The demo page in headless Chromium: drive.mjs's ``batch`` part (and its bad inputs, when given)."""
    cases = {"chromium": CHROMIUM, "batch": {"sentences": sentences, "strategies": list(STRATEGIES)}}
    if bad_cases is not None:
        cases.update(bad_inputs=bad_cases, bad_ui=False)
    cases_path, out_path = os.path.join(work, "web_cases.json"), os.path.join(work, "web_out.json")
    server = Server(export_dir)
    started = time.perf_counter()
    try:
        with open(cases_path, "w", encoding="utf-8") as f:
            json.dump({**cases, "url": server.url}, f, ensure_ascii=False)
        proc = subprocess.run(["node", os.path.join(WEB, "test", "drive.mjs"), cases_path, out_path], cwd=ROOT,
                              capture_output=True, text=True, timeout=3 * 3600)
    finally:
        server.close()
    if proc.returncode != 0 or not os.path.exists(out_path):
        raise SystemExit(f"drive.mjs failed (exit {proc.returncode}): {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    with open(out_path, encoding="utf-8") as f:
        out = json.load(f)
    if not out["info"]["ready"]:
        raise SystemExit(f"the page did not load the export: {out['info']}")
    return {**out["batch"], "bad_inputs": out.get("bad_inputs"), "info": out["info"],
            "page_errors": out["page_errors"], "console_errors": out["console_errors"],
            "run_seconds": round(time.perf_counter() - started, 1)}


def package_version(folder: str, package: str) -> str:
    """The version of an npm package installed under ``folder``."""
    with open(os.path.join(folder, "node_modules", package, "package.json"), encoding="utf-8") as f:
        return json.load(f)["version"]


def browser_report(bad: dict, version: str) -> dict:
    """The browser's bad-input column, as tests/test_web_demo.py writes it (plus each case's answers)."""
    cases = {name: {"answered": o["answered"], "of": o["of"], "error": o["error"], "answers": o["texts"]}
             for name, o in bad.items()}
    return {"runtime": f"browser (onnxruntime-web {version})", "cases": cases}


def _cut(ids: list[int], eos: int) -> list[int]:
    ids = [int(i) for i in ids]
    return ids[:ids.index(eos)] if eos in ids else ids


def compare(reference: dict, run: dict, sentences: list[str], special: dict, same_source: list | None) -> dict:
    """One runtime's strategy run against Python's: equal texts, the first differences, ``<unk>`` counts, time.

    A difference says whether the output ids are Python's (then detokenization or ``<unk>`` replacement differ)
    and whether the source ids are (``same_source``: per sentence, None where not measured).
    """
    eos, unk = special["eos"], special["unk"]
    differing = []
    for i, (want, got) in enumerate(zip(reference["texts"], run["texts"])):
        if want != got:
            want_ids, got_ids = _cut(reference["ids"][i], eos), _cut(run["ids"][i], eos)
            first = next((t for t, (a, b) in enumerate(zip(want_ids, got_ids)) if a != b),
                         min(len(want_ids), len(got_ids)))
            differing.append({"index": i, "source": sentences[i], "python": want, "runtime": got,
                              "same_output_ids": want_ids == got_ids, "first_differing_token": first,
                              "same_source_ids": None if same_source is None else same_source[i],
                              "python_ids": want_ids, "runtime_ids": got_ids})
    with_unk = sum(unk in _cut(ids, eos) for ids in run["ids"])
    seconds = run["seconds"]
    return {"sentences": len(run["texts"]), "text_equal_python": len(run["texts"]) - len(differing),
            "differing": len(differing), "differing_with_same_output_ids": sum(d["same_output_ids"] for d in differing),
            "with_unk_id": with_unk, "unk_left_in_text": sum(UNK in t for t in run["texts"] if t is not None),
            "seconds_in_calls": round(sum(seconds), 2), "wall_seconds": round(run["wall_seconds"], 2),
            "sentences_per_second": round(len(seconds) / sum(seconds), 1) if seconds else None,
            "p50_ms": round(1000 * float(np.percentile(seconds, 50)), 2) if seconds else None,
            "first_differences": differing[:SHOWN]}


def table(figures: dict) -> str:
    """Markdown: a row per strategy and runtime."""
    lines = ["| strategy | runtime | text = Python's | differing (same output ids) | best output with <unk> id "
             "| '<unk>' left in text | s in calls | sentences/s | p50 ms |", "|---" * 9 + "|"]
    for key, f in figures.items():
        strategy, runtime = key.split("/")
        equal = "reference" if runtime.startswith("python") else f"{f['text_equal_python']}/{f['sentences']}"
        differing = "-" if runtime.startswith("python") else f"{f['differing']} ({f['differing_with_same_output_ids']})"
        lines.append(f"| {strategy} | {runtime} | {equal} | {differing} | {f['with_unk_id']} | {f['unk_left_in_text']} "
                     f"| {f['seconds_in_calls']} | {f['sentences_per_second']} | {f['p50_ms']} |")
    return "\n".join(lines)


def run(args) -> None:
    """Python, Node and the browser over the sentences; prints the table and the first differences."""
    meta = runtimes.read_metadata(args.export)
    sentences = read_sentences(args.export, args.data_dir, args.sentences)
    pad = meta["special_ids"]["pad"]
    tokenization = runtimes.PythonTokenization(args.export)
    ids = [[i for i in row if i != pad] or [pad] for row in tokenization.source_ids(sentences)["ids"]]
    work = tempfile.mkdtemp(prefix="tfs2s-clients-parity-")
    inputs = os.path.join(work, "inputs.json")
    with open(inputs, "w", encoding="utf-8") as f:
        json.dump({"sentences": sentences, "ids": ids}, f, ensure_ascii=False)

    print(f"Python (SavedModel), {len(sentences)} sentences ...", flush=True)
    python = python_texts(args.export, sentences, ids)
    print("Node (JS client, onnxruntime-node) ...", flush=True)
    node = node_texts(args.export, inputs, len(sentences))
    same_source = [a == b for a, b in zip(node.pop("source_ids"), ids)]
    bad_cases = with_checks(runtimes.read_corpus()) if args.browser_report_out else None
    browser, web_version = None, package_version(WEB, "onnxruntime-web")
    if not args.no_browser:
        print("browser (demo page, onnxruntime-web in headless Chromium) ...", flush=True)
        browser = browser_texts(args.export, sentences, bad_cases, work)
    if args.browser_report_out and browser:
        with open(args.browser_report_out, "w", encoding="utf-8") as f:
            json.dump(browser_report(browser["bad_inputs"], web_version), f, indent=1, ensure_ascii=False)
        print(f"written: {args.browser_report_out}")

    special = meta["special_ids"]
    figures = {}
    for strategy in STRATEGIES:
        columns = {"python SavedModel": python[strategy], "node": node[strategy]}
        if browser:
            columns["browser"] = browser[strategy]
        for runtime, out in columns.items():
            figures[f"{strategy}/{runtime}"] = compare(python[strategy], out, sentences, special,
                                                      same_source if runtime == "node" else None)
    text = table(figures)
    print(text)
    for key, f in figures.items():
        for d in f["first_differences"]:
            print(f"{key} #{d['index']}: {d['source']!r}\n  python:  {d['python']!r}\n  runtime: {d['runtime']!r}"
                  f"\n  same output ids: {d['same_output_ids']}, same source ids: {d['same_source_ids']}")
    write(args, meta, figures, text, same_source, python, node, browser, web_version)


def _source_lang(export_dir: str) -> str:
    with open(os.path.join(export_dir, "assets.extra", "config.json"), encoding="utf-8") as f:
        return json.load(f)["data"]["source_lang"]


def _chromium_version() -> str:
    try:
        return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        return f"? ({error})"


def write(args, meta, figures, text, same_source, python, node, browser, web_version) -> None:
    """The results file: machine, command, commit, the export and its metadata, versions, figures."""
    metadata_path = os.path.join(args.export, runtimes.METADATA)
    written = datetime.datetime.fromtimestamp(os.path.getmtime(metadata_path)).isoformat(timespec="seconds")
    record = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
        "load": "2 cores shared with other sessions' jobs: timings are indicative only",
        "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]), "commit": commit(),
        "export": os.path.abspath(args.export),
        "export_metadata": {"tfs2s_version": meta.get("tfs2s_version") or meta.get("tfs2s"),
                            "date": meta.get("date") or meta.get("exported"), "metadata_file_written": written,
                            "format": meta.get("format"), "tensorflow": meta.get("tensorflow"),
                            "keras": meta.get("keras"), "tokenizer": meta.get("tokenizer"),
                            "decoding": meta.get("decoding"), "replace_unknown": meta.get("replace_unknown"),
                            "host_tokenization_version": meta.get("host_tokenization", {}).get("version")},
        "data": f"first {args.sentences} lines of multi30k/test_2016_flickr.{_source_lang(args.export)}.gz",
        "batch": 1, "timing": "per call (one sentence), after one warm-up call per strategy; sequential runtimes",
        "versions": {"node": node["versions"].get("node"), "onnxruntime_node": node["versions"].get("onnxruntime_node"),
                     "onnxruntime_web": web_version, "chromium": _chromium_version() if browser else None},
        "python_load_seconds": python["load_seconds"],
        "node_source_ids_equal_python": sum(same_source), "browser": None if browser is None else {
            "run_seconds": browser["run_seconds"], "page_errors": browser["page_errors"],
            "console_errors": browser["console_errors"], "info": browser["info"]},
        "table": text, "figures": figures}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1, ensure_ascii=False)
    print(f"node source ids = Python's: {sum(same_source)}/{len(same_source)}")
    print(f"written: {args.output}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", default=README_EXPORT, help="an export's version folder (default: the README's)")
    parser.add_argument("--sentences", type=int, default=1000, help="first N sentences of test_2016_flickr")
    parser.add_argument("--data-dir", default=os.path.join(ROOT, "..", "shared", "data"))
    parser.add_argument("--browser-report-out", help="also run the bad-input corpus in the page; write its column "
                                                     "here (for benchmarks/bad_inputs.py --browser-report)")
    parser.add_argument("--no-browser", action="store_true", help="Python and Node only")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "clients_parity.json"))
    args = parser.parse_args()
    if not os.path.isdir(args.export):
        raise SystemExit(f"no export at {args.export}: pass --export DIR (a folder written by tfs2s export --onnx)")
    for reason in filter(None, [runtimes.not_runnable("node greedy", args.export),
                                runtimes.not_runnable("node beam", args.export),
                                None if args.no_browser else browser_missing()]):
        raise SystemExit(f"cannot run {args.export}: {reason}")
    run(args)


if __name__ == "__main__":
    main()
