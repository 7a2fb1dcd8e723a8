"""Every runtime of an export answers the bad-input corpus (tests/data/bad_inputs.json): one string per input,
no exception, no crash.

The runtimes run in their own processes (``benchmarks/runtimes.py``, shared with ``benchmarks/bad_inputs.py``):
the SavedModel's text signatures in a process that imports only TensorFlow, never tfs2s; Python onnxruntime
through ``OnnxTranslator`` (no TensorFlow in that process) on the text graph and on the ids graphs fed the ids
Python's tokenizer gives; the JS client in Node (``clients/js/test/bad_inputs.test.mjs``). A crash is caught as
the worker's death in the case it was answering. Beyond "answered", cheap sanity checks (``bad_inputs.problems``):
texts with no words give "", a batch of zero gives zero answers, and the mixed batch's first sentence gets the
answer it gets alone.

The runtimes run on the tiny export the ``runtimes`` tests share (``conftest.client_export``: the greedy ids
graph tfs2s writes, the beam ids graph and the text graph tf2onnx converts); ``.ci/run`` runs them after the
default suite (``pytest -m runtimes``). The unit tests of the harness run by default.
"""

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import bad_inputs  # noqa: E402  (benchmarks/bad_inputs.py: the sanity checks and the table)
import runtimes  # noqa: E402  (benchmarks/runtimes.py: the runtimes)

CASES = bad_inputs.with_checks(runtimes.read_corpus())


def _all_answered(report: dict) -> None:
    for runtime, cases in report.items():
        assert set(cases) == {c["name"] for c in CASES}, runtime
        assert bad_inputs.problems(cases) == [], runtime


def test_corpus_items_as_bytes_and_text():
    by_name = {c["name"]: c["batch"] for c in CASES}
    invalid = by_name["invalid_utf8"][0]
    assert isinstance(invalid, dict)
    with pytest.raises(UnicodeDecodeError):
        runtimes.as_bytes(invalid).decode("utf-8")
    assert "\ufffd" in runtimes.as_text(invalid) and runtimes.as_text("Ein Hund") == "Ein Hund"
    assert by_name["batch_of_zero"] == [] and by_name[bad_inputs.ALONE] == by_name["mixed_batch"][:1]


def test_a_crash_is_marked_in_its_case_and_the_rest_still_run(tmp_path):
    """A worker that dies (the echo worker exits in case "die") marks that case; a fresh worker goes on."""
    jobs = [{"runtime": "echo", "case": name, "batch": ["a", "b"]} for name in ("before", "die", "after")]
    results = runtimes.run_worker("echo", str(tmp_path), jobs, str(tmp_path))
    assert results["echo", "before"]["answers"] == ["a", "b"] == results["echo", "after"]["answers"]
    assert results["echo", "die"]["answered"] == 0 and "process died (exit 7)" in results["echo", "die"]["error"]
    assert bad_inputs.problems({"die": results["echo", "die"]})  # counted as unanswered


def test_problems_sees_wrong_answers():
    good = {"answered": 1, "of": 1, "error": None, "answers": [""]}
    assert bad_inputs.problems({"empty": good, "batch_of_zero": {**good, "of": 0, "answered": 0, "answers": []}}) == []
    found = bad_inputs.problems({"empty": {**good, "answers": ["a"]}, "mixed_batch": {**good, "answers": ["x"]},
                                 bad_inputs.ALONE: {**good, "answers": ["y"]}})
    assert len(found) == 2 and found[0].startswith("empty") and found[1].startswith("mixed_batch")


@pytest.mark.runtimes  # about 20 s on the shared client export (conftest.client_export)
def test_savedmodel_in_a_tensorflow_only_process(client_export, tmp_path):
    path, _ = client_export
    report = runtimes.run_runtimes(path, CASES, ["savedmodel serving_default", "savedmodel translate_greedy"],
                                   str(tmp_path))
    _all_answered(report)


@pytest.mark.runtimes  # about 5 s on the shared client export
def test_python_onnxruntime_ids_graph_and_node(client_export, tmp_path):
    """The greedy ids graph in Python onnxruntime (no TensorFlow in its process) and in Node's JS client."""
    path, _ = client_export
    names = ["onnx ids greedy"] + ([] if runtimes.node_missing() else ["node greedy"])
    report = runtimes.run_runtimes(path, CASES, names, str(tmp_path))
    _all_answered(report)
    assert not any(o["tensorflow_imported"] for o in report["onnx ids greedy"].values())
    if runtimes.node_missing():
        pytest.skip(f"Node runtime not run: {runtimes.node_missing()}")


@pytest.mark.runtimes  # three runtimes (about 15 s) on the shared client export
def test_text_graph_and_beam_graphs(client_export, tmp_path):
    names = ["onnx text", "onnx ids beam"] + ([] if runtimes.node_missing() else ["node beam"])
    report = runtimes.run_runtimes(client_export[0], CASES, names, str(tmp_path))
    _all_answered(report)


def test_browser_report_becomes_a_column(tmp_path):
    browser = {"runtime": "browser (onnxruntime-web)",
               "cases": {"empty": {"answered": 1, "of": 1, "error": None}}}
    path = tmp_path / "browser.json"
    path.write_text(json.dumps(browser), encoding="utf-8")
    report = bad_inputs.add_browser_report({"node greedy": {}}, str(path))
    assert list(report) == ["node greedy", "browser (onnxruntime-web)"]
    assert report["browser (onnxruntime-web)"]["empty"] == {"answered": 1, "of": 1, "error": None, "answers": None}
    assert "| empty | not run | 1/1 |" in bad_inputs.table(report, ["empty"])
