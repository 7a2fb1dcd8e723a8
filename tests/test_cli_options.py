"""The command line a user expects: help on every option, --version, decoding options routed to an export's
signatures, files translated in order batch by batch, evaluate on files, no start-up noise."""

import argparse
import json
import os
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest
import sacrebleu
import tensorflow as tf

from tfs2s import cli, commands
from tfs2s.apps.batch import in_batches, read_lines
from tfs2s.apps.exported import ExportedTranslator
from tfs2s.cli import build_parser, startup_noise

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parsers(parser, name="tfs2s"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_every_option_of_every_command_has_help():
    parsers = dict(_parsers(build_parser()))
    assert {"tfs2s translate", "tfs2s evaluate", "tfs2s export", "tfs2s train", "tfs2s chat"} <= set(parsers)
    missing = [f"{name} {action.option_strings or action.dest}" for name, p in parsers.items()
               for action in p._actions
               if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
               and not (action.help or "").strip()]
    assert not missing, missing


def test_version_and_the_export_version_option(run_cli):
    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"tfs2s {metadata.version('tfs2s')}"
    args = build_parser().parse_args(["export", "--run-dir", "r", "--version", "3"])
    assert args.command == "export" and args.version == 3


class _Signature:
    """A stand-in for a SavedModel signature: records its calls, answers like the real one."""

    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def __call__(self, text, **kw):
        values = {k: v.numpy().item() for k, v in kw.items()}
        texts = [t.decode() for t in text.numpy()]
        self.calls.append((self.name, {**values, "batch": len(texts)}))
        tag = f"{self.name}:{values.get('beam_width', values.get('temperature', ''))}"
        n = int(values.get("n_best", 1))
        best = [f"{t.upper()} {tag}" if t else "" for t in texts]
        out = {"text": tf.constant(best, tf.string),
               "scores": tf.constant([[-float(j + 1)] * n for j in range(len(texts))], tf.float32)}
        if self.name == "translate_options":
            out["translations"] = tf.constant([[b] + [f"{b} #{i}" for i in range(1, n)] for b in best], tf.string)
        return out


def _stub_export(calls, decoding=None, names=("translate_greedy", "translate_options", "sample")):
    stub = ExportedTranslator.__new__(ExportedTranslator)
    stub._tf, stub.export_dir, stub.max_beam_width = tf, "saved_models/m/1", 8
    stub.decoding = {"strategy": "beam", "beam_width": 5, "n_best": 1, "length_penalty": 0.6, "temperature": 1.0,
                     "top_k": 0, "no_repeat_ngram_size": 0, "min_length": 1, **(decoding or {})}
    stub.signatures = {name: _Signature(name, calls) for name in names}
    return stub


@pytest.fixture
def export_stub(monkeypatch):
    calls = []
    stub = _stub_export(calls)
    monkeypatch.setattr(commands, "_translator", lambda args: stub)
    return calls


@pytest.mark.parametrize("options, signature, values", [
    ([], "translate_options", {"beam_width": 5, "n_best": 1, "max_length": 0}),
    (["--strategy", "beam", "--beam-width", "3"], "translate_options", {"beam_width": 3, "n_best": 1}),
    (["--strategy", "greedy"], "translate_greedy", {}),
    (["--strategy", "sample", "--temperature", "0.5", "--top-k", "7", "--seed", "11"], "sample",
     {"temperature": 0.5, "top_k": 7, "seed": 11}),
    (["--strategy", "sample"], "sample", {"temperature": 1.0, "top_k": 0, "seed": 0}),
])
def test_export_decoding_options_reach_its_signatures(run_cli, export_stub, options, signature, values):
    code, out, err = run_cli("translate", "--model", "m", "ein hund", *options)
    assert code == 0, err
    name, got = export_stub[-1]
    assert name == signature and values.items() <= got.items()
    assert out.startswith("EIN HUND ")


def test_greedy_on_an_export_without_its_signature_is_a_beam_of_one(run_cli, monkeypatch, caplog):
    calls = []
    stub = _stub_export(calls, names=("translate_options", "sample"))  # an export made before translate_greedy
    monkeypatch.setattr(commands, "_translator", lambda args: stub)
    code, out, err = run_cli("translate", "--model", "m", "ein hund", "--strategy", "greedy")
    assert code == 0, err
    assert calls[-1][0] == "translate_options" and {"beam_width": 1, "n_best": 1}.items() <= calls[-1][1].items()
    assert "no translate_greedy signature" in caplog.text


@pytest.mark.parametrize("options, message", [
    (["--length-penalty", "1.0"], "decoding.length_penalty=0.6 built in"),
    (["--no-repeat-ngram", "3"], "decoding.no_repeat_ngram_size=0 built in"),
    (["--strategy", "greedy", "--beam-width", "3"], "do not apply to greedy"),
    (["--strategy", "sample", "--n-best", "2"], "do not apply to sample"),
    (["--strategy", "beam", "--temperature", "2"], "do not apply to beam"),
    (["--beam-width", "9"], "exported with --max-beam-width 8"),
    (["--beam-width", "2", "--n-best", "3"], "--n-best 3 must be between 1 and the beam width (2)"),
    (["--no-replace-unknown"], "applies to run folders"),
])
def test_options_an_export_cannot_take_are_clear_errors(run_cli, export_stub, options, message):
    code, out, err = run_cli("translate", "--model", "m", "ein hund", *options)
    assert code == 2 and message in err and "Traceback" not in err and not export_stub


def test_json_prints_the_n_best_list_and_scores_of_an_export(run_cli, export_stub):
    code, out, err = run_cli("translate", "--model", "m", "--n-best", "3", "--json", "a b", "")
    assert code == 0, err
    first, second = [json.loads(line) for line in out.splitlines()]
    assert first == {"source": "a b", "translations": ["A B translate_options:5", "A B translate_options:5 #1",
                                                       "A B translate_options:5 #2"], "scores": [-1.0, -1.0, -1.0]}
    assert second["source"] == "" and second["translations"][0] == "" and len(second["scores"]) == 3


def test_input_file_keeps_order_and_empty_lines_batch_by_batch(run_cli, export_stub, tmp_path):
    lines = ["eins", "", "zwei drei", "   ", "vier", "fünf", ""]
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_bytes(("\r\n".join(lines) + "\r\n").encode())  # Windows line ends too
    code, out, err = run_cli("translate", "--model", "m", "--input", str(src), "--output", str(dst),
                          "--batch-size", "3", "--strategy", "greedy")
    assert code == 0 and out == "", err
    got = dst.read_text(encoding="utf-8").split("\n")
    assert got[-1] == "" and len(got) - 1 == len(lines)
    assert got[:-1] == [f"{t.upper()} translate_greedy:" if t else "" for t in lines]
    assert [v["batch"] for _, v in export_stub] == [3, 3, 1]  # one call per batch


def test_each_batch_is_written_before_the_next_is_translated(tmp_path):
    """What is translated is in the file, even when a later batch fails."""
    out_path = tmp_path / "out.txt"

    def translate(batch):
        if "boom" in batch:
            raise RuntimeError("decoder failed")
        return [s.upper() for s in batch]

    seen = []
    with open(out_path, "w", encoding="utf-8") as out, pytest.raises(RuntimeError, match="decoder failed"):
        for lines in in_batches(translate, ["a", "b", "c", "boom"], batch_size=2):
            out.write("".join(line + "\n" for line in lines))
            out.flush()
            seen.append(out_path.read_text())
    assert seen == ["A\nB\n"] and out_path.read_text() == "A\nB\n"


def test_missing_or_undecodable_input_is_a_clear_error(run_cli, export_stub, tmp_path):
    code, _, err = run_cli("translate", "--model", "m", "--input", str(tmp_path / "nope.txt"))
    assert code == 2 and "nope.txt: no such file" in err
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"gut\nschlecht \xff\n")
    code, _, err = run_cli("translate", "--model", "m", "--input", str(bad))
    assert code == 2 and "bad.txt:2: not UTF-8" in err


