"""Run the ONNX graphs of an export in onnxruntime, without TensorFlow: translate, caption, forecast.

This module imports neither TensorFlow nor the rest of tfs2s (only ``tfs2s.core.features``, ``tfs2s.core.errors``
and the numpy-only ``tfs2s.export.onnx.graph``), so it runs where only ``numpy``, ``onnxruntime`` and
``onnxruntime-extensions`` are installed::

    from tfs2s.export.onnx.runtime import OnnxTranslator
    translator = OnnxTranslator("saved_models/multi30k_small/1")
    translator.translate(["Ein Mann fährt Fahrrad."])            # text graph (beam search)
    translator.translate_ids(ids, strategy="greedy")             # ids graphs, whole loop inside ONNX
    translator.greedy_host_loop(ids)                             # encoder.onnx + decoder_step.onnx, numpy loop
    OnnxCaptioner("saved_models/captcha/1").caption(pixels)     # float images [B, 50, 200, 1] -> text
    OnnxForecaster("saved_models/etth1/1").forecast(window)     # [B, 96, 7] past -> [B, 96, 7] future
"""

from __future__ import annotations

import importlib.util
import json
import os
import unicodedata
from typing import Sequence

import numpy as np

from tfs2s.core import features as F
from tfs2s.core.errors import ExportError, InputError, RunNotFoundError
from tfs2s.export.onnx.graph import ONNX_OPSET, portable  # numpy only (onnx when called): no TensorFlow

GRAPH_FILES = {"text": "translate_text.onnx", "greedy": "translate_ids_greedy.onnx",
               "greedy_int8": "translate_ids_greedy.int8.onnx", "beam": "translate_ids_beam.onnx",
               "beam_int8": "translate_ids_beam.int8.onnx",
               "encoder": "encoder.onnx", "decoder_step": "decoder_step.onnx",
               "logits": "teacher_forced.onnx"}


def _clean_text(text) -> str:
    """Valid UTF-8 text for the graph: bytes are decoded with replacement characters, lone surrogates replaced,
    and NUL characters become spaces.

    onnxruntime-extensions' ``StringRegexReplace`` cuts a string at its first NUL (measured with 0.15.2: "a<NUL>b c"
    -> "a"), where TensorFlow's reads on; every tokenizer's first step folds control characters and spaces alike
    (``tokenizers.normalize_steps``), so a space in its place gives the graph TensorFlow's text.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return str(text).encode("utf-8", errors="replace").decode("utf-8").replace("\x00", " ")


def _has_words(text: str) -> bool:
    """Whether ``text`` holds a character that the graph's normaliser keeps (it folds ``[\\s\\p{Z}\\p{Cc}]``)."""
    return any(not (c.isspace() or unicodedata.category(c) in ("Cc", "Zs", "Zl", "Zp")) for c in text)


def _string_ops_library() -> str:
    """Path of onnxruntime-extensions' op library, loaded first (on Linux) so that its ops call its own RE2.

    The library exports the RE2 it is built with, and so does TensorFlow. Loaded into a process that has loaded
    TensorFlow, its calls bind to TensorFlow's RE2 and ``StringRegexReplace`` returns its input unchanged, for
    every pattern and without an error (onnxruntime-extensions 0.15.2 with TensorFlow 2.21): a text graph then
    skips its normalisation and detokenisation. Loading the library with ``RTLD_DEEPBIND`` before Python imports
    it binds its calls to its own symbols (Python's later import finds the library already loaded).
    """
    import sys

    if "onnxruntime_extensions" not in sys.modules and hasattr(os, "RTLD_DEEPBIND"):
        import ctypes
        import glob
        import importlib.util

        spec = importlib.util.find_spec("onnxruntime_extensions")
        for folder in (spec.submodule_search_locations or []) if spec else []:
            for path in glob.glob(os.path.join(folder, "_extensions_pydll*.so")):
                ctypes.CDLL(path, mode=os.RTLD_NOW | os.RTLD_LOCAL | os.RTLD_DEEPBIND)
    from onnxruntime_extensions import get_library_path

    return get_library_path()


