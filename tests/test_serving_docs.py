"""README's "Export and serving" examples against real exports: models.config, saved_model_cli, REST bodies.

The TF Serving server is not installable here, so the REST bodies are checked with ``tfs2s.export.rest``, which
answers a body from an export's real signatures under TF Serving's JSON rules.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfs2s import tasks
from tfs2s.core.config import load_config
from tfs2s.core.errors import InputError
from tfs2s.data.corpora import default_data_dir
from tfs2s.export import rest
from tfs2s.export.savedmodel import read_metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def _serving_section() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index("## Export and serving")
    return text[start:text.index("\n## ", start + 1)]


def _models_config_block(section: str) -> str:
    blocks = [b for b in re.findall(r"```\n(.*?)```", section, re.S) if "model_config_list" in b]
    assert len(blocks) == 1, "README's serving section should show one models.config"
    return blocks[0]


def _readme_json(text: str):
    """A README body and whether it is elided: ``, ...`` means "more of the same", ``[...]`` "a list of
    something" and ``...`` in a string elided data (an elided request cannot be sent as it is)."""
    elided = "..." in text  # also inside a string: elided b64 data
    return json.loads(re.sub(r"\[\s*\.\.\.\s*\]", "[]", re.sub(r",\s*\.\.\.", "", text))), elided


def readme_rest_examples() -> list[dict]:
    """The curl examples of the serving section: model, version, request body, response body (the ``# `` lines)."""
    examples = []
    pattern = re.compile(r"curl -d '([^']*)' \\\n\s*http://localhost:8501/v1/models/([\w.-]+)(?:/versions/(\d+))?"
                         r":predict\n((?:# [^\n]*\n)+)")
    for body, model, version, answer in pattern.findall(_serving_section()):
        request, elided = _readme_json(body)
        response, _ = _readme_json("".join(line[2:] for line in answer.splitlines()))
        examples.append({"model": model, "version": version, "request": request, "elided": elided,
                         "response": response})
    return examples


def conforms(doc, real) -> bool:
    """Whether README's skeleton ``doc`` has the keys and nesting of the real one (``[]`` matches any list)."""
    if isinstance(doc, dict):
        return isinstance(real, dict) and set(doc) == set(real) and all(conforms(doc[k], real[k]) for k in doc)
    if isinstance(doc, list):
        return isinstance(real, list) and (not doc or not real or conforms(doc[0], real[0]))
    return doc == real


def _check_example(example, export_dir, generated_request):
    """The README's request is the generated one in keys and nesting (or is accepted as is when complete) and its
    response has the keys and nesting of the real answer to it."""
    if example["elided"]:
        assert conforms(rest.skeleton(example["request"]), rest.skeleton(generated_request)), (
            example["request"], generated_request)
        request = generated_request
    else:
        request = example["request"]
    real = rest.predict(export_dir, request)
    assert conforms(rest.skeleton(example["response"]), rest.skeleton(real)), (
        "README's answer differs from the real one", rest.skeleton(example["response"]), rest.skeleton(real))
    return real


# ---------------------------------------------------------------------------------------------- models.config


def test_models_config_parses_and_names_the_export_folders():
    pytest.importorskip("tensorflow_serving", reason="tensorflow-serving-api is not installed (the models.config "
                        "check needs its ModelServerConfig proto: pip install tensorflow-serving-api)")
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    section = _serving_section()
    config = text_format.Parse(_models_config_block(section), model_server_config_pb2.ModelServerConfig())
    models = {c.name: c for c in config.model_config_list.config}
    assert models and all(c.model_platform == "tensorflow" for c in models.values())
    # The server sees saved_models/ at /models, so each base path is the <name> folder tfs2s export writes into.
    mount = re.search(r"-v \$PWD/saved_models:(/\S+) tensorflow/serving --model_config_file=(\S+)", section)
    assert mount, "README's docker command should mount saved_models/"
    assert mount.group(2) == f"{mount.group(1)}/models.config"
    for name, c in models.items():
        assert c.base_path == f"{mount.group(1)}/{name}", c
    # The layout block shows an export of the first model; every REST example asks a configured model.
    assert re.search(rf"^saved_models/{re.escape(next(iter(models)))}/\d+/$", section, re.M)
    examples = readme_rest_examples()
    assert examples and {e["model"] for e in examples} <= set(models)
    # rest.models_config writes the same proto.
    written = text_format.Parse(rest.models_config({n: c.base_path for n, c in models.items()}),
                                model_server_config_pb2.ModelServerConfig())
    assert written == config


def test_readme_examples_parse():
    examples = readme_rest_examples()
    models = {e["model"] for e in examples}
    assert {"multi30k_small", "captcha", "etth1"} <= models
    forms = {("instances" in e["request"], e["model"]) for e in examples}
    assert (True, "multi30k_small") in forms and (False, "multi30k_small") in forms  # row and columnar text
    for e in examples:
        assert set(e["response"]) == {"predictions" if "instances" in e["request"] else "outputs"}


