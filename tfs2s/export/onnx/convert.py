"""ONNX graphs of an export: SavedModel signatures converted with tf2onnx, and the graphs tfs2s writes itself.

tf2onnx runs in a subprocess per graph (it needs TensorFlow Text's ops registered for WordPiece models, and a
failed conversion must not take the exporting process down). For token-to-token models the encoder is written
with ONNX's own recurrent operators (``tfs2s.export.onnx.encoder``) and joined to the converted
``decode_encoded*`` signatures; greedy decoding is written with ONNX operators where ``tfs2s.export.onnx.greedy``
supports the model. With ``quantize="int8"`` an export also gets ``translate_ids_greedy.int8.onnx``: the same
float32 encoder joined to greedy decoding with int8 matrix products inside the loop (``tfs2s.export.onnx.quantize``),
and ``translate_ids_beam.int8.onnx``: the beam graph with the products inside its loop made int8 after conversion
(``tfs2s.export.onnx.int8_pass``).
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import logging
import os
import subprocess
import sys

from tfs2s.core.errors import ExportError
from tfs2s.export.onnx.encoder import UnsupportedEncoder, build_encoder, compose
from tfs2s.export.onnx.graph import ONNX_OPSET, save_model
from tfs2s.export.onnx.greedy import UnsupportedDecoder, build_greedy_decoder
from tfs2s.export.onnx.int8_pass import quantize_products
from tfs2s.export.onnx.quantize import QUANTIZE_CHOICES

logger = logging.getLogger(__name__)


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
    SentencePiece models keep it: tf2onnx turns tensorflow-text's raw ``SentencepieceOp`` into
    onnxruntime-extensions' ``SentencepieceTokenizer``, which runs the same SentencePiece library.
    """
    if tokenizer_kind == "wordpiece":
        return {k: v for k, v in ONNX_GRAPHS.items() if k != "translate_text"}
    return dict(ONNX_GRAPHS)


# Tokenizers made of tensorflow-text ops: tf2onnx must run with them registered.
TEXT_OP_TOKENIZERS = ("wordpiece", "sentencepiece")

# The int8 greedy graph beside translate_ids_greedy.onnx (export_onnx(quantize="int8")), and its key in the result.
INT8_GREEDY_FILE = "translate_ids_greedy.int8.onnx"
INT8_GREEDY = "translate_ids_greedy_int8"
# The int8 beam graph beside translate_ids_beam.onnx (export_onnx(quantize="int8") with translate_ids asked for).
INT8_BEAM_FILE = "translate_ids_beam.int8.onnx"
INT8_BEAM = "translate_ids_beam_int8"
INT8_FILES = (INT8_GREEDY_FILE, INT8_BEAM_FILE)  # what --quantize int8 adds to a text export's ONNX graphs

# ONNX graphs that decode from the encoder's outputs: the ids graphs join these to tfs2s.export.onnx.encoder's encoder.
DECODE_FROM_ENCODED = {"translate_ids_greedy": "decode_encoded_greedy", "translate_ids": "decode_encoded"}