def _check_string_ops(ort, options) -> None:
    """Runs one ``StringRegexReplace``; raises ``RuntimeError`` where it does nothing (see ``_string_ops_library``)."""
    from onnx import TensorProto, helper  # a dependency of onnxruntime-extensions

    node = helper.make_node("StringRegexReplace", ["text", "pattern", "rewrite"], ["out"], domain="ai.onnx.contrib")
    graph = helper.make_graph(
        [node], "regex_probe", [helper.make_tensor_value_info("text", TensorProto.STRING, [None])],
        [helper.make_tensor_value_info("out", TensorProto.STRING, [None])],
        [helper.make_tensor("pattern", TensorProto.STRING, [1], [b" +"]),
         helper.make_tensor("rewrite", TensorProto.STRING, [1], [b" "])])
    # portable: the IR version of opset 17 (make_model stamps the newest, which older onnxruntimes refuse).
    model = portable(helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET),
                                                             helper.make_opsetid("ai.onnx.contrib", 1)]))
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    if session.run(["out"], {"text": np.array(["a   b"], dtype=object)})[0].tolist() != ["a b"]:
        raise RuntimeError(
            "onnxruntime-extensions' regex op does not work in this process: onnxruntime_extensions was imported "
            "after TensorFlow, and calls TensorFlow's RE2. Create the ONNX runner before importing "
            "onnxruntime_extensions yourself, or run ONNX text graphs in a process without TensorFlow.")


class _OnnxExport:
    """An export's metadata and its ONNX sessions (``string_ops``: with onnxruntime-extensions' ops)."""

    def __init__(self, export_dir: str, threads: int | None = None, string_ops: bool = False):
        import onnxruntime as ort

        meta_path = os.path.join(export_dir, "assets.extra", "tfs2s_export.json")
        if not os.path.exists(meta_path):
            raise RunNotFoundError(f"{export_dir} is not a tfs2s export ({meta_path} is missing)")
        with open(meta_path, encoding="utf-8") as f:
            self.metadata = json.load(f)
        self.export_dir = export_dir
        self.onnx_dir = os.path.join(export_dir, "onnx")
        if not os.path.isdir(self.onnx_dir):
            raise RunNotFoundError(f"no ONNX graphs in {export_dir}: export with --onnx")
        self._options = ort.SessionOptions()
        # onnxruntime-extensions' string ops (text graphs), where installed: a deployment that runs only the ids
        # graphs needs numpy and onnxruntime alone (see text_session).
        self.string_ops = string_ops and importlib.util.find_spec("onnxruntime_extensions") is not None
        if self.string_ops:
            self._options.register_custom_ops_library(_string_ops_library())
            _check_string_ops(ort, self._options)
        if threads:
            self._options.intra_op_num_threads = threads
        self._ort = ort
        self._sessions: dict = {}

    def session(self, filename: str):
        if filename not in self._sessions:
            path = os.path.join(self.onnx_dir, filename)
            if not os.path.exists(path):
                raise RunNotFoundError(f"ONNX graph {path} is missing")
            self._sessions[filename] = self._ort.InferenceSession(path, self._options,
                                                                  providers=["CPUExecutionProvider"])
        return self._sessions[filename]


