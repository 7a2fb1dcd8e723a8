"""The browser demo (clients/web/) shows Python's translations, keeps a conversation as tfs2s chat does, and
answers the whole bad-input corpus in headless Chromium with onnxruntime-web (wasm).

A tiny word model with attention (``conftest.client_export``, shared by the ``runtimes`` tests) is exported with
its ids graphs (greedy, written by tfs2s, and beam, converted by tf2onnx). ``clients/web/serve.mjs`` serves the page and the export on 127.0.0.1;
``clients/web/test/drive.mjs`` drives the page with playwright-core in Debian's /usr/bin/chromium and records
what it shows; this module compares that with ``Translator.translate`` and ``tfs2s.apps.chat.Conversation``'s
context rule. Set ``TFS2S_BAD_INPUT_REPORT=path.json`` to write the per-case answers (the README's table).
"""

import json
import os
import shutil
import subprocess
import types
import urllib.error
import urllib.request

import numpy as np
import onnx
import pytest
import tensorflow as tf

from tfs2s.apps.chat import Conversation
from tfs2s.data import images

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEB = os.path.join(ROOT, "clients", "web")
CHROMIUM = "/usr/bin/chromium"
BAD_INPUTS = os.path.join(ROOT, "tests", "data", "bad_inputs.json")
SENTENCES = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau singt auf einer Bühne .", "",
             "Ein kleines Mädchen in einem rosa Kleid läuft über eine Wiese."]
MESSAGES = ["Ein  Mann\u3000fährt  Fahrrad. ", "Zwei Hunde spielen.", "Wo ist die Frau?"]


def _tools(browser: bool = True) -> str:
    node = shutil.which("node")
    missing = [what for what, ok in (
        ("`node` on PATH", node),
        (f"Chromium at {CHROMIUM} (apt-get install chromium)", os.path.exists(CHROMIUM) or not browser),
        ("clients/web/node_modules (cd clients/web && npm ci --ignore-scripts)",
         all(os.path.isdir(os.path.join(WEB, "node_modules", p)) for p in ("onnxruntime-web", "playwright-core"))))
        if not ok]
    if missing:
        pytest.skip("browser demo test not run: needs " + ", ".join(missing))
    return node


def _chat_copy(path: str, folder: str) -> tuple[str, object]:
    """The export as a dialogue model (its config names a dialogue corpus, two turns of context): a copy."""
    copy = shutil.copytree(path, folder)
    config_path = os.path.join(copy, "assets.extra", "config.json")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    config["data"].update(corpus="chatterbot", context_turns=2, turn_separator="SEP")
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(config, f)
    return copy, types.SimpleNamespace(data=types.SimpleNamespace(**config["data"]))