def test_evaluate_scores_a_file_of_translations_with_sacrebleu(run_cli, write_lines, tmp_path):
    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hypotheses = ["a man rides a bike .", "two dogs play", ""]
    references = ["a man rides a bicycle .", "two dogs are playing", "a woman sings"]
    write_lines(hyp, hypotheses)
    write_lines(ref, references)
    code, out, err = run_cli("evaluate", "--hyp", str(hyp), "--ref", str(ref))
    assert code == 0, err
    result = json.loads(out)
    assert result["sentences"] == 3
    assert result["bleu"] == round(sacrebleu.corpus_bleu(hypotheses, [references]).score, 2)
    assert result["chrf"] == round(sacrebleu.corpus_chrf(hypotheses, [references]).score, 2)


def test_evaluate_files_of_different_lengths_names_both(run_cli, write_lines, tmp_path, export_stub):
    src, ref = tmp_path / "src.txt", tmp_path / "ref.txt"
    write_lines(src, ["eins", "zwei", "drei"])
    write_lines(ref, ["one", "two"])
    code, _, err = run_cli("evaluate", "--model", "m", "--src", str(src), "--ref", str(ref))
    assert code == 2 and f"{src} has 3 lines but {ref} has 2" in err and not export_stub
    code, _, err = run_cli("evaluate", "--src", str(src))
    assert code == 2 and "--src needs --ref" in err