class OnnxTranslator(_OnnxExport):
    """Runs an export's ``onnx/`` graphs.

    Args:
        export_dir: A version folder written by ``tfs2s export --onnx``.
        threads: onnxruntime intra-op threads (default: onnxruntime's choice).

    Raises:
        RunNotFoundError: The folder holds no ONNX graphs or no export metadata.
    """

    def __init__(self, export_dir: str, threads: int | None = None):
        super().__init__(export_dir, threads, string_ops=True)

    def session(self, graph: str):
        """The onnxruntime session of ``graph`` (``text``, ``greedy``, ``beam``, ``encoder``, ``decoder_step``)."""
        path = os.path.join(self.onnx_dir, GRAPH_FILES[graph])
        if graph == "text" and not self.string_ops:
            raise ExportError(f"ONNX graph {path} needs onnxruntime-extensions' string ops: pip install "
                              "onnxruntime-extensions (or tokenize on the host and use translate_ids)")
        if graph == "text" and self.metadata.get("tokenizer") == "wordpiece" and not os.path.exists(path):
            raise RunNotFoundError(f"ONNX graph {path} is missing (WordPiece exports have no ONNX text graph: "
                                    "tokenize on the host and use translate_ids)")
        return super().session(GRAPH_FILES[graph])

    def translate(self, texts: Sequence[str | bytes]) -> list[str]:
        """Best translation of each text (beam search inside the graph). An empty batch gives ``[]``.

        Empty and whitespace-only texts translate to "" without running the graph, as in the SavedModel (a
        batch of only such texts stops onnxruntime: a ``ConstantOfShape`` of the converted graph gets an empty
        shape); the others are translated together (each translates the same whatever it is batched with).
        """
        texts = [_clean_text(t) for t in texts]
        if self.metadata.get("text_graph_input", {}).get("lowercased"):
            texts = [t.lower() for t in texts]  # the model lowercases; the graph leaves it to its host
        keep = [i for i, t in enumerate(texts) if _has_words(t)]
        out = [""] * len(texts)
        if keep:
            batch = np.array([texts[i] for i in keep], dtype=object)
            translation, _ = self.session("text").run(["translation", "score"], {F.SOURCE_TEXT: batch})
            for i, t in zip(keep, translation):
                out[i] = t.decode("utf-8") if isinstance(t, bytes) else str(t)
        return out

    def translate_ids(self, ids: np.ndarray, strategy: str = "greedy") -> dict:
        """Decodes padded ``[B, S]`` int32 encoder ids with the whole decoding loop in ONNX.

        Returns:
            ``{"tokens" [B, N, L], "length" [B, N], "scores" [B, N]}`` (N: 1 for greedy, the exported n-best for
            beam), and ``"alignment" [B, N, L, S]`` where the graph returns it (attention models; older exports
            have none). The graphs decode every row, a row of only ``</s>`` (a text without words) too: its
            translation is "" by the export's tokenization rules (``host_tokenization``), as ``translate`` answers.
        """
        if strategy not in ("greedy", "greedy_int8", "beam", "beam_int8"):
            raise InputError(f"strategy must be greedy, greedy_int8, beam or beam_int8, got {strategy!r}")
        ids = np.asarray(ids, dtype=np.int32)
        if ids.ndim != 2:
            raise InputError(f"ids must be [batch, time], got shape {ids.shape}")
        if ids.shape[0] == 0:
            return {"tokens": np.zeros((0, 1, 0), np.int32), "length": np.zeros((0, 1), np.int32),
                    "scores": np.zeros((0, 1), np.float32)}
        session = self.session(strategy)
        names = [o.name for o in session.get_outputs() if o.name in ("tokens", "length", "scores", "alignment")]
        return dict(zip(names, session.run(names, {F.ENCODER_TOKEN_IDS: ids})))

    def words(self, result: dict, source_words: Sequence[Sequence[str]]) -> list[list[list[str]]]:
        """The output tokens of ``translate_ids`` as target words, for clients that tokenize on the host.

        Each output is cut at its ``length``; ids of the target vocabulary become its tokens, and a copy-attention
        model's copied ids (``>= V``) the source words they copy (``copied_words``), as the
        SavedModel's text outputs show them (``<unk>`` replacement by attention is not applied here).

        Args:
            result: ``translate_ids``' output (``tokens [B, N, L]``, ``length [B, N]``).
            source_words: Each input's normalised source words, before truncation and reversal (the host
                tokenization's words; the encoder read the first ``max_source_length - 1``).

        Returns:
            ``[B][N]`` lists of tokens.
        """
        if len(source_words) != len(result["tokens"]):
            raise InputError(f"{len(source_words)} source texts for {len(result['tokens'])} outputs")
        vocab = self.target_vocab
        limit = int(self.metadata["max_source_length"]) - 1
        reverse = bool(self.metadata.get("reverse_source"))
        out = []
        for words, rows, lengths in zip(source_words, result["tokens"], result["length"]):
            read = list(words)[:limit]
            out.append([copied_words([vocab[i] if 0 <= i < len(vocab) else F.UNK for i in ids[:n]], ids[:n],
                                     len(vocab), read, reverse) for ids, n in zip(rows, lengths)])
        return out

    @property
    def target_vocab(self) -> list[str]:
        """The target vocabulary (under ``assets/``, named in the metadata): line ``i`` is id ``i``'s token."""
        if not hasattr(self, "_target_vocab"):
            name = self.metadata["host_tokenizers"]["target"]["assets"]["vocab"]
            with open(os.path.join(self.export_dir, "assets", name), encoding="utf-8") as f:
                self._target_vocab = [line.rstrip("\n") for line in f]
        return self._target_vocab

    def max_length(self, ids: np.ndarray) -> np.ndarray:
        """Decoding length limit of each input ``[B]``, computed as the exported graphs do."""
        d = self.metadata["decoding"]
        lengths = (np.asarray(ids) != F.PAD_ID).sum(axis=1)
        return (np.ceil(d["max_length_ratio"] * lengths) + d["max_length_offset"]).astype(np.int32)

    def greedy_host_loop(self, ids: np.ndarray, max_length: int | np.ndarray | None = None) -> dict:
        """Greedy decoding driven from Python over ``encoder.onnx`` and ``decoder_step.onnx``.

        Returns:
            ``{"tokens" [B, L], "length" [B], "scores" [B]}`` (sum of token log-probabilities).
        """
        ids = np.asarray(ids, dtype=np.int32)
        batch = ids.shape[0]
        limits = np.broadcast_to(self.max_length(ids) if max_length is None else max_length, (batch,))
        max_length = int(limits.max(initial=0))
        tokens = np.zeros((batch, max_length), np.int32)
        scores = np.zeros(batch, np.float32)
        lengths = np.zeros(batch, np.int32)
        if batch == 0:
            return {"tokens": tokens, "length": lengths, "scores": scores}
        encoder = self.session("encoder")
        encoded = dict(zip([o.name for o in encoder.get_outputs()], encoder.run(None, {F.ENCODER_TOKEN_IDS: ids})))
        step = self.session("decoder_step")
        feed = {name: encoded[name] for name in self.metadata["step_inputs"] if name in encoded}
        previous = np.full(batch, F.BOS_ID, np.int32)
        # The exported graphs' no_repeat_ngram_size rule (core.decoding.constraints.block_repeated_ngrams), on the host.
        repeat_n = int(self.metadata["decoding"].get("no_repeat_ngram_size", 0))
        min_length = int(self.metadata["decoding"].get("min_length", 0))
        history = [[F.BOS_ID] for _ in range(batch)]
        finished = np.zeros(batch, bool)
        step_outputs = [o.name for o in step.get_outputs()]
        for t in range(max_length):
            out = dict(zip(step_outputs, step.run(None, {F.DECODER_TOKEN_IDS: previous, **feed})))
            logits = out["logits"]
            if t < min_length:
                logits = logits.copy()
                logits[:, F.EOS_ID] = -1e9
            if repeat_n:
                logits = logits.copy()
                for row in range(batch):
                    for token in _banned_continuations(history[row], repeat_n):
                        logits[row, token] = -1e9
            log_probs = logits - logits.max(-1, keepdims=True)
            log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
            active = ~finished & (t < limits)
            chosen = np.where(active, logits.argmax(-1), F.PAD_ID).astype(np.int32)
            scores += np.where(active, log_probs[np.arange(batch), chosen], 0.0)
            lengths += (active & (chosen != F.EOS_ID)).astype(np.int32)
            tokens[:, t] = chosen
            finished |= active & (chosen == F.EOS_ID)
            for name in self.metadata["state_names"]:
                feed[name] = out[f"next_{name}"]
            previous = chosen
            for row in range(batch):
                history[row].append(int(chosen[row]))
            if (finished | (t + 1 >= limits)).all():
                tokens = tokens[:, : t + 1]
                break
        return {"tokens": tokens, "length": lengths, "scores": scores}


