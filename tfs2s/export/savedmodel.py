"""Export: SavedModel for TF Serving (the source of truth) and ONNX graphs converted from it.

Layout (what TF Serving watches: numeric version folders)::

    saved_models/<name>/<version>/
      saved_model.pb, variables/, fingerprint.pb
      assets/source_vocab.txt, assets/target_vocab.txt   vocabularies (SavedModel assets)
      assets.extra/config.json                           the run's Config
      assets.extra/tfs2s_export.json                     export metadata (signatures, ops needed, versions)
      onnx/*.onnx                                        ONNX graphs (optional; TF Serving ignores this folder)

A version is written into a temporary folder beside its final place and renamed when complete, so a server
polling the model folder never sees half a model.

Signatures (all take batches; a batch of zero gives empty outputs):

* ``serving_default``: ``text [B]`` -> ``text [B]`` best translation, ``translations [B, N]``,
  ``tokens [B, N, L]``, ``length [B, N]``, ``scores [B, N]`` (and ``alignment [B, N, L, S]`` with attention),
  decoded with the exported decoding config (beam search by default);
* ``translate_options``: the same plus per-request ``beam_width`` (clipped to ``[1, max_beam_width]``),
  ``n_best`` (clipped to ``beam_width``) and ``max_length`` (``<= 0``: ratio of the source length);
* ``translate_ids``: ``encoder_token_ids [B, S]`` -> ``tokens``, ``length``, ``scores`` for clients that
  tokenize themselves; ``translate_ids_greedy`` likewise with greedy search;
* ``translate_text``: ``text [B]`` -> ``translation [B]``, ``score [B]``, beam search (the graph converted to
  text-in/text-out ONNX; it expects valid UTF-8, already lowercased when the model lowercases, as recorded in
  the metadata's ``text_graph_input``: onnxruntime's lowercasing op needs a locale many systems lack);
* ``sample``: ``text [B]``, ``temperature`` (float), ``top_k`` (0: whole vocabulary), ``seed`` -> ``text``,
  ``tokens``, ``length``, ``scores``: sampled replies (conversational models), seeded and repeatable;
* ``encode`` and ``decode_step``: the model split for runtimes that drive their own decoding loop;
* ``logits``: ``encoder_token_ids``, ``decoder_token_ids`` -> teacher-forced ``logits [B, T, V]``.
* ``decode_encoded`` / ``decode_encoded_greedy``: the encoder outputs (as ``decode_step`` takes them) ->
  ``tokens``, ``length``, ``scores``; the ONNX ids graphs are these joined to ``tfs2s.onnx_encoder``'s encoder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import uuid
from typing import Callable

import tensorflow as tf

from tfs2s.core import text_data as data
from tfs2s.core import decoding
from tfs2s.core import features as F
from tfs2s.core.config import Config
from tfs2s.tasks.text.predictor import Translator
from tfs2s.core.errors import ExportError  # noqa: F401  (raised here; importable from here)

logger = logging.getLogger(__name__)

EXPORT_FORMAT = 1
METADATA_FILE = "tfs2s_export.json"
ONNX_OPSET = 17


class ServingModule(tf.Module):
    """The ``tf.Module`` saved as the SavedModel: tokenizers, encoder, decoder and decoding signatures.

    Args:
        translator: A translator over the trained models.
        max_beam_width: Largest beam width a request may ask for.
    """

    def __init__(self, translator: Translator, max_beam_width: int = 16):
        super().__init__(name="tfs2s_serving")
        self.translator = translator
        self.max_beam_width = max_beam_width
        models = translator.models
        # Track the backing tf.Variables (as keras.export.ExportArchive does), so the SavedModel holds them.
        self.model_variables = [w.value for w in models.teacher_forced.weights]
        self.state_names = list(models.state_names)
        self.has_attention = translator.config.model.attention != "none"
        d = translator.config.decoding
        self._beam = dict(beam_width=d.beam_width, length_penalty_alpha=d.length_penalty, n_best=d.n_best,
                          no_repeat_ngram_size=d.no_repeat_ngram_size, min_length=d.min_length)
        text = tf.TensorSpec([None], tf.string, name=F.SOURCE_TEXT)
        ids = tf.TensorSpec([None, None], tf.int32, name=F.ENCODER_TOKEN_IDS)
        scalar = lambda name: tf.TensorSpec([], tf.int32, name=name)  # noqa: E731
        self.serve = tf.function(self._serve, input_signature=[text])
        self.translate_options = tf.function(
            self._translate_options, input_signature=[text, scalar("beam_width"), scalar("n_best"), scalar("max_length")])
        self.translate_ids = tf.function(self._translate_ids, input_signature=[ids])
        self.sample = tf.function(self._sample, input_signature=[
            text, tf.TensorSpec([], tf.float32, name="temperature"), scalar("top_k"), scalar("seed")])
        self.translate_ids_greedy = tf.function(self._translate_ids_greedy, input_signature=[ids])
        self.translate_text = tf.function(self._translate_text, input_signature=[text])
        self.encode = tf.function(self._encode, input_signature=[ids])
        self.logits = tf.function(self._logits, input_signature=[
            ids, tf.TensorSpec([None, None], tf.int32, name=F.DECODER_TOKEN_IDS)])
        encoder_spec = models.encoder.output
        step_specs = [tf.TensorSpec([None], tf.int32, name=F.DECODER_TOKEN_IDS)]
        self._step_keys = [k for k in sorted(encoder_spec) if k != "mask"] + ["mask"]
        for key in self._step_keys:
            shape = list(encoder_spec[key].shape)
            dtype = tf.bool if key == "mask" else tf.float32
            step_specs.append(tf.TensorSpec([None] + shape[1:], dtype, name=key))
        self.decode_step = tf.function(self._decode_step, input_signature=step_specs)
        # Decoding from the encoder's outputs: the ONNX export joins these to an encoder written with ONNX's
        # recurrent operators (tfs2s.onnx_encoder), far faster than the converted Keras recurrences.
        self.decode_encoded = tf.function(lambda *s: self._decode_encoded(s, "beam"), input_signature=step_specs[1:])
        self.decode_encoded_greedy = tf.function(lambda *s: self._decode_encoded(s, "greedy"),
                                                 input_signature=step_specs[1:])

    def _outputs(self, result: dict) -> dict:
        out = {"text": result["text"][:, 0], "translations": result["text"], "tokens": result["tokens"],
               "length": result["lengths"], "scores": result["scores"]}
        if self.has_attention:
            out["alignment"] = result["alignment"]
        return out

    def _serve(self, text):
        return self._outputs(self.translator.translate_tensor(text, "beam", **self._beam))

    def _translate_options(self, text, beam_width, n_best, max_length):
        width = tf.clip_by_value(beam_width, 1, self.max_beam_width)
        n = tf.clip_by_value(n_best, 1, width)
        tr = self.translator
        source_ids = tr.encode(text)
        limit = tf.where(max_length > 0, max_length, tr.max_length(source_ids))
        from tfs2s.core import decoding

        state = tr.models.initial_state(source_ids)
        result = decoding.decode(tr.models.step, state, limit, "beam", beam_width=width, n_best=n,
                                 length_penalty_alpha=self._beam["length_penalty_alpha"],
                                 no_repeat_ngram_size=self._beam["no_repeat_ngram_size"],
                                 min_length=self._beam["min_length"])
        result = tr.finish(result, source_ids)
        return self._outputs(result)

    def _sample(self, text, temperature, top_k, seed):
        temperature = tf.maximum(temperature, 1e-3)  # 0 would divide by zero; tiny means nearly greedy
        result = self.translator.translate_tensor(text, "sample", alignment=False, temperature=temperature,
                                                  top_k=tf.maximum(top_k, 0), seed=seed,
                                                  no_repeat_ngram_size=self._beam["no_repeat_ngram_size"],
                                                  min_length=self._beam["min_length"])
        return {"text": result["text"][:, 0], "tokens": result["tokens"], "length": result["lengths"],
                "scores": result["scores"]}

    def _translate_ids(self, ids):
        result = self.translator.decode_ids(ids, "beam", alignment=False, **self._beam)
        return {"tokens": result["tokens"], "length": result["lengths"], "scores": result["scores"]}

    def _translate_ids_greedy(self, ids):
        result = self.translator.decode_ids(ids, "greedy", alignment=False,
                                            no_repeat_ngram_size=self._beam["no_repeat_ngram_size"],
                                            min_length=self._beam["min_length"])
        return {"tokens": result["tokens"], "length": result["lengths"], "scores": result["scores"]}

    def _decode_encoded(self, state_values, strategy: str):
        state = dict(zip(self._step_keys, state_values))
        lengths = tf.reduce_sum(tf.cast(state["mask"], tf.int32), axis=1)
        options = self._beam if strategy == "beam" else {k: self._beam[k] for k in ("no_repeat_ngram_size",
                                                                                      "min_length")}
        result = decoding.decode(self.translator.models.step, state, self.translator.length_limits(lengths),
                                 strategy, **options)
        return {"tokens": result["tokens"], "length": result["lengths"], "scores": result["scores"]}

    def _translate_text(self, text):
        # Converted to ONNX, which has no UTF-8 repair op and a locale-dependent lowercasing op: tfs2s.onnx_runtime
        # repairs and lowercases the input on the host.
        result = self.translator.translate_tensor(text, "beam", portable=True, alignment=False,
                                                  **self._beam)
        return {"translation": result["text"][:, 0], "score": result["scores"][:, 0]}

    def _logits(self, ids, decoder_ids):
        inputs = {F.ENCODER_TOKEN_IDS: data.at_least_one_column(ids), F.DECODER_TOKEN_IDS: decoder_ids}
        return {"logits": self.translator.models.teacher_forced(inputs, training=False)}

    def _encode(self, ids):
        return dict(self.translator.models.encoder(data.at_least_one_column(ids), training=False))

    def _decode_step(self, ids, *state_values):
        state = dict(zip(self._step_keys, state_values))
        if self.has_attention:
            state["alignment"] = tf.zeros_like(tf.cast(state["mask"], tf.float32))
        logits, new_state = self.translator.models.step(ids, state)
        out = {"logits": logits}
        out.update({f"next_{name}": new_state[name] for name in self.state_names})
        if self.has_attention:
            out["alignment"] = new_state["alignment"]
        return out

    def signatures(self) -> dict:
        """Concrete functions by signature name."""
        return {"serving_default": self.serve.get_concrete_function(),
                "translate_options": self.translate_options.get_concrete_function(),
                "translate_ids": self.translate_ids.get_concrete_function(),
                "sample": self.sample.get_concrete_function(),
                "translate_ids_greedy": self.translate_ids_greedy.get_concrete_function(),
                "translate_text": self.translate_text.get_concrete_function(),
                "encode": self.encode.get_concrete_function(),
                "logits": self.logits.get_concrete_function(),
                "decode_step": self.decode_step.get_concrete_function(),
                "decode_encoded": self.decode_encoded.get_concrete_function(),
                "decode_encoded_greedy": self.decode_encoded_greedy.get_concrete_function()}


def next_version(model_dir: str) -> int:
    """One more than the largest numeric version folder in ``model_dir`` (1 when there is none)."""
    if not os.path.isdir(model_dir):
        return 1
    versions = [int(n) for n in os.listdir(model_dir) if n.isdigit()]
    return max(versions, default=0) + 1


def export_saved_model(translator: Translator, export_root: str, name: str, version: int | None = None,
                       overwrite: bool = False, onnx: bool = False, max_beam_width: int = 16) -> str:
    """Writes ``export_root/name/version`` atomically and returns its path.

    Args:
        translator: The translator to export (trained models and tokenizers).
        export_root: Folder holding exported models (``saved_models``).
        name: Model name (a folder name).
        version: Version number; ``None`` takes the next free one.
        overwrite: Replace an existing version folder.
        onnx: Also convert the ONNX graphs into ``<version>/onnx/``.
        max_beam_width: Largest beam width ``translate_options`` accepts.

    Raises:
        ExportError: The version exists and ``overwrite`` is False, or the name/version is invalid.
    """
    def write(tmp: str) -> None:
        module = ServingModule(translator, max_beam_width)
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        _write_extra(tmp, translator.config, translator, module)
        if onnx:
            export_onnx(tmp, os.path.join(tmp, "onnx"), translator.source_tokenizer.kind,
                        onnx_graphs(translator.source_tokenizer.kind), models=translator.models,
                        decoding=translator.config.decoding)

    return write_version(export_root, name, version, overwrite, write)


def save_module(export_dir: str, module: tf.Module, cfg: Config, metadata: dict) -> None:
    """Saves ``module`` with its ``signatures()``, the run's ``config.json`` and the export metadata (plus format,
    TensorFlow/Keras versions and signature names) into ``export_dir/assets.extra/``."""
    import keras

    tf.saved_model.save(module, export_dir, signatures=module.signatures())
    extra = os.path.join(export_dir, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, "config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg.to_dict(), f, indent=2, sort_keys=True)
    metadata = {"format": EXPORT_FORMAT, "tensorflow": tf.__version__, "keras": keras.__version__,
                "signatures": sorted(module.signatures()), **metadata}
    with open(os.path.join(extra, METADATA_FILE), "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2)


def write_version(export_root: str, name: str, version: int | None, overwrite: bool,
                  write: Callable[[str], None]) -> str:
    """Creates ``export_root/name/version`` atomically: ``write(folder)`` fills a temporary folder, renamed when done.

    Args:
        export_root: Folder holding exported models.
        name: Model name (a folder name).
        version: Version number; ``None`` takes the next free one.
        overwrite: Replace an existing version folder.
        write: Writes the export into the folder it is given.

    Raises:
        ExportError: The version exists and ``overwrite`` is False, or the name/version is invalid.
    """
    if not name or os.sep in name or name.startswith("."):
        raise ExportError(f"invalid model name {name!r}")
    model_dir = os.path.join(export_root, name)
    version = next_version(model_dir) if version is None else version
    if not isinstance(version, int) or version < 1:
        raise ExportError(f"version must be a positive integer, got {version!r}")
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final) and not overwrite:
        raise ExportError(f"{final} already exists; pass --overwrite to replace it or choose another --version")
    os.makedirs(model_dir, exist_ok=True)
    # A dot-prefixed, non-numeric temporary folder: TF Serving ignores it while it is being written.
    tmp = os.path.join(model_dir, f".tmp-{version}-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        if os.path.exists(final):
            old = os.path.join(model_dir, f".old-{version}-{uuid.uuid4().hex[:8]}")
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("exported %s", final)
    return final


def _write_extra(export_dir: str, cfg: Config, translator: Translator, module: ServingModule) -> None:
    import keras

    extra = os.path.join(export_dir, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, "config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg.to_dict(), f, indent=2, sort_keys=True)
    needs_text_ops = translator.source_tokenizer.kind == "wordpiece" or translator.target_tokenizer.kind == "wordpiece"
    metadata = {
        "format": EXPORT_FORMAT,
        "tokenizer": translator.source_tokenizer.kind,
        "requires_tensorflow_text": needs_text_ops,
        "note": ("needs TensorFlow Text ops: load after `import tensorflow_text`; TF Serving builds link them"
                 if needs_text_ops else "core TensorFlow ops only: loads in plain TensorFlow and stock TF Serving"),
        "tensorflow": tf.__version__, "keras": keras.__version__,
        "signatures": sorted(module.signatures()), "max_beam_width": module.max_beam_width,
        "state_names": module.state_names, "step_inputs": [F.DECODER_TOKEN_IDS] + module._step_keys,
        "special_ids": {"pad": F.PAD_ID, "unk": F.UNK_ID, "bos": F.BOS_ID, "eos": F.EOS_ID},
        "max_source_length": cfg.data.max_source_length, "reverse_source": cfg.data.reverse_source,
        "decoding": cfg.decoding.__dict__,
        # The ONNX text graph leaves UTF-8 repair and lowercasing to its host (see tokenizers.normalize).
        "text_graph_input": {"valid_utf8": True, "lowercased": cfg.data.lowercase},
    }
    with open(os.path.join(extra, METADATA_FILE), "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2)


def read_metadata(export_dir: str) -> dict:
    """The export's ``assets.extra/tfs2s_export.json``."""
    path = os.path.join(export_dir, "assets.extra", METADATA_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{export_dir} is not a tfs2s export ({path} is missing)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# Which signatures become which ONNX files, and whether they need onnxruntime-extensions' string ops.
ONNX_GRAPHS = {
    "translate_ids_greedy": ("translate_ids_greedy.onnx", False),
    "translate_ids": ("translate_ids_beam.onnx", False),
    "encode": ("encoder.onnx", False),
    "decode_step": ("decoder_step.onnx", False),
    "logits": ("teacher_forced.onnx", False),
    "translate_text": ("translate_text.onnx", True),
}


def onnx_graphs(tokenizer_kind: str) -> dict:
    """The ONNX graphs an export gets.

    WordPiece models get no text graph: it converts, but onnxruntime-extensions' WordPiece op tokenizes
    differently from tensorflow-text's (measured: different translations and scores), and a graph that
    silently disagrees with the SavedModel is worse than none. Their ids graphs are exported as usual.
    """
    if tokenizer_kind == "wordpiece":
        return {k: v for k, v in ONNX_GRAPHS.items() if k != "translate_text"}
    return dict(ONNX_GRAPHS)


# ONNX graphs that decode from the encoder's outputs: the ids graphs join these to tfs2s.onnx_encoder's encoder.
DECODE_FROM_ENCODED = {"translate_ids_greedy": "decode_encoded_greedy", "translate_ids": "decode_encoded"}


def export_onnx(saved_model_dir: str, output_dir: str, tokenizer_kind: str = "word",
                graphs: dict | None = None, models=None, decoding=None) -> dict:
    """Converts SavedModel signatures to ONNX with tf2onnx (a subprocess per graph) and returns their paths.

    Args:
        saved_model_dir: The SavedModel to convert.
        output_dir: Folder for the ``.onnx`` files.
        tokenizer_kind: The source tokenizer's kind (WordPiece graphs need TensorFlow Text's ops registered).
        graphs: ``{signature: (filename, needs string ops)}`` (default ``ONNX_GRAPHS``).
        models: The exported ``Seq2SeqModels`` (token sources): then ``encoder.onnx`` is their encoder written
            with ONNX's GRU/LSTM operators (``tfs2s.onnx_encoder``), and the ids decoding graphs are that
            encoder joined to the converted ``decode_encoded*`` signatures.
        decoding: The exported ``DecodingConfig`` (with ``models``): then ``translate_ids_greedy.onnx`` is that
            encoder joined to greedy decoding written with ONNX operators (``tfs2s.onnx_decoder``), where the
            model is one it writes (otherwise the converted ``decode_encoded_greedy``).

    Raises:
        ExportError: tf2onnx is not installed.
        RuntimeError: tf2onnx failed on a graph (its output is included).
    """
    import importlib.util

    if importlib.util.find_spec("tf2onnx") is None:
        raise ExportError("ONNX export needs tf2onnx: install the onnx extra (pip install -e '.[onnx]')")
    graphs = graphs or ONNX_GRAPHS
    encoder = None
    if models is not None:
        import onnx

        from tfs2s.export.onnx.encoder import build_encoder, compose

        encoder = build_encoder(models)
    greedy = _written_greedy(models, decoding) if encoder is not None and "translate_ids_greedy" in graphs else None
    os.makedirs(output_dir, exist_ok=True)
    written = {}
    for number, (signature, (filename, text_ops)) in enumerate(graphs.items(), 1):
        path = os.path.join(output_dir, filename)
        logger.info("converting %s to ONNX (%d/%d): %s", signature, number, len(graphs), filename)
        if encoder is not None and signature == "encode":
            onnx.save(encoder, path)
        elif encoder is not None and signature == "translate_ids_greedy" and greedy is not None:
            onnx.save(compose(encoder, greedy), path)
        elif encoder is not None and signature in DECODE_FROM_ENCODED:
            decoder_path = path + ".decoder"
            _convert(saved_model_dir, DECODE_FROM_ENCODED[signature], decoder_path, text_ops, tokenizer_kind)
            onnx.save(compose(encoder, onnx.load(decoder_path)), path)
            os.remove(decoder_path)
        else:
            _convert(saved_model_dir, signature, path, text_ops, tokenizer_kind)
        written[signature] = path
    return written


def _written_greedy(models, decoding):
    """Greedy decoding written with ONNX operators, or None where ``tfs2s.onnx_decoder`` does not write it."""
    if models is None or decoding is None:
        return None
    from tfs2s.export.onnx.greedy import UnsupportedDecoder, build_greedy_decoder

    try:
        return build_greedy_decoder(models, decoding)
    except UnsupportedDecoder as error:
        logger.info("greedy decoding converted by tf2onnx: %s", error)
        return None


def _convert(saved_model_dir: str, signature: str, path: str, text_ops: bool, tokenizer_kind: str) -> None:
    args = ["--saved-model", saved_model_dir, "--signature_def", signature, "--opset", str(ONNX_OPSET),
            "--output", path]
    if text_ops:
        args += ["--extra_opset", "ai.onnx.contrib:1"]
    # The converter must see TensorFlow Text's ops registered when the graph uses them.
    prelude = "import tensorflow_text\n" if tokenizer_kind == "wordpiece" else ""
    code = prelude + "import sys\nfrom tf2onnx.convert import main\nsys.argv = ['tf2onnx'] + sys.argv[1:]\nmain()\n"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not os.path.exists(path):
        raise RuntimeError(f"tf2onnx failed on signature {signature!r}:\n{proc.stderr[-4000:]}")
    _mend_loop_counters(path)


def _mend_loop_counters(path: str) -> None:
    """Gives every ``Loop`` body's iteration number and condition inputs a scalar shape where tf2onnx left none.

    tf2onnx drops the loop counter's shape when the ``tf.while_loop`` body holds a ``tf.cond`` (beam search's
    retiring of finished inputs), and onnxruntime then refuses to run the ``Loop`` ("subgraph input 0 has
    unknown shape"). Both inputs are scalars by the ONNX specification.
    """
    import onnx

    def mend(graph) -> int:
        count = 0
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.type != onnx.AttributeProto.GRAPH:
                    continue
                if node.op_type == "Loop":
                    for value in attribute.g.input[:2]:
                        if not value.type.tensor_type.HasField("shape"):
                            value.type.tensor_type.shape.SetInParent()  # rank 0
                            count += 1
                count += mend(attribute.g)
        return count

    model = onnx.load(path)
    if mend(model.graph):
        onnx.save(model, path)


def verify_export(export_dir: str, translator: Translator, sentences: list[str], atol: float = 1e-4) -> dict:
    """Reloads an export from disk and checks it against the in-memory model on ``sentences``.

    Compares token ids (exactly) and scores (within ``atol``) of ``translate_ids`` and ``translate_ids_greedy``.

    Raises:
        AssertionError: The reloaded export disagrees with the model.
    """
    import numpy as np

    loaded = tf.saved_model.load(export_dir)
    ids = translator.encode(tf.constant(sentences))
    report = {}
    for signature, strategy, options in (("translate_ids", "beam", dict(
            beam_width=translator.config.decoding.beam_width,
            length_penalty_alpha=translator.config.decoding.length_penalty, n_best=translator.config.decoding.n_best,
            no_repeat_ngram_size=translator.config.decoding.no_repeat_ngram_size,
            min_length=translator.config.decoding.min_length)),
            ("translate_ids_greedy", "greedy",
             dict(no_repeat_ngram_size=translator.config.decoding.no_repeat_ngram_size,
                  min_length=translator.config.decoding.min_length))):
        served = loaded.signatures[signature](**{F.ENCODER_TOKEN_IDS: ids})
        direct = translator.decode_ids(ids, strategy, alignment=False, **options)
        if not np.array_equal(served["tokens"].numpy(), direct["tokens"].numpy()):
            raise AssertionError(f"{export_dir}: {signature} tokens differ from the Keras model")
        diff = float(np.max(np.abs(served["scores"].numpy() - direct["scores"].numpy()), initial=0.0))
        if diff > atol:
            raise AssertionError(f"{export_dir}: {signature} scores differ by {diff}")
        report[signature] = {"sentences": len(sentences), "max_score_diff": diff}
    return report


def load_translator_from_run(run_dir: str) -> Translator:
    """A ``Translator`` over a training run's best checkpoint."""
    from tfs2s.training.run import load_run

    cfg, models, source_tok, target_tok = load_run(run_dir)
    return Translator(models, source_tok, target_tok, cfg)