def test_evaluate_an_export_on_files(run_cli, write_lines, tmp_path, export_stub):
    src, ref = tmp_path / "src.txt", tmp_path / "ref.txt"
    write_lines(src, ["eins", "zwei", "drei"])
    write_lines(ref, ["EINS translate_greedy:", "ZWEI translate_greedy:", "three"])
    code, out, err = run_cli("evaluate", "--model", "m", "--src", str(src), "--ref", str(ref),
                          "--strategies", "greedy,beam", "--batch-size", "2")
    assert code == 0, err
    result = json.loads(out)
    hypotheses = {"greedy": ["EINS translate_greedy:", "ZWEI translate_greedy:", "DREI translate_greedy:"],
                  "beam": ["EINS translate_options:5", "ZWEI translate_options:5", "DREI translate_options:5"]}
    for strategy, hyps in hypotheses.items():
        expected = round(sacrebleu.corpus_bleu(hyps, [read_lines(str(ref))]).score, 2)
        assert result[strategy]["bleu"] == expected
    assert result["greedy"]["bleu"] > result["beam"]["bleu"]


def test_startup_noise_filter_keeps_real_errors():
    assert startup_noise("I0000 00:00:1796166871.207279   25535 port.cc:153] oneDNN custom operations are on. "
                         "You may see ...", driver=True)
    cuinit = ("E0000 00:00:1796166888.530399   25903 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA "
              "error: Failed call to cuInit: UNKNOWN ERROR (303)")
    assert startup_noise(cuinit, driver=False) and not startup_noise(cuinit, driver=True)
    assert not startup_noise("E0000 00:00:1.2   7 op_kernel.cc:1] OOM when allocating tensor", driver=False)
    assert not startup_noise("Traceback (most recent call last):", driver=False)


@pytest.mark.skipif(cli.gpu_driver_present(), reason="checks a machine without an NVIDIA driver")
def test_no_cuda_or_onednn_lines_at_startup_on_a_cpu_machine():
    """TensorFlow imported through the CLI's start-up, then a device used: stderr has no start-up noise, and a
    real error written afterwards still shows."""
    script = ("from tfs2s.cli import quiet_startup\nquiet_startup()\nimport tensorflow as tf\n"
              "print(int(tf.reduce_sum(tf.range(4))))\nimport sys\nprint('a real error', file=sys.stderr)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "6", proc.stderr
    assert "cuInit" not in proc.stderr and "oneDNN" not in proc.stderr, proc.stderr
    assert "a real error" in proc.stderr
    noisy = subprocess.run([sys.executable, "-c", "import tensorflow as tf; tf.constant(1)"], capture_output=True,
                           text=True, timeout=300, cwd=ROOT, env=env)
    assert "cuInit" in noisy.stderr or "oneDNN" in noisy.stderr  # what the start-up hides is there without it


def test_exported_translator_batches_in_order():
    calls = []
    stub = _stub_export(calls)
    texts = [f"s{i}" for i in range(5)]
    assert stub.translate(texts, "beam", batch_size=2) == [f"S{i} translate_options:5" for i in range(5)]
    assert len(calls) == 3
    out = stub.translate_batch([], "sample", seed=3)
    assert out["text"].shape[0] == 0 and isinstance(out["text"], np.ndarray)