def export_onnx(saved_model_dir: str, output_dir: str, tokenizer_kind: str = "word",
                graphs: dict | None = None, models=None, decoding=None, workers: int | None = None,
                quantize: str | None = None) -> dict:
    """Converts SavedModel signatures to ONNX with tf2onnx (a subprocess per graph) and returns their paths.

    Args:
        saved_model_dir: The SavedModel to convert.
        output_dir: Folder for the ``.onnx`` files.
        tokenizer_kind: The source tokenizer's kind (WordPiece graphs need TensorFlow Text's ops registered).
        graphs: ``{signature: (filename, needs string ops)}`` (default ``ONNX_GRAPHS``).
        models: The exported ``Seq2SeqModels`` (token sources): then ``encoder.onnx`` is their encoder written
            with ONNX's GRU/LSTM operators (``tfs2s.export.onnx.encoder``), and the ids decoding graphs are that
            encoder joined to the converted ``decode_encoded*`` signatures.
        decoding: The exported ``DecodingConfig`` (with ``models``): then ``translate_ids_greedy.onnx`` is that
            encoder joined to greedy decoding written with ONNX operators (``tfs2s.export.onnx.greedy``), where the
            model is one it writes (otherwise the converted ``decode_encoded_greedy``).
        workers: tf2onnx subprocesses run at once (default: the CPU count, at most 4). Each converts on one core
            for the most part, so a 2-core machine converts an export's graphs in about half the time.
        quantize: ``"int8"``: also write ``INT8_GREEDY_FILE`` (``int8_greedy_model``), returned under
            ``INT8_GREEDY``, and where ``translate_ids`` is among ``graphs``, ``INT8_BEAM_FILE`` (the beam graph
            through ``int8_pass.quantize_products``) under ``INT8_BEAM``; the other graphs are the same as without it.

    Raises:
        ExportError: tf2onnx is not installed, or ``quantize`` is asked for a model whose greedy decoding is not
            written by hand (or without ``models`` and ``decoding``), or is not one of ``None``, ``"int8"``.
        RuntimeError: tf2onnx failed on a graph (its output is included).
    """
    if importlib.util.find_spec("tf2onnx") is None:
        raise ExportError("ONNX export needs tf2onnx: install the onnx extra (pip install -e '.[onnx]')")
    import onnx  # the onnx extra is optional: needed only when ONNX graphs are asked for

    graphs = graphs or ONNX_GRAPHS
    int8 = int8_greedy_model(models, decoding, quantize) if quantize else None  # refused before any conversion
    encoder = build_encoder(models) if models is not None else None
    greedy = _written_greedy(models, decoding) if encoder is not None and "translate_ids_greedy" in graphs else None
    os.makedirs(output_dir, exist_ok=True)
    written, conversions, joins = {}, [], {}
    for signature, (filename, text_ops) in graphs.items():
        path = written[signature] = os.path.join(output_dir, filename)
        if encoder is not None and signature == "encode":
            save_model(encoder, path)
        elif encoder is not None and signature == "translate_ids_greedy" and greedy is not None:
            save_model(compose(encoder, greedy), path)
        elif encoder is not None and signature in DECODE_FROM_ENCODED:
            joins[signature] = path + ".decoder"  # converted, then joined to the written encoder
            conversions.append((DECODE_FROM_ENCODED[signature], joins[signature], text_ops))
        else:
            conversions.append((signature, path, text_ops))
    workers = workers or min(4, os.cpu_count() or 1)
    logger.info("converting %d signatures to ONNX with tf2onnx (%d at a time): %s", len(conversions), workers,
                ", ".join(c[0] for c in conversions))
    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        for future in [pool.submit(_convert, saved_model_dir, signature, path, text_ops, tokenizer_kind)
                       for signature, path, text_ops in conversions]:
            future.result()  # raises the first failure
    for signature, decoder_path in joins.items():
        save_model(compose(encoder, onnx.load(decoder_path)), written[signature])
        os.remove(decoder_path)
    if int8 is not None:
        written[INT8_GREEDY] = save_model(int8, os.path.join(output_dir, INT8_GREEDY_FILE))
        if "translate_ids" in written:
            written[INT8_BEAM] = save_model(quantize_products(onnx.load(written["translate_ids"])),
                                            os.path.join(output_dir, INT8_BEAM_FILE))
    return written


def int8_greedy_model(models, decoding, quantize: str = "int8") -> "onnx.ModelProto":  # noqa: F821
    """``translate_ids_greedy.int8.onnx``: the encoder with its recurrent layers written out in a loop
    (``tfs2s.export.onnx.encoder_loop``) joined to greedy decoding, the recurrent, bridge, attention-key,
    attentional-hidden and output-layer products int8 in both.

    Inputs and outputs are those of ``translate_ids_greedy.onnx`` (``encoder_token_ids`` -> ``tokens``,
    ``length``, ``scores``, and ``alignment`` with attention); tokens agree with it for most sentences.

    Raises:
        ExportError: ``quantize`` is not ``"int8"``, no ``models`` / ``decoding`` were given, or the model's greedy
            decoding is not one tfs2s writes by hand (it is then converted by tf2onnx, in float32 only).
    """
    if quantize not in QUANTIZE_CHOICES or quantize is None:
        raise ExportError(f"quantize must be 'int8' (or left out), not {quantize!r}")
    if models is None or decoding is None:
        raise ExportError("an int8 greedy graph is written from the trained models: token-to-token text models only")
    try:
        return compose(build_encoder(models, quantize=quantize), build_greedy_decoder(models, decoding, quantize=quantize))
    except (UnsupportedDecoder, UnsupportedEncoder) as error:
        raise ExportError(f"no int8 greedy graph for this model: {error}") from error


def _written_greedy(models, decoding):
    """Greedy decoding written with ONNX operators, or None where ``tfs2s.export.onnx.greedy`` does not write it."""
    if models is None or decoding is None:
        return None
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
    prelude = "import tensorflow_text\n" if tokenizer_kind in TEXT_OP_TOKENIZERS else ""
    code = prelude + "import sys\nfrom tf2onnx.convert import main\nsys.argv = ['tf2onnx'] + sys.argv[1:]\nmain()\n"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not os.path.exists(path):
        raise RuntimeError(f"tf2onnx failed on signature {signature!r}:\n{proc.stderr[-4000:]}")
    _finish_converted(path)


def _finish_converted(path: str) -> None:
    """Rewrites tf2onnx's file through ``save_model`` (IR version and opset imports as every export's graph).

    It also gives every ``Loop`` body's iteration number and condition inputs a scalar shape where tf2onnx left none.

    tf2onnx drops the loop counter's shape when the ``tf.while_loop`` body holds a ``tf.cond`` (beam search's
    retiring of finished inputs), and onnxruntime then refuses to run the ``Loop`` ("subgraph input 0 has
    unknown shape"). Both inputs are scalars by the ONNX specification.
    """
    import onnx  # the onnx extra is optional (see export_onnx)

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
    mend(model.graph)
    save_model(model, path)
