import io
import tarfile

import numpy as np
import pytest

from tfs2s.apps.summarization import lead, random_sentence, rouge_scores
from tfs2s.core.decoding.unk import replace_unknown_words
from tfs2s.data import corpora
from tfs2s.data import summarization as S


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_aeslc_reader_and_malformed_member(tmp_path):
    good = tmp_path / "good.tar.gz"
    _tar(good, {"x/a.subject": "Hi Tom,\n\nsee the   memo.\n\n@subject\nMemo\n\n@ann0\nthe memo"})
    assert S.read_aeslc(str(good)) == [("Hi Tom, see the memo.", "Memo")]
    bad = tmp_path / "bad.tar.gz"
    _tar(bad, {"x/b.subject": "no marker here"})
    with pytest.raises(corpora.DataError, match=r"bad\.tar\.gz: member x/b\.subject"):
        S.read_aeslc(str(bad))
    (tmp_path / "broken.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(corpora.DataError, match="broken"):
        S.read_aeslc(str(tmp_path / "broken.tar.gz"))


def test_aeslc_annotations_align_with_the_pairs(tmp_path):
    path = tmp_path / "dev.tar.gz"
    _tar(path, {"x/a.subject": "Body a\n\n@subject\nMemo\n\n@ann0\nthe  memo\n\n@ann1\nmemo today\n\n@ann2\nM",
                "x/b.subject": "\n\n@subject\nEmpty body\n\n@ann0\nx",  # left out by both readers
                "x/c.subject": "Body c\n\n@subject\nNo annotations"})
    assert S.read_aeslc(str(path)) == [("Body a", "Memo"), ("Body c", "No annotations")]
    assert S.read_aeslc_annotations(str(path)) == [["the memo", "memo today", "M"], []]


def test_rouge_against_several_references():
    from tfs2s.apps.summarization import rouge_against_several

    scores = rouge_against_several(["the memo", "budget", "left out"], [["the memo", "a report"], ["plan"], []])
    assert scores["hypotheses"] == 2
    # "the memo": 100 against its first reference, 0 against the second; "budget": 0 against its only one.
    assert scores["best"]["rouge1"] == 50.0 and scores["mean"]["rouge1"] == 25.0
    assert scores["best"]["rougeL"] == 50.0 and scores["mean"]["rouge2"] == 25.0


def test_real_corpora(data_dir):
    validation = corpora.load_pairs("aeslc", "validation", data_dir, "document", "summary")
    assert len(validation) == 1960 and all(d and s for d, s in validation)
    folder = corpora.prepare_corpus("aeslc", ["validation"], data_dir, progress=False)
    annotations = S.read_aeslc_annotations(f"{folder}/summarization/aeslc/aeslc-dev.tar.gz")
    assert len(annotations) == 1960 and all(len(a) == 3 for a in annotations)  # three human subjects per email
    giga = {s: corpora.load_pairs("gigaword_sample", s, data_dir, "document", "summary") for s in ("train", "validation")}
    assert {s: len(p) for s, p in giga.items()} == {"train": 823, "validation": 77}  # 90 / 10 by article hash
    bbc = {s: corpora.load_pairs("bbc_news", s, data_dir, "document", "summary") for s in ("train", "validation", "test")}
    assert {s: len(p) for s, p in bbc.items()} == {"train": 1816, "validation": 101, "test": 85}  # by file
    with pytest.raises(corpora.DataError, match="document"):
        corpora.load_pairs("aeslc", "train", data_dir, "de", "en")


def test_rouge_and_baselines():
    assert rouge_scores(["the cat sat"], ["the cat sat"]) == {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}
    assert rouge_scores(["dogs run"], ["the cat sat"])["rouge1"] == 0.0
    # "the cat" vs "the cat sat": unigram P 1, R 2/3 -> F1 0.8; bigram P 1, R 1/2 -> 2/3. Mean over two pairs.
    half = rouge_scores(["the cat", "dogs run"], ["the cat sat", "the cat sat"])
    assert half == {"rouge1": 40.0, "rouge2": 33.33, "rougeL": 40.0}
    with pytest.raises(ValueError, match="1 hypotheses but 2 references"):
        rouge_scores(["a"], ["a", "b"])
    assert lead(["a b c d e", "x"], 3) == ["a b c", "x"]
    docs = ["First one. Second one! Third?", "Only."]
    picks = random_sentence(docs, seed=1)
    assert picks == random_sentence(docs, seed=1)
    assert picks[0] in ("First one.", "Second one!", "Third?") and picks[1] == "Only."


@pytest.mark.parametrize("reverse", [False, True])
def test_unknown_words_are_copied_from_the_attended_source_word(reverse):
    words = ["meeting", "with", "Skilling", "today"]
    # Output "<unk> meeting": step 0 attends to "Skilling" (encoder position 2, or 1 when reversed).
    alignment = np.zeros((2, 5))
    alignment[0, 1 if reverse else 2] = 0.9
    alignment[1, 2 if reverse else 0] = 0.9
    out = replace_unknown_words(["<unk>", "meeting"], alignment, words, reversed_source=reverse)
    assert out == ["Skilling", "meeting"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, data_dir):
    import json
    import os
    import subprocess
    import sys

    root_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    root = tmp_path_factory.mktemp("summarize")
    run_dir = str(root / "run")
    # A fresh process, as a user runs it (and faster than inside a test process that has built many models).
    proc = subprocess.run([sys.executable, os.path.join(root_dir, "pipelines", "summarize.py"), "--run-dir", run_dir,
                           "--export-dir", str(root / "saved_models"),
                           "--data-dir", data_dir, "--eval-limit", "40", "--set", "data.limit=400",
                           "--set", "training.epochs=2", "--set", "training.max_minutes=0",
                           "--set", "model.hidden=32", "--set", "model.embedding_dim=16",
                           "--set", "model.attention_units=16", "--set", "training.bleu_sentences=10",
                           "--set", "data.min_frequency=2"], capture_output=True, text=True, timeout=900, cwd=root_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(run_dir, "export.json")) as f:
        export = json.load(f)["export"]
    with open(os.path.join(run_dir, "summary_scores.json")) as f:
        return {"export": export, "scores": json.load(f), "run_dir": run_dir}


@pytest.mark.slow  # the pipeline end to end (about 2 minutes); evaluate_summaries is tested fast below
def test_pipeline_scores_model_and_baselines(pipeline, data_dir):
    """The pipeline's figures are those of its summaries and of the baselines on the same 40 emails, recomputed
    here from the trained run and the corpus."""
    from tfs2s import tasks

    scores = pipeline["scores"]
    translator = tasks.load(pipeline["run_dir"], data_dir=data_dir)
    d = translator.config.data
    train = corpora.load_split(d, "train", d.limit)
    pairs = corpora.load_split(d, "validation", 40)
    documents, references = [p[0] for p in pairs], [p[1] for p in pairs]
    lengths = sorted(len(s.split()) for _, s in train)
    assert scores["documents"] == 40 and scores["lead_words"] == lengths[len(lengths) // 2]
    assert scores["model"] == rouge_scores(translator.translate(documents), references)
    assert scores["lead"] == rouge_scores(lead(documents, scores["lead_words"]), references)
    assert scores["random_sentence"] == rouge_scores(random_sentence(documents, 0), references)
    assert set(scores["model_unk_replaced"]) == {"rouge1", "rouge2", "rougeL"}
    assert scores["lead"]["rouge1"] > 0  # subject lines share words with their emails


@pytest.mark.slow  # the summarization pipeline's export (about 2 minutes); text graphs: test_export.py
def test_exported_summarizer_in_tf_and_onnxruntime(pipeline):
    import json
    import os
    import subprocess
    import sys
    import textwrap

    import tensorflow as tf

    documents = ["Please review the attached gas contract before Friday .", "", "   ",
                 " ".join(["meeting"] * 3000), "Reunión mañana 😀 会议"]
    expected = tf.saved_model.load(pipeline["export"]).signatures["translate_text"](text=tf.constant(documents))
    script = textwrap.dedent(f"""
        import json, sys
        from tfs2s.export.onnx.runtime import OnnxTranslator
        print(json.dumps(OnnxTranslator({pipeline["export"]!r}).translate({documents!r})))
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == [t.decode() for t in expected["translation"].numpy()]
    assert got[1] == "" and got[2] == ""


def test_evaluate_summaries_figures_are_those_of_its_parts(tiny_vocab):
    """evaluate_summaries' figures recomputed from the summaries and the baselines (an untrained tiny model)."""
    import keras

    from tfs2s.apps.summarization import evaluate_summaries
    from tfs2s.core.config import load_config
    from tfs2s.core.models import build_models
    from tfs2s.tasks.text.predictor import Translator

    s, t, pairs = tiny_vocab
    cfg = load_config(None, {"model.hidden": 16, "model.embedding_dim": 8, "model.attention_units": 8,
                             "decoding.beam_width": 3})
    keras.utils.set_random_seed(0)
    translator = Translator(build_models(cfg.model, s.vocab_size, t.vocab_size), s, t, cfg)
    documents, references = [d for d, _ in pairs], [r for _, r in pairs]
    got = evaluate_summaries(translator, pairs[:3], pairs, batch_size=2, seed=5)
    assert got["documents"] == 4 and got["lead_words"] == 3  # training summaries of 3, 3 and 4 words
    raw = translator.translate(documents, batch_size=2, replace_unknown=False)  # the default replaces <unk>
    assert got["model"] == rouge_scores(raw, references)
    replaced = translator.translate(documents, batch_size=2, replace_unknown=True)
    assert replaced == translator.translate(documents, batch_size=2)
    assert got["model_unk_replaced"] == rouge_scores(replaced, references)
    assert got["unk_replaced_summaries"] == sum(a != b for a, b in zip(raw, replaced))
    assert got["lead"] == rouge_scores(lead(documents, 3), references)
    assert got["random_sentence"] == rouge_scores(random_sentence(documents, 5), references)
    assert [e["summary"] for e in got["examples"]] == replaced
    assert "annotations" not in got
    # With further references (AESLC's annotated subjects): each system against them, the humans too.
    from tfs2s.apps.summarization import rouge_against_several

    annotations = [[r, "another subject"] for r in references[:3]] + [[]]
    with_annotations = evaluate_summaries(translator, pairs[:3], pairs, batch_size=2, seed=5, annotations=annotations)
    assert with_annotations["annotations"] == {
        "model": rouge_against_several(replaced, annotations),
        "lead": rouge_against_several(lead(documents, 3), annotations),
        "original_subject": rouge_against_several(references, annotations),
        "first_annotator": rouge_against_several([r for r in references[:3]] + [""], [["another subject"]] * 3 + [[]])}
    assert with_annotations["annotations"]["original_subject"]["best"]["rougeL"] == 100.0  # each is its own first
    assert with_annotations["annotations"]["model"]["hypotheses"] == 3  # the pair without annotations is left out