class _Server:
    """``node clients/web/serve.mjs --export DIR`` on a free port; ``url`` is the page's address it prints."""

    def __init__(self, node: str, export_dir: str):
        self.proc = subprocess.Popen([node, os.path.join(WEB, "serve.mjs"), "--export", export_dir],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.proc.kill()
            raise AssertionError(f"serve.mjs did not start: {self.url} {self.proc.stderr.read()}")

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def test_server_serves_the_demo_and_nothing_else(tmp_path):
    """serve.mjs (default suite, about 1 s): the page, the client, onnxruntime-web's wasm as application/wasm and
    the export, and 404 for the rest of the checkout, other packages and paths that climb out of a folder."""
    node = _tools(browser=False)
    export_dir = tmp_path / "export"
    (export_dir / "assets.extra").mkdir(parents=True)
    (export_dir / "assets.extra" / "tfs2s_export.json").write_text('{"task": "text_to_text"}', encoding="utf-8")
    (export_dir / "onnx").mkdir()
    (export_dir / "onnx" / "translate_ids_greedy.onnx").write_bytes(b"\x08\x08")
    bad = subprocess.run([node, os.path.join(WEB, "serve.mjs"), "--export", str(tmp_path)], capture_output=True,
                         text=True, timeout=30)
    assert bad.returncode == 2 and "is not a tfs2s export" in bad.stderr, bad.stderr
    server = _Server(node, str(export_dir))
    base = server.url.split("/clients/")[0]
    try:
        def get(url_path):
            try:
                with urllib.request.urlopen(base + url_path, timeout=10) as response:
                    return response.status, response.headers["Content-Type"], response.read()
            except urllib.error.HTTPError as error:
                return error.code, None, b""

        assert server.url.endswith("/clients/web/?export=/export/")
        assert get("/clients/web/")[1].startswith("text/html")
        assert get("/clients/web/app.mjs")[1].startswith("text/javascript")
        assert get("/clients/js/src/index.mjs")[1].startswith("text/javascript")
        status, kind, body = get("/clients/web/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm")
        assert (status, kind, body[:4]) == (200, "application/wasm", b"\0asm")
        assert get("/export/onnx/translate_ids_greedy.onnx")[2] == b"\x08\x08"
        for outside in ("/README.md", "/clients/web/node_modules/playwright-core/package.json", "/export/%2e%2e/x",
                        "/clients/web/%2e%2e/%2e%2e/README.md", "/clients/js/package.json"):
            assert get(outside)[0] == 404, outside
    finally:
        server.close()


def test_caption_resize_matches_tensorflow():
    """caption.mjs's resize (default suite, about 1 s) is tf.image.resize(bilinear, antialias) as tfs2s resizes."""
    node = _tools(browser=False)
    rng = np.random.default_rng(0)
    for h, w, height, width in [(100, 300, 50, 200), (30, 90, 50, 200), (64, 64, 17, 23)]:
        image = rng.random((h, w, 1), np.float32)
        script = ("import fs from 'node:fs'; import { resize } from './clients/web/caption.mjs';"
                  "const data = Float32Array.from(JSON.parse(fs.readFileSync(0, 'utf-8')));"
                  f"process.stdout.write(JSON.stringify(Array.from(resize(data, {h}, {w}, 1, {height}, {width}))));")
        proc = subprocess.run([node, "--input-type=module", "-e", script], input=json.dumps(image.ravel().tolist()),
                              capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert proc.returncode == 0, proc.stderr
        expected = images.resize_pixels(tf.constant(image), height, width).numpy()
        np.testing.assert_allclose(np.array(json.loads(proc.stdout)).reshape(expected.shape), expected, atol=1e-5)


def _has_alignment(path: str) -> bool:
    graph = onnx.load(os.path.join(path, "onnx", "translate_ids_greedy.onnx"), load_external_data=False).graph
    return "alignment" in [o.name for o in graph.output]


def _drive(node: str, cases: dict, tmp_path) -> dict:
    cases_path, out_path = str(tmp_path / "web_cases.json"), str(tmp_path / "web_out.json")
    with open(cases_path, "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False)
    proc = subprocess.run([node, os.path.join(WEB, "test", "drive.mjs"), cases_path, out_path], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out_path, encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.runtimes  # a Chromium run (about 25 s) on the shared client export; by default
# test_server_serves_the_demo_and_nothing_else checks the server and tests/test_onnx_portable.py the graphs in Node
def test_page_translates_as_python_and_answers_bad_inputs(client_export, tmp_path):
    node = _tools()
    path, translator = client_export
    with open(BAD_INPUTS, encoding="utf-8") as f:
        corpus = json.load(f)["cases"]
    chat_dir, chat_config = _chat_copy(path, str(tmp_path / "chat_export"))
    servers = [_Server(node, path), _Server(node, chat_dir)]
    try:
        out = _drive(node, {"chromium": CHROMIUM, "url": servers[0].url, "sentences": SENTENCES,
                            "bad_inputs": corpus, "dialogue": {"url": servers[1].url, "messages": MESSAGES}}, tmp_path)
    finally:
        for server in servers:
            server.close()
    assert out["info"]["ready"], out["info"]
    assert out["info"]["mode"] == "translation" and out["info"]["strategies"] == ["greedy", "beam"], out["info"]
    assert out["page_errors"] == [] and out["console_errors"] == [], (out["page_errors"], out["console_errors"])

    # The shown translation is Python's; with an alignment output (attention) <unk> is replaced as in Python.
    aligned = _has_alignment(path)
    assert aligned, "attention exports' ids graphs return the alignment"
    replace = None  # Python's default: <unk> replaced by the attended source word
    expected = translator.translate(SENTENCES, strategy="greedy", replace_unknown=replace)
    assert any(expected), "the tiny model translates everything to nothing: the comparison would be empty"
    assert [shown["translation"] for shown in out["ui"]] == expected
    for shown in out["ui"]:
        assert shown["status"] == "ready" and len(shown["nbest"]) == 1, shown
        _check_against_python(translator, shown, "greedy", replace, aligned)
    assert out["beam"]["status"] == "ready" and len(out["beam"]["nbest"]) >= 1, out["beam"]
    _check_against_python(translator, out["beam"], "beam", replace, aligned)

    # The conversation: the page's model input is chat.Conversation's context of the history shown.
    assert out["dialogue"]["mode"] == "dialogue"
    history = []
    for message, turn in zip(MESSAGES, out["dialogue"]["turns"]):
        history.append(" ".join(str(message).split()))  # as Conversation.reply
        context = Conversation.context(types.SimpleNamespace(history=history, config=chat_config))
        assert turn["context"] == context
        reply = translator.translate([context], strategy="greedy", replace_unknown=replace)[0]
        assert turn["translation"] == reply
        history.append(reply)
        assert turn["history"] == [u if u else "(empty)" for u in history]

    _check_bad_inputs(out, corpus)


def _check_against_python(translator, shown: dict, strategy: str, replace, aligned: bool) -> None:
    """The page's text, score (3 decimals) and heatmap weights for one text are Python's."""
    python = translator.translate_batch([shown["text"]], strategy=strategy, replace_unknown=replace)
    assert shown["translation"] == python["text"][0, 0], (shown["text"], strategy)
    assert abs(float(shown["nbest"][0]) - float(python["scores"][0, 0])) < 2e-3, (shown, python["scores"])
    if not (aligned and shown["translation"]):
        assert shown["heatmap"] is None, shown
        return
    heatmap = shown["heatmap"]
    source_length = int((python["source_ids"][0] != 0).sum())  # the words read and </s>
    assert len(heatmap["columns"]) == source_length and heatmap["columns"][-1] == "</s>", heatmap["columns"]
    assert len(heatmap["rows"]) == int(python["lengths"][0, 0]), (heatmap["rows"], python["lengths"])
    weights = np.array(heatmap["weights"])
    np.testing.assert_allclose(weights, python["alignment"][0, 0, :len(weights), :source_length], atol=1e-4)


def _check_bad_inputs(out: dict, corpus: list[dict]) -> None:
    """Every case answered (one string per input, no error); written out for the README table when asked."""
    cases = {name: {k: v for k, v in result.items() if k != "texts"} for name, result in out["bad_inputs"].items()}
    report = os.environ.get("TFS2S_BAD_INPUT_REPORT")
    if report:
        with open(report, "w", encoding="utf-8") as f:
            json.dump({"runtime": "browser (onnxruntime-web 1.30.0)", "cases": cases}, f, indent=1)
    assert sorted(cases) == sorted(c["name"] for c in corpus)
    for case in corpus:
        got = out["bad_inputs"][case["name"]]
        assert got["error"] is None and got["answered"] == got["of"] == len(case["batch"]), (case["name"], got)
        assert all(isinstance(t, str) for t in got["texts"]) and len(got["texts"]) == len(case["batch"])
    for name, shown in out["bad_ui"].items():
        assert shown["status"] == "ready", (name, shown["message"])
