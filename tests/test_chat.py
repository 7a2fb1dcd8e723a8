"""The chatbot pipeline end to end on a few hundred DailyDialog pairs, then its export in TF and onnxruntime."""

import io
import json
import os
import subprocess
import sys
import textwrap
from contextlib import redirect_stdout

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "pipelines"))
ODD = ["", "   ", " ".join(["hello"] * 5000), "😀 日本語 ✓ ¿Qué tal?"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, data_dir):
    import chatbot

    root = tmp_path_factory.mktemp("chatbot")
    run_dir, export_dir = str(root / "run"), str(root / "saved_models")
    out = io.StringIO()
    with redirect_stdout(out):
        status = chatbot.main(["--run-dir", run_dir, "--export-dir", export_dir, "--data-dir", data_dir,
                               "--eval-limit", "60", "--set", "data.limit=400", "--set", "training.epochs=2",
                               "--set", "training.max_minutes=0", "--set", "model.hidden=32",
                               "--set", "model.embedding_dim=32", "--set", "model.attention_units=16",
                               "--set", "training.bleu_sentences=10", "--set", "data.min_frequency=1"])
    assert status == 0, out.getvalue()[-3000:]
    with open(os.path.join(run_dir, "export.json")) as f:
        return {"run_dir": run_dir, "export": json.load(f)["export"], "stdout": out.getvalue()}


def test_pipeline_scores_against_the_ngram_baseline(pipeline):
    with open(os.path.join(pipeline["run_dir"], "dialogue_scores.json")) as f:
        scores = json.load(f)
    assert scores["responses"] > 0
    assert scores["seq2seq_perplexity"] > 1 and scores["ngram_perplexity"] > 1
    assert scores["perplexity_ratio"] == pytest.approx(scores["seq2seq_perplexity"] / scores["ngram_perplexity"],
                                                       rel=1e-2)
    parts = [scores[k] for k in ("seen_in_training", "unseen_in_training") if k in scores]
    assert sum(p["responses"] for p in parts) == scores["responses"] and parts
    for model in ("ngram", "seq2seq"):
        # The whole is a token-weighted geometric mean of the parts, so it lies between them.
        values = [p[f"{model}_perplexity"] for p in parts]
        assert min(values) - 0.01 <= scores[f"{model}_perplexity"] <= max(values) + 0.01, (model, values)
    for strategy in ("beam", "sample"):
        assert 0 <= scores[strategy]["distinct_1"] <= 1 and 0 <= scores[strategy]["distinct_2"] <= 1
    # The pipeline ended by chatting with the export: one reply line per sample message.
    assert "tfs2s chat --model" in pipeline["stdout"]


def test_exported_chatbot_keeps_context_and_answers_odd_messages(pipeline):
    from tfs2s.apps.chat import Conversation

    chat = Conversation(pipeline["export"])
    for message in ["Hi , how are you ?"] + ODD:
        assert isinstance(chat.reply(message), str)
    assert len(chat.history) == 2 * (1 + len(ODD))
    chat.reset()
    assert chat.history == [] and chat.context() == ""
    chat.history.extend(["Hello .", "Where is the station ?", "Over there ."])
    assert chat.context() == "Where is the station ? SEP Over there ."  # the last two turns, as in training
    sampled = [Conversation(pipeline["export"], "sample", seed=7).reply("Do you like music ?") for _ in range(2)]
    assert sampled[0] == sampled[1]  # seeded


def test_chat_command_one_shot(pipeline):
    from tfs2s.cli import run

    out = io.StringIO()
    with redirect_stdout(out):
        assert run(["chat", "--model", pipeline["export"], "--say", "Hello !", "--say", ""]) == 0
    assert len(out.getvalue().splitlines()) == 2


def test_exported_chatbot_answers_in_onnxruntime(pipeline):
    import tensorflow as tf

    contexts = ["Hi , how are you ?", "fine SEP and you ?"] + ODD
    expected = tf.saved_model.load(pipeline["export"]).signatures["translate_text"](text=tf.constant(contexts))
    script = textwrap.dedent(f"""
        import json, sys
        from tfs2s.export.onnx.runtime import OnnxTranslator
        replies = OnnxTranslator({pipeline["export"]!r}).translate({contexts!r})
        print(json.dumps({{"replies": replies, "tensorflow_imported": "tensorflow" in sys.modules}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["tensorflow_imported"] is False
    assert got["replies"] == [t.decode() for t in expected["translation"].numpy()]
