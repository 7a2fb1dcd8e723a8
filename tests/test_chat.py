"""Conversation against a stub export whose replies show what it was sent (fast), then the chatbot pipeline end to
end on a few hundred DailyDialog pairs and its export in TF and onnxruntime."""

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
def stub_export(tmp_path_factory):
    """An export whose signatures answer with their inputs: ``<context> beam <width>`` and
    ``<context> t <temperature> k <top_k> seed <seed>``; config: two turns of context joined by ``EOT``."""
    import tensorflow as tf

    from tfs2s.core.config import load_config, save_config

    class Echo(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] + [tf.TensorSpec([], tf.int32)] * 3)
        def translate_options(self, text, beam_width, n_best, max_length):
            return {"text": tf.strings.join(["<", text, "> beam ", tf.strings.as_string(beam_width)])}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.float32),
                                      tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)])
        def sample(self, text, temperature, top_k, seed):
            return {"text": tf.strings.join(["<", text, "> t ", tf.strings.as_string(temperature, precision=1),
                                             " k ", tf.strings.as_string(top_k), " seed ", tf.strings.as_string(seed)])}

    export = str(tmp_path_factory.mktemp("stub") / "1")
    module = Echo()
    tf.saved_model.save(module, export, signatures={"translate_options": module.translate_options,
                                                    "sample": module.sample})
    extra = os.path.join(export, "assets.extra")
    os.makedirs(extra)
    save_config(load_config(None, ["data.context_turns=2", "data.turn_separator=EOT", "decoding.beam_width=4",
                                   "decoding.temperature=0.7", "decoding.top_k=5"]), extra)
    with open(os.path.join(extra, "tfs2s_export.json"), "w", encoding="utf-8") as f:
        json.dump({}, f)
    return export


def test_replies_are_the_signature_answer_to_the_last_turns(stub_export):
    from tfs2s.apps.chat import Conversation

    chat = Conversation(stub_export)
    assert chat.reply("  Hi   there ") == "<Hi there> beam 4"  # whitespace normalised; the export's beam width
    # The context is the last two utterances, the model's own reply included, joined as in training.
    assert chat.reply("How are you ?") == "<<Hi there> beam 4 EOT How are you ?> beam 4"
    assert chat.context() == "How are you ? EOT <<Hi there> beam 4 EOT How are you ?> beam 4"
    assert chat.history == ["Hi there", "<Hi there> beam 4", "How are you ?",
                            "<<Hi there> beam 4 EOT How are you ?> beam 4"]
    chat.reset()
    assert chat.history == [] and chat.context() == ""
    assert chat.reply("") == "<> beam 4"  # an empty message is sent as an empty context
    assert Conversation(stub_export, beam_width=2).reply("x") == "<x> beam 2"


def test_sampled_replies_use_the_next_seed_each_turn(stub_export):
    from tfs2s.apps.chat import Conversation

    chat = Conversation(stub_export, "sample", seed=7)
    assert chat.reply("a") == "<a> t 0.7 k 5 seed 7"
    assert chat.reply("b") == "<<a> t 0.7 k 5 seed 7 EOT b> t 0.7 k 5 seed 8"
    assert Conversation(stub_export, "sample", temperature=1.5, top_k=0).reply("a") == "<a> t 1.5 k 0 seed 0"
    with pytest.raises(ValueError, match="beam or sample"):
        Conversation(stub_export, "greedy")


def test_chat_command_reads_stdin_and_resets(stub_export, monkeypatch):
    from tfs2s.cli import run

    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello\n/reset\nBye\n/quit\nnot read\n"))
    out = io.StringIO()
    with redirect_stdout(out):
        assert run(["chat", "--model", stub_export]) == 0
    assert out.getvalue().splitlines() == ["<Hello> beam 4", "<Bye> beam 4"]  # after /reset "Bye" is alone
    out = io.StringIO()
    with redirect_stdout(out):
        assert run(["chat", "--model", stub_export, "--say", "Hello !", "--say", ""]) == 0
    # An empty message adds no turn to the context: the second source is the first reply alone.
    assert out.getvalue().splitlines() == ["<Hello !> beam 4", "<<Hello !> beam 4> beam 4"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("chatbot")
    run_dir, export_dir = str(root / "run"), str(root / "saved_models")
    # A fresh process, as a user runs it (and faster than inside a test process that has built many models).
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "pipelines", "chatbot.py"), "--run-dir", run_dir,
                           "--export-dir", export_dir, "--data-dir", data_dir,
                           "--eval-limit", "60", "--set", "data.limit=400", "--set", "training.epochs=2",
                           "--set", "training.max_minutes=0", "--set", "model.hidden=32",
                           "--set", "model.embedding_dim=32", "--set", "model.attention_units=16",
                           "--set", "training.bleu_sentences=10", "--set", "data.min_frequency=1"],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(run_dir, "export.json")) as f:
        return {"run_dir": run_dir, "export": json.load(f)["export"], "stdout": proc.stdout}


@pytest.mark.slow  # the pipeline end to end (about 2 minutes); evaluate_dialogue is tested fast in test_dialogue.py
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


@pytest.mark.slow  # the chatbot pipeline's export (about 2 minutes); Conversation is tested fast above
def test_exported_chatbot_answers_its_signature_on_the_joined_context(pipeline):
    import tensorflow as tf

    from tfs2s.apps.chat import Conversation

    chat = Conversation(pipeline["export"])
    signature = tf.saved_model.load(pipeline["export"]).signatures["translate_options"]
    for message in ["Hi , how are you ?"] + ODD:
        before = list(chat.history)
        reply = chat.reply(message)
        # The source is the last two utterances (the model's previous reply and this message), joined by SEP.
        turns = [u for u in (before + [" ".join(message.split())])[-2:] if u]
        out = signature(text=tf.constant([" SEP ".join(turns)]), beam_width=tf.constant(chat.beam_width),
                        n_best=tf.constant(1), max_length=tf.constant(0))
        assert reply == out["text"][0].numpy().decode("utf-8") == chat.history[-1]
    assert len(chat.history) == 2 * (1 + len(ODD))
    chat.history[:] = ["Hello .", "Where is the station ?", "Over there ."]
    assert chat.context() == "Where is the station ? SEP Over there ."  # the last two turns, as in training
    sampled = [Conversation(pipeline["export"], "sample", seed=7).reply("Do you like music ?") for _ in range(2)]
    assert sampled[0] == sampled[1]  # seeded


@pytest.mark.slow  # the chatbot pipeline's export (about 2 minutes); Conversation is tested fast above
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