def test_rest_bodies_follow_tf_serving_rules(tmp_path):
    """Row/columnar requests, b64 strings, one-output answers: the json_tensor.cc rules on a toy module."""
    module = tf.Module()
    module.one = tf.function(lambda x: {"y": x * 2.0}, input_signature=[tf.TensorSpec([None, 2], tf.float32, "x")])
    module.two = tf.function(lambda s, k: {"s_bytes": s, "n": tf.strings.length(s) + k},
                             input_signature=[tf.TensorSpec([None], tf.string, "s"), tf.TensorSpec([], tf.int32, "k")])
    path = str(tmp_path / "toy")
    tf.saved_model.save(module, path, signatures={"serving_default": module.one.get_concrete_function(),
                                                  "two": module.two.get_concrete_function()})
    loaded = tf.saved_model.load(path)
    body = rest.row_request({"x": np.array([[0.1, 1.0], [2.0, 3.0]], np.float32)})
    assert body == {"instances": [[0.1, 1.0], [2.0, 3.0]]}
    assert rest.predict(loaded, body) == {"predictions": [[0.2, 2.0], [4.0, 6.0]]}  # one output: bare values
    assert rest.predict(loaded, {"inputs": [[1.0, 2.0]]}) == {"outputs": [[2.0, 4.0]]}
    two = rest.columnar_request({"s": [b"\xff\x00", "ab"], "k": 1}, "two")
    assert two["inputs"]["s"] == [{"b64": "/wA="}, "ab"] and two["signature_name"] == "two"
    assert rest.predict(loaded, two) == {"outputs": {"n": [3, 3], "s_bytes": [{"b64": "/wA="}, {"b64": "YWI="}]}}
    with pytest.raises(InputError, match="share their batch"):
        rest.row_request({"s": ["a"], "k": 1})
    with pytest.raises(InputError, match="plain list"):
        rest.predict(loaded, {"signature_name": "two", "instances": ["a"]})
    with pytest.raises(InputError, match="shape"):
        rest.predict(loaded, {"instances": [[1.0, 2.0, 3.0]]})
    with pytest.raises(InputError, match="exactly one"):
        rest.predict(loaded, {"instances": [[1.0, 2.0]], "inputs": [[1.0, 2.0]]})


# ----------------------------------------------------------------------------------------------- text export


# The export tests are slow: a tiny training and export take 30-70 s here, each saved_model_cli call 10-15 s.


@pytest.fixture(scope="module")
def text_export(tmp_path_factory, tiny_text_config):
    run = str(tmp_path_factory.mktemp("run") / "run")
    cfg = tiny_text_config("multi30k_small", **{"data.limit": 300, "model.embedding_dim": 16,
                                               "model.attention_units": 16, "training.bleu_sentences": 10})
    tasks.train(cfg, run, verbose=0)
    translator = tasks.load(run)
    root = str(tmp_path_factory.mktemp("saved_models"))
    return translator, tasks.export(translator, root, onnx=False)


@pytest.mark.slow
def test_export_folder_is_what_models_config_serves(text_export):
    _, path = text_export
    base = os.path.dirname(path)
    assert os.path.basename(base) == "multi30k_small" and os.path.basename(path).isdigit()
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    assert rest.non_core_ops(path) == [] and read_metadata(path)["requires_tensorflow_text"] is False


def _cli(*args, python=None):
    argv = [python, "-c", "import sys, tensorflow_text; from tensorflow.python.tools.saved_model_cli import main; "
            "sys.exit(main())"] if python else [CLI]
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=300, env=ENV)


def _signature_lines(text: str) -> dict:
    """Output name -> (dtype, shape) from ``saved_model_cli show`` text (README's or the real one)."""
    found = re.findall(r"outputs\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\([-\d, ]*\))", text)
    return {name: (dtype, shape) for name, dtype, shape in found}