def copied_words(tokens: Sequence[str], ids: Sequence[int], vocab_size: int, read_words: Sequence[str],
                 reversed_source: bool = False) -> list[str]:
    """One output's tokens with copy attention's copied ids as words: the host's
    ``tfs2s.core.decoding.unk.copied_tokens`` (which needs TensorFlow), by the same rule.

    Id ``vocab_size + s`` becomes the source word at encoder position ``s`` (the encoder read ``read_words``,
    reversed if ``reversed_source``); other tokens are kept, and so is a copy of a position that holds no word.

    Args:
        tokens: The output's token strings (a copied id's is whatever stands for it, ``<unk>``).
        ids: Their ids, extended ids included.
        vocab_size: The target vocabulary's size ``V``.
        read_words: The source words the encoder read, in text order (truncated, not reversed).
        reversed_source: Whether the encoder read them reversed.
    """
    n = len(read_words)
    out = []
    for token, i in zip(tokens, ids):
        position = int(i) - vocab_size
        if 0 <= position < n:
            token = read_words[n - 1 - position] if reversed_source else read_words[position]
        out.append(token)
    return out


def _banned_continuations(history: list[int], n: int) -> set[int]:
    """Tokens that would complete an n-gram already in ``history``."""
    suffix = history[len(history) - n + 1:] if n > 1 else []
    return {history[j + n - 1] for j in range(len(history) - n + 1) if history[j:j + n - 1] == suffix}


