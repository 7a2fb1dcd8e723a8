"""SentencePiece on the host, without TensorFlow: the ids a SentencePiece export's graphs take, and their text.

For ONNX clients that run the ids graphs (``translate_ids*.onnx``, ``encoder.onnx``) of a SentencePiece export:
the ``sentencepiece`` package reads the model file that travels in the export's ``assets/`` (named in the
metadata's ``host_tokenizers``) and reproduces the in-graph steps of ``tfs2s.core.subwords`` and
``tfs2s.core.text_data.encode_source``: normalisation, pieces, truncation, optional reversal, ``</s>``, padding.
Imports only numpy, ``sentencepiece`` and ``tfs2s.core.features``.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from typing import Sequence

import numpy as np

from tfs2s.core import features as F

_SPACE = "\u2581"


def _is_space(char: str) -> bool:
    # The in-graph normaliser's class [\s\p{Z}\p{Cc}] (RE2's \s is ASCII-only).
    return char in "\t\n\f\r " or unicodedata.category(char) in ("Zs", "Zl", "Zp", "Cc")


def normalize_text(text: str | bytes, lowercase: bool = False) -> str:
    """The in-graph ``normalize(..., split_punctuation=False)``: valid UTF-8, one space per run, no edge spaces."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = str(text).encode("utf-8", errors="replace").decode("utf-8")
    if lowercase:
        text = text.lower()
    text = re.sub(" +", " ", "".join(" " if _is_space(c) else c for c in text))
    return text.strip(" ")


class HostSentencePiece:
    """One side's SentencePiece model, run with the ``sentencepiece`` package.

    Args:
        model_path: The export's ``assets/<side>_sentencepiece.model``.
        lowercase: The model lowercases its input (the metadata's ``host_tokenizers[side]["lowercase"]``).
    """

    def __init__(self, model_path: str, lowercase: bool = False):
        import sentencepiece as spm  # an optional dependency of ONNX clients of SentencePiece exports

        self.processor = spm.SentencePieceProcessor(model_file=model_path)
        self.lowercase = lowercase
        self.pieces = [self.processor.id_to_piece(i) for i in range(self.processor.get_piece_size())]

    @classmethod
    def from_export(cls, export_dir: str, side: str = "source") -> "HostSentencePiece":
        """The ``side`` (``source``/``target``) tokenizer of a SentencePiece export.

        Raises:
            ValueError: That side's tokenizer is not SentencePiece (or the export predates the record).
        """
        with open(os.path.join(export_dir, "assets.extra", "tfs2s_export.json"), encoding="utf-8") as f:
            record = json.load(f).get("host_tokenizers", {}).get(side, {})
        if record.get("kind") != "sentencepiece":
            raise ValueError(f"{export_dir}: the {side} tokenizer is {record.get('kind', 'not recorded')!r}, "
                             "not sentencepiece")
        return cls(os.path.join(export_dir, "assets", record["assets"]["model"]), record["lowercase"])

    def tokenize(self, text: str | bytes) -> list[int]:
        """Ids of one text, as ``SentencePieceTokenizer.tokenize`` gives them (no ``<s>``/``</s>``)."""
        ids = self.processor.encode(normalize_text(text, self.lowercase))
        return [i if i >= len(F.SPECIAL_TOKENS) else F.UNK_ID for i in ids]

    def encode_batch(self, texts: Sequence[str | bytes], max_source_length: int,
                     reverse_source: bool = False) -> np.ndarray:
        """``[B, S]`` int32 encoder ids as ``encode_source`` makes them (metadata: ``max_source_length``,
        ``reverse_source``)."""
        rows = []
        for text in texts:
            ids = self.tokenize(text)[: max_source_length - 1]
            rows.append((ids[::-1] if reverse_source else ids) + [F.EOS_ID])
        out = np.full((len(rows), max([len(r) for r in rows], default=1)), F.PAD_ID, np.int32)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out

    def detokenize(self, ids: Sequence[int]) -> str:
        """Text of output ids as ``SentencePieceTokenizer.detokenize``: cut at ``</s>``, ``<unk>`` spelled out."""
        pieces = []
        for i in ids:
            i = int(i)
            if i == F.EOS_ID:
                break
            if i not in (F.PAD_ID, F.BOS_ID):
                pieces.append(self.pieces[i] if 0 <= i < len(self.pieces) else F.UNK)
        return re.sub(" +", " ", "".join(pieces).replace(_SPACE, " ")).strip(" ")
