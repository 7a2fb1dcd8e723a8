"""Every tokenizer by its ``data.tokenizer`` name: learn one for a run, load one from a run folder.

Above both tokenizer modules (``tokenizers``: word, WordPiece, characters; ``subwords``: SentencePiece), so
neither imports the other's registry. Runs learn and load their tokenizers here.
"""

from __future__ import annotations

from typing import Iterable

from tfs2s.core import tokenizers
from tfs2s.core.subwords import SentencePieceTokenizer, read_tokenizer_config
from tfs2s.core.tokenizers import Tokenizer

TOKENIZERS = {**tokenizers.TOKENIZERS, SentencePieceTokenizer.kind: SentencePieceTokenizer}


def learn_tokenizer(kind: str, texts: Iterable[str], vocab_path: str, vocab_size: int, min_frequency: int = 1,
                    lowercase: bool = False, name: str | None = None, subword_model: str = "unigram",
                    seed: int = 0, shared: bool = False) -> Tokenizer:
    """Learns a tokenizer of ``kind`` from ``texts`` with its vocabulary at ``vocab_path``.

    ``min_frequency`` applies to the vocabulary-file kinds; ``subword_model``, ``seed`` and ``shared`` to
    SentencePiece (its model file is written beside ``vocab_path``).

    Raises:
        ValueError: Unknown ``kind``.
        tfs2s.core.subwords.VocabularySizeError: A SentencePiece size the data does not support.
    """
    if kind not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {kind!r}; choose one of {', '.join(TOKENIZERS)}")
    if kind == SentencePieceTokenizer.kind:
        return SentencePieceTokenizer.learn(texts, vocab_path, vocab_size, lowercase, name, subword_model, seed,
                                            shared)
    return tokenizers.learn_tokenizer(kind, texts, vocab_path, vocab_size, min_frequency, lowercase, name)


def load_tokenizer(directory: str, prefix: str) -> Tokenizer:
    """Loads a tokenizer saved by ``Tokenizer.save`` (any kind).

    Raises:
        FileNotFoundError: ``directory`` holds no ``<prefix>_tokenizer.json``.
    """
    config = read_tokenizer_config(directory, prefix)
    if config["kind"] == SentencePieceTokenizer.kind:
        return SentencePieceTokenizer.load(directory, prefix, config)
    return tokenizers.load_tokenizer(directory, prefix)