class OnnxCaptioner(_OnnxExport):
    """Captions float images with an image export's ONNX graphs (``caption_image_greedy/beam.onnx``).

    Images are ``[B, H, W, C]`` float32 pixel values divided by 255 (the export's ``image_shape``); ids become
    text with the export's ``assets/target_vocab.txt`` on the host.
    """

    def __init__(self, export_dir: str, threads: int | None = None):
        super().__init__(export_dir, threads)
        with open(os.path.join(export_dir, "assets", "target_vocab.txt"), encoding="utf-8") as f:
            self.vocab = f.read().split("\n")
        self.image_shape = tuple(self.metadata["image_shape"])

    def caption_ids(self, pixels: np.ndarray, strategy: str = "greedy") -> dict:
        """``{"tokens" [B, N, L], "length" [B, N], "scores" [B, N]}`` with the decoding loop inside ONNX.

        Raises:
            InputError: ``pixels`` is not ``[batch, *image_shape]`` (the message names the input and both shapes).
        """
        if strategy not in ("greedy", "beam"):
            raise InputError(f"strategy must be greedy or beam, got {strategy!r}")
        pixels = np.asarray(pixels, np.float32)
        if pixels.ndim != 4 or tuple(pixels.shape[1:]) != self.image_shape:
            raise InputError(f"{F.ENCODER_IMAGE} must have shape [batch, {', '.join(map(str, self.image_shape))}] "
                             f"(height, width, channels), got {list(pixels.shape)}")
        if pixels.shape[0] == 0:
            return {"tokens": np.zeros((0, 1, 0), np.int32), "length": np.zeros((0, 1), np.int32),
                    "scores": np.zeros((0, 1), np.float32)}
        tokens, length, scores = self.session(f"caption_image_{strategy}.onnx").run(
            ["tokens", "length", "scores"], {F.ENCODER_IMAGE: pixels})
        return {"tokens": tokens, "length": length, "scores": scores}

    def caption(self, pixels: np.ndarray, strategy: str = "greedy") -> list[str]:
        """Best caption of each image."""
        out = self.caption_ids(pixels, strategy)
        char = self.metadata.get("tokenizer") == "char"
        texts = []
        for ids, n in zip(out["tokens"][:, 0], out["length"][:, 0]):
            tokens = [self.vocab[i] for i in ids[:n] if i >= len(F.SPECIAL_TOKENS) or i == F.UNK_ID]
            texts.append("".join(tokens).replace("\u2581", " ") if char else " ".join(tokens))
        return texts


class OnnxForecaster(_OnnxExport):
    """Forecasts with a forecasting export's ``forecast.onnx``: past values in original units -> future values.

    Normalisation and de-normalisation are inside the graph (the export stores the training statistics).
    """

    def forecast(self, window: np.ndarray) -> np.ndarray:
        """``[B, lookback, F]`` past values -> ``[B, horizon, F]`` predictions, in original units.

        Raises:
            InputError: Wrong shape (names the input, the expected and the given shapes) or non-finite values.
        """
        meta = self.metadata
        window = np.asarray(window, np.float32)
        expected = (meta["lookback"], len(meta["columns"]))
        if window.ndim != 3 or tuple(window.shape[1:]) != expected:
            raise InputError(f"{F.ENCODER_VALUES} must have shape [batch, {expected[0]}, {expected[1]}] "
                             f"(lookback, columns {', '.join(meta['columns'])}), got {list(window.shape)}")
        if not np.isfinite(window).all():
            raise InputError(f"{F.ENCODER_VALUES} holds missing or infinite values")
        if window.shape[0] == 0:
            return np.zeros((0, meta["horizon"], expected[1]), np.float32)
        (forecast,) = self.session("forecast.onnx").run(["forecast"], {F.ENCODER_VALUES: window})
        return forecast
