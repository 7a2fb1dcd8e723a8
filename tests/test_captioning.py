"""Image to sequence: the run, the Captioner, metrics, and the export (SavedModel + ONNX) with bad input."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfs2s import tasks
from tfs2s.core.config import ConfigError, load_config
from tfs2s.core.errors import ExportError
from tfs2s.data import images
from tfs2s.data.corpora import default_data_dir
from tfs2s.export.savedmodel import verify_export
from tfs2s.tasks.image import predictor
from tfs2s.tasks.image import task as captioning

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_edit_distance_and_scores():
    assert predictor.edit_distance("kitten", "sitting") == 3
    assert predictor.edit_distance("", "abc") == 3
    scores = predictor.caption_scores(["2b827", "2b82", "xxxxx"], ["2b827", "2b827", "3b827"])
    assert scores["exact_accuracy"] == pytest.approx(100 / 3, abs=0.01)
    assert scores["character_error_rate"] == pytest.approx(100 * (0 + 1 + 5) / 15, abs=0.01)
    with pytest.raises(ValueError):
        predictor.caption_scores(["a"], [])


def test_image_run_needs_image_config(tmp_path):
    cfg = load_config(None, {"data.corpus": "captcha"})  # input_encoder stays "tokens"
    with pytest.raises(ConfigError, match="input_encoder=image"):
        captioning.ImageTask().check_config(cfg)
    with pytest.raises(ConfigError, match="image_height"):
        load_config(None, {"model.input_encoder": "image", "data.image_height": 4})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = default_data_dir()
    if data is None or not os.path.isdir(os.path.join(data, "captcha-images-v2")):
        pytest.skip("../shared/data/captcha-images-v2 not found")
    path = str(tmp_path_factory.mktemp("caption") / "run")
    cfg = load_config(os.path.join(ROOT, "pipelines", "configs", "captcha.yaml"), {
        "data.data_dir": data, "data.limit": 60, "data.validation_fraction": 0.2, "model.hidden": 16,
        "model.embedding_dim": 8, "model.attention_units": 8, "model.conv_filters": 4, "training.epochs": 2,
        "decoding.beam_width": 3})
    summary = tasks.train(cfg, path, verbose=0)
    return path, summary, cfg


def test_run_summary_and_resume(run, tmp_path):
    path, summary, cfg = run
    assert summary["train_images"] == 48 and summary["validation_images"] == 12
    for strategy in ("greedy", "beam"):
        scores = summary["validation"][strategy]
        assert scores["examples"] == 12 and 0 <= scores["character_error_rate"]
    assert os.path.exists(os.path.join(path, "target_vocab.txt"))
    # A finished run is not retrained: the same summary comes back.
    assert tasks.train(cfg, path, verbose=0) == summary
    # With extend, a copy of it trains one more epoch from its last checkpoint.
    copy = str(tmp_path / "run")
    shutil.copytree(path, copy)
    longer = cfg.replace(**{"training.epochs": 3})
    extended = tasks.train(longer, copy, verbose=0, extend=True)
    assert summary["epochs_run"] == 2 and extended["epochs_run"] == 3
    assert os.path.exists(os.path.join(copy, "summary.previous.json"))


def test_captioner_checks_images(run):
    captioner = tasks.load(run[0])
    good = captioning.load_examples(run[2])[0][0]
    small = tf.io.encode_png(tf.zeros([10, 20, 1], tf.uint8)).numpy()
    texts, details = captioner.caption([good], return_alignment=True)
    # 200 px / 2^2 pooling = 50 columns; min_length 1: never an empty reading.
    assert isinstance(texts[0], str) and details[0]["alignment"].shape == (len(details[0]["tokens"]), 50)
    assert len(details[0]["tokens"]) >= 1
    # An image of another size is resized as in training: its caption is that of its resized pixels.
    texts = captioner.caption([good, small])
    resized = images.decode_images(tf.constant([small]), 50, 200, 1)
    expected = captioner.caption_tensor(resized, captioner.options())["text"][:, 0].numpy()[0].decode()
    assert texts[1] == expected and texts[0] == captioner.caption([good])[0]
    with pytest.raises(images.ImageDataError, match="image 0"):
        captioner.caption([b"not a png"])
    assert captioner.caption([]) == []


@pytest.fixture(scope="module")
def export(run, tmp_path_factory):
    captioner = tasks.load(run[0])
    root = str(tmp_path_factory.mktemp("exports"))
    path = tasks.export(captioner, root, "captcha", onnx=True)
    return captioner, root, path


def test_export_layout_and_parity(export, run, tmp_path):
    captioner, root, path = export
    assert path == os.path.join(root, "captcha", "1")
    assert sorted(os.listdir(os.path.join(path, "onnx"))) == ["caption_image_beam.onnx", "caption_image_greedy.onnx"]
    with pytest.raises(ExportError, match="already exists"):
        tasks.export(captioner, root, "captcha", version=1)
    examples = captioning.load_examples(run[2])[:6]
    pixels = images.decode_images(tf.constant([e[0] for e in examples]), 50, 200, 1).numpy()
    # Relocated: the export answers from a new place, the training folder out of the way.
    moved = str(tmp_path / "moved")
    shutil.copytree(path, moved)
    report = verify_export(moved, captioning.ImageTask().export_checks(captioner, pixels))
    assert set(report) == {"caption_image_greedy", "caption_image_beam"}
    loaded = tf.saved_model.load(moved)
    served = loaded.signatures["serving_default"](image_bytes=tf.constant([e[0] for e in examples]))
    direct = captioner.caption([e[0] for e in examples])
    assert [t.decode() for t in served["text"].numpy()] == direct
    assert served["alignment"].shape[-1] == 50
    # onnxruntime, in a process without TensorFlow, gives the same ids as the SavedModel.
    np.save(tmp_path / "pixels.npy", pixels)
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from tfs2s.export.onnx.runtime import OnnxCaptioner
        c = OnnxCaptioner({moved!r})
        pixels = np.load({str(tmp_path / "pixels.npy")!r})
        out = {{s: c.caption_ids(pixels, s)["tokens"].tolist() for s in ("greedy", "beam")}}
        out["texts"] = c.caption(pixels, "beam")
        out["empty"] = list(c.caption_ids(np.zeros((0, 50, 200, 1), np.float32))["tokens"].shape)
        try:
            c.caption(np.zeros((1, 50, 100, 1), np.float32))
        except ValueError as err:
            out["error"] = str(err)
        out["tensorflow_imported"] = "tensorflow" in sys.modules
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["tensorflow_imported"] is False
    for strategy in ("greedy", "beam"):
        expected = loaded.signatures[f"caption_image_{strategy}"](encoder_image=tf.constant(pixels))["tokens"]
        assert np.array_equal(np.array(got[strategy]), expected.numpy())
    assert got["texts"] == [t.decode() for t in served["captions"][:, 0].numpy()]
    assert got["empty"][0] == 0
    assert "encoder_image" in got["error"] and "200" in got["error"]


def test_export_bad_input(export):
    _, _, path = export
    serve = tf.saved_model.load(path).signatures["serving_default"]
    empty = serve(image_bytes=tf.constant([], tf.string))
    assert empty["text"].shape == (0,)
    loaded = tf.saved_model.load(path)
    for strategy in ("greedy", "beam"):
        out = loaded.signatures[f"caption_image_{strategy}"](encoder_image=tf.zeros([0, 50, 200, 1]))
        assert out["tokens"].shape[0] == 0 and out["scores"].shape[0] == 0
    other_size = tf.io.encode_png(tf.zeros([50, 100, 1], tf.uint8)).numpy()  # resized in the graph
    served = serve(image_bytes=tf.constant([other_size]))["text"].numpy()
    assert [t.decode() for t in served] == export[0].caption([other_size])
    with pytest.raises(tf.errors.InvalidArgumentError):
        serve(image_bytes=tf.constant([b"\x89PNG garbage"]))
    metadata = json.load(open(os.path.join(path, "assets.extra", "tfs2s_export.json")))
    assert metadata["image_shape"] == [50, 200, 1] and metadata["task"] == "image_to_sequence"


def test_export_loads_in_plain_tensorflow(export, run, tmp_path):
    """TF Serving has no tfs2s code: the export reads image bytes in a process that imports only TensorFlow."""
    captioner, _, path = export
    examples = captioning.load_examples(run[2])[:3]
    expected = captioner.caption([e[0] for e in examples])
    for i, (data, _) in enumerate(examples):
        (tmp_path / f"{i}.png").write_bytes(data)
    script = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        m = tf.saved_model.load({path!r})
        images = [open({str(tmp_path)!r} + f"/{{i}}.png", "rb").read() for i in range(3)]
        out = m.signatures["serving_default"](image_bytes=tf.constant(images))
        print(json.dumps({{"text": [t.decode() for t in out["text"].numpy()], "tfs2s": "tfs2s" in sys.modules}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=str(tmp_path), env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {"text": expected, "tfs2s": False}


def _labelled_png(text: str, height: int, width: int, seed: int) -> bytes:
    """A gray PNG whose stripes depend on the text (so a model has something to read)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 40, (height, width, 1))
    for i, ch in enumerate(text):
        column = (i * width) // len(text)
        pixels[:, column:column + max(1, width // (2 * len(text)))] += 4 * (ord(ch) % 50)
    return tf.io.encode_png(np.clip(pixels, 0, 255).astype(np.uint8)).numpy()


def _files_corpus(tmp_path, monkeypatch):
    """A captions CSV over 14 images of three sizes, none the configured 48x16, and its config."""
    monkeypatch.setenv("TFS2S_DATA_DIR", str(tmp_path / "empty"))
    folder = tmp_path / "pictures"
    folder.mkdir()
    lines = ["image,text"]
    for i in range(14):
        text = ["ab", "ba", "abc", "cab"][i % 4]
        (folder / f"{i}.png").write_bytes(_labelled_png(text, *OTHER_SIZES[i % 3], seed=i))
        lines.append(f"{i}.png,{text}")
    (tmp_path / "captions.csv").write_text("\n".join(lines) + "\n")
    return load_config(None, {
        "data.corpus": "files", "data.train": [str(tmp_path / "captions.csv")], "data.image_dir": str(folder),
        "data.tokenizer": "char", "data.min_frequency": 1, "data.image_height": 16, "data.image_width": 48,
        "data.validation_fraction": 0.2, "data.test_fraction": 0.15, "data.batch_size": 4,
        "data.max_target_length": 6, "model.input_encoder": "image", "model.conv_blocks": 1,
        "model.conv_filters": 4, "model.hidden": 8, "model.embedding_dim": 8, "model.attention_units": 8,
        "training.epochs": 1, "decoding.beam_width": 2})


OTHER_SIZES = [(20, 60), (32, 40), (12, 100)]


def test_files_corpus_splits_and_resized_batches(tmp_path, monkeypatch):
    cfg = _files_corpus(tmp_path, monkeypatch)
    captioning.ImageTask().check_config(cfg)
    splits = captioning.load_splits(cfg)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [9, 3, 2]
    assert {images.check_image(e[0]) for e in splits["train"]} <= set(OTHER_SIZES)
    # The training batches hold the images at the configured size, resized as decode_images resizes.
    job = captioning.ImageJob(cfg, str(tmp_path / "job"))
    assert job.test_examples == splits["test"]
    features = next(iter(job.validation))[0]
    np.testing.assert_array_equal(features["encoder_image"],
                                  images.decode_images(tf.constant([e[0] for e in job.val_examples]), 16, 48, 1))
    # Bad files name the CSV line; a split is one CSV.
    (tmp_path / "captions.csv").write_text("image,text\n0.png,ab\n99.png,ab\n")
    with pytest.raises(images.ImageDataError, match=r"captions\.csv line 3: image 99\.png is not in"):
        captioning.load_splits(cfg)
    with pytest.raises(ConfigError, match="one captions CSV"):
        captioning.ImageTask().check_config(cfg.replace(**{"data.validation": (str(tmp_path / "a"), "b")}))


@pytest.mark.slow  # 66 s here (the run's summary traces greedy and beam captioning twice)
def test_files_corpus_with_images_of_other_sizes(tmp_path, monkeypatch):
    """data.corpus=files: a captions CSV and images of several sizes, none the configured one, train, caption
    and serve alike (the ``image_bytes`` serving signature resizes in its graph as training did)."""
    cfg = _files_corpus(tmp_path, monkeypatch)
    splits = captioning.load_splits(cfg)
    run = str(tmp_path / "run")
    summary = tasks.train(cfg, run, verbose=0)
    assert (summary["train_images"], summary["validation_images"], summary["test_images"]) == (9, 3, 2)
    assert summary["test"]["beam"]["examples"] == 2
    captioner = tasks.load(run)
    encoded = [e[0] for e in splits["test"] + splits["validation"]]
    # The serving module's image_bytes signature (the graph the export saves; saving it is tested above).
    served = captioning.ImageTask().serving_module(captioner).serve(tf.constant(encoded))
    assert [t.decode() for t in served["text"].numpy()] == captioner.caption(encoded)
    assert served["alignment"].shape[-1] == 48 // 2


def test_evaluate_command_on_an_image_run(run, capsys):
    """``tfs2s evaluate`` on an image run gives the run's own validation scores; a split it lacks is one line."""
    from tfs2s.cli import main

    path, summary, _ = run
    with pytest.raises(SystemExit) as done:
        main(["evaluate", "--run-dir", path, "--split", "validation", "--strategies", "greedy,beam"])
    out = capsys.readouterr()
    assert done.value.code == 0, out.err[-2000:]
    report = json.loads(out.out)
    assert report["examples"] == 12
    for strategy in ("greedy", "beam"):
        assert report[strategy]["exact_accuracy"] == summary["validation"][strategy]["exact_accuracy"]
        assert report[strategy]["character_error_rate"] == summary["validation"][strategy]["character_error_rate"]
    with pytest.raises(SystemExit) as done:
        main(["evaluate", "--run-dir", path, "--split", "test"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "has no test images" in err and "Traceback" not in err