@pytest.mark.slow
def test_saved_model_cli_show_and_run(text_export, tmp_path):
    translator, path = text_export
    shown = _cli("show", "--all", "--dir", path)
    assert shown.returncode == 0, shown.stderr[-2000:]
    for name in tf.saved_model.load(path).signatures:
        assert f"signature_def['{name}']" in shown.stdout, name
    default = _cli("show", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default")
    # README's show block lists the real outputs with their dtypes and shapes.
    readme = _serving_section()
    block = readme[readme.index("--signature_def serving_default`:"):]
    block = block[:block.index("Method name is")]
    assert _signature_lines(block) == _signature_lines(default.stdout) != {}
    out = tmp_path / "cli"
    ran = _cli("run", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default",
               "--input_exprs", 'text=["Ein Mann.", "Zwei Hunde spielen."]', "--outdir", str(out))
    assert ran.returncode == 0, ran.stderr[-2000:]
    texts = [t.decode() for t in np.load(out / "text.npy", allow_pickle=True)]
    assert texts == translator.translate(["Ein Mann.", "Zwei Hunde spielen."], strategy="beam")


@pytest.mark.slow
def test_readme_text_bodies_match_the_real_signatures(text_export):
    _, path = text_export
    examples = [e for e in readme_rest_examples() if e["model"] == "multi30k_small"]
    assert examples
    loaded = tf.saved_model.load(path)
    for example in examples:
        name = example["request"].get("signature_name", rest.DEFAULT_SIGNATURE)
        inputs = loaded.signatures[name].structured_input_signature[1]
        # The README's text requests are complete: sent as they are, and the same as the built ones.
        assert not example["elided"]
        values = example["request"].get("inputs") or {"text": example["request"]["instances"]}
        assert set(values) == set(inputs)
        built = (rest.row_request(values, name) if "instances" in example["request"]
                 else rest.columnar_request(values, name))
        assert built == example["request"]
        real = _check_example(example, loaded, built)
        texts = real["outputs"]["text"] if "outputs" in real else [p["text"] for p in real["predictions"]]
        assert len(texts) == len(values["text"])


# ------------------------------------------------------------------------------------ image and series exports


def _train_and_export(tmp_path_factory, config, overrides, data):
    data_dir = default_data_dir()
    if data_dir is None or not os.path.exists(os.path.join(data_dir, data)):
        pytest.skip(f"../shared/data/{data} not found")
    run = str(tmp_path_factory.mktemp("run") / "run")
    cfg = load_config(os.path.join(ROOT, "pipelines", "configs", config), {"data.data_dir": data_dir, **overrides})
    tasks.train(cfg, run, verbose=0)
    predictor = tasks.load(run)
    return predictor, tasks.export(predictor, str(tmp_path_factory.mktemp("saved_models")), onnx=False)


@pytest.mark.slow  # two tiny trainings and exports
def test_readme_image_and_series_bodies_match_the_real_signatures(tmp_path_factory):
    from tfs2s.tasks.image import task as captioning

    captioner, image_path = _train_and_export(tmp_path_factory, "captcha.yaml", {
        "data.limit": 30, "data.validation_fraction": 0.2, "model.hidden": 8, "model.embedding_dim": 8,
        "model.attention_units": 8, "model.conv_filters": 4, "training.epochs": 1}, "captcha-images-v2")
    forecaster, series_path = _train_and_export(tmp_path_factory, "etth1.yaml", {
        "data.lookback": 24, "data.horizon": 12, "data.limit": 500, "model.hidden": 8, "model.embedding_dim": 8,
        "model.attention_units": 8, "training.epochs": 1}, "ett/ETTh1.csv")
    examples = {e["model"]: e for e in readme_rest_examples()}
    assert os.path.basename(os.path.dirname(image_path)) == "captcha"
    assert os.path.basename(os.path.dirname(series_path)) == "etth1"
    png = captioning.load_examples(captioner.config)[0][0]
    image = _check_example(examples["captcha"], image_path, rest.row_request({"image_bytes": [png]}))
    assert image["predictions"][0]["text"] == captioner.caption([png])[0]
    window = np.zeros([1, forecaster.lookback, len(forecaster.columns)], np.float32)
    series = _check_example(examples["etth1"], series_path, rest.row_request({"encoder_values": window}))
    np.testing.assert_allclose(series["predictions"], forecaster.forecast(window).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # a WordPiece training and export (about a minute)
def test_saved_model_cli_needs_tensorflow_text_for_a_wordpiece_export(tmp_path_factory, tiny_text_config, tmp_path):
    run = str(tmp_path_factory.mktemp("run") / "run")
    cfg = tiny_text_config("wordpiece", **{"data.limit": 300, "data.tokenizer": "wordpiece",
                                          "data.source_vocab_size": 200, "data.target_vocab_size": 200,
                                          "model.embedding_dim": 16, "model.attention_units": 16,
                                          "training.bleu_sentences": 10})
    tasks.train(cfg, run, verbose=0)
    translator = tasks.load(run)
    path = tasks.export(translator, str(tmp_path / "saved_models"), onnx=False)
    assert read_metadata(path)["requires_tensorflow_text"] is True
    ops = subprocess.run([sys.executable, "-c", f"from tfs2s.export.rest import non_core_ops; "
                          f"print(non_core_ops({path!r}))"], capture_output=True, text=True, env=ENV, timeout=300)
    assert ops.stdout.strip().splitlines()[-1] == "['WordpieceTokenizeWithOffsets']", ops.stderr[-2000:]
    args = ["run", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default",
            "--input_exprs", 'text=["Ein Mann."]', "--outdir", str(tmp_path / "cli")]
    plain = _cli(*args)
    assert plain.returncode != 0 and "Op type not registered 'WordpieceTokenizeWithOffsets'" in plain.stderr
    with_text = _cli(*args, python=sys.executable)
    assert with_text.returncode == 0, with_text.stderr[-2000:]
    texts = [t.decode() for t in np.load(tmp_path / "cli" / "text.npy", allow_pickle=True)]
    assert texts == translator.translate(["Ein Mann."], strategy="beam")
