"""SentencePiece subwords: learned with the ``sentencepiece`` package, run in-graph with tensorflow-text.

The model is learned from the training split after the same normalisation the tokenizer applies
(``tokenizers.normalize`` without punctuation splitting: SentencePiece finds its own units), with SentencePiece's
own normaliser off (``identity``), so that ``detokenize(tokenize(x)) == normalize(x)`` for every text whose
characters were seen in training (``character_coverage=1.0`` keeps them all; digits are split into single
pieces, so every number is spelled with ten pieces). Characters never seen in training become ``<unk>``.

Ids 0-3 are ``<pad> <unk> <s> </s>`` like every tokenizer here. The model file and a vocabulary file (piece per
line, line number = id) both travel with an export as SavedModel assets; the model's bytes are also inside the
graph (tensorflow-text's op takes them as an attribute). Detokenisation joins pieces through the vocabulary
table with core TF ops, so it converts to ONNX and reads the same in TensorFlow and onnxruntime.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from typing import Iterable

import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.core.errors import ConfigError
from tfs2s.core.tokenizers import Tokenizer, normalize, output_mask, write_vocab

SUBWORD_MODELS = ("unigram", "bpe")
SPACE = "\u2581"  # SentencePiece's word-boundary mark
# Sentences longer than this many bytes are left out of SentencePiece training (its default is 4192: documents
# of summarization corpora would be dropped).
_MAX_SENTENCE_BYTES = 1 << 16
_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
_TOO_LOW = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


class VocabularySizeError(ConfigError):
    """The asked SentencePiece vocabulary size is more (or less) than the training data allows.

    Attributes:
        requested: The size asked for.
        bound: The most (``too_large``) or the least the data allows, special tokens included.
        too_large: Whether ``requested`` is above the most rather than below the least.
    """

    def __init__(self, requested: int, bound: int, too_large: bool, key: str = "the vocabulary size"):
        self.requested, self.bound, self.too_large = requested, bound, too_large
        limit = f"at most {bound}" if too_large else f"at least {bound} (one piece per character seen)"
        super().__init__(f"{key} is {requested}, but SentencePiece on this training data allows {limit}, "
                         "special tokens included")

    def naming(self, key: str) -> "VocabularySizeError":
        """The same error with ``key`` (e.g. ``data.source_vocab_size``) named in its message."""
        return VocabularySizeError(self.requested, self.bound, self.too_large, key)


def normalized_lines(texts: Iterable[str], lowercase: bool) -> list[str]:
    """``texts`` through the in-graph normaliser (no punctuation splitting), empty lines left out."""
    ds = tf.data.Dataset.from_generator(lambda: iter(texts), output_signature=tf.TensorSpec([], tf.string))
    lines = []
    for batch in ds.batch(2048):
        lines += [t.decode("utf-8") for t in normalize(batch, lowercase, split_punctuation=False).numpy() if t]
    return lines


def train_sentencepiece(lines: list[str], vocab_size: int, model_type: str = "unigram", seed: int = 0) -> bytes:
    """Learns a SentencePiece model from normalised ``lines``; returns its serialized proto.

    Deterministic for the same lines, size and seed (one training thread; every line is used).

    Raises:
        VocabularySizeError: ``vocab_size`` is more than the data supports, or fewer than its characters.
        ConfigError: ``model_type`` is not ``unigram`` or ``bpe``, or there is no text to learn from.
    """
    import sentencepiece as spm  # needed only by runs that learn a SentencePiece model

    if model_type not in SUBWORD_MODELS:
        raise ConfigError(f"data.subword_model must be one of {', '.join(SUBWORD_MODELS)}, got {model_type!r}")
    if not lines:
        raise ConfigError("no training text to learn a SentencePiece model from")
    spm.set_random_generator_seed(seed)
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type=model_type,
            pad_id=F.PAD_ID, unk_id=F.UNK_ID, bos_id=F.BOS_ID, eos_id=F.EOS_ID, pad_piece=F.PAD,
            unk_piece=F.UNK, bos_piece=F.BOS, eos_piece=F.EOS, character_coverage=1.0,
            normalization_rule_name="identity", split_digits=True, num_threads=1,
            max_sentence_length=_MAX_SENTENCE_BYTES, minloglevel=2)
    except RuntimeError as error:
        for pattern, too_large in ((_TOO_HIGH, True), (_TOO_LOW, False)):
            found = pattern.search(str(error))
            if found:
                bound = int(found.group(2))
                raise VocabularySizeError(vocab_size, bound, too_large) from None
        raise
    return model.getvalue()


def _pieces(model: bytes) -> list[str]:
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_proto=model)
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]


def model_path_for(vocab_path: str) -> str:
    """The model file beside a vocabulary file: ``x_vocab.txt`` -> ``x_sentencepiece.model``."""
    if vocab_path.endswith("_vocab.txt"):
        return vocab_path[: -len("_vocab.txt")] + "_sentencepiece.model"
    return os.path.splitext(vocab_path)[0] + ".model"


class SentencePieceTokenizer(Tokenizer):
    """SentencePiece subwords (unigram or BPE) in-graph with tensorflow-text's ``SentencepieceTokenizer``.

    ``tokenize(portable=True)`` (the graphs converted to ONNX) creates the model inside the traced function from
    the raw ``SentencepieceOp``, which tf2onnx turns into onnxruntime-extensions' ``SentencepieceTokenizer``; a
    tracked tensorflow-text tokenizer (a captured resource) does not convert. Both give the same ids.

    Args:
        model_path: The SentencePiece model file (ids 0-3 = ``<pad> <unk> <s> </s>``).
        vocab_path: Its pieces, one a line (``write_vocab``): the table behind ``detokenize`` and ``id_tokens``.
        lowercase: Lowercase before tokenizing (the model was learned from lowercased text).
        name: Module name (``source_tokenizer``/``target_tokenizer``).
        subword_model: ``unigram`` or ``bpe`` (recorded in ``get_config``).
        shared: The model is shared by source and target (recorded in ``get_config``).
    """

    kind = "sentencepiece"

    def __init__(self, model_path: str, vocab_path: str, lowercase: bool = False, name: str | None = None,
                 subword_model: str = "unigram", shared: bool = False):
        super().__init__(vocab_path, lowercase, name)
        import tensorflow_text as text  # imported lazily like WordPiece's: other tokenizers need not load its ops

        with open(model_path, "rb") as f:
            self.model = f.read()
        self.model_path = model_path
        self.model_asset = tf.saved_model.Asset(model_path)  # the file itself travels with an export
        self.subword_model = subword_model
        self.shared = shared
        self._sentencepiece = text.SentencepieceTokenizer(self.model, out_type=tf.int32)

    def tokenize(self, texts, portable: bool = False):
        texts = normalize(texts, self.lowercase, portable, split_punctuation=False)
        if portable:
            from tensorflow_text.python.ops.sentencepiece_tokenizer import gen_sentencepiece_tokenizer as ops

            model = ops.sentencepiece_op(model=self.model)
            values, splits = ops.sentencepiece_tokenize_op(model, texts, 0, 1.0, False, False, False,
                                                           out_type=tf.int32)
            ids = tf.RaggedTensor.from_row_splits(values, splits, validate=False)
        else:
            ids = self._sentencepiece.tokenize(texts)
        ids = tf.cast(ids, tf.int64)
        # SentencePiece never emits <pad>/<s>/</s> for text; kept as the other tokenizers' guarantee.
        unk = tf.constant(F.UNK_ID, tf.int64)
        return tf.ragged.map_flat_values(lambda x: tf.where(x < len(F.SPECIAL_TOKENS), unk, x), ids)

    def detokenize(self, ids):
        pieces = self.id_to_token.lookup(tf.cast(ids, tf.int64))
        pieces = tf.where(output_mask(ids), pieces, tf.constant(""))
        texts = tf.strings.reduce_join(pieces, axis=1)  # dense: a ragged reduce_join has no ONNX equivalent
        texts = tf.strings.regex_replace(texts, SPACE, " ")
        texts = tf.strings.regex_replace(texts, " +", " ")
        return tf.strings.regex_replace(texts, "^ | $", "")

    def get_config(self) -> dict:
        return {**super().get_config(), "subword_model": self.subword_model, "shared": self.shared}

    def save(self, directory: str, prefix: str) -> None:
        """Writes ``<prefix>_sentencepiece.model``, ``<prefix>_vocab.txt`` and ``<prefix>_tokenizer.json``."""
        super().save(directory, prefix)
        target = os.path.join(directory, f"{prefix}_sentencepiece.model")
        if os.path.abspath(target) != os.path.abspath(self.model_path):
            shutil.copyfile(self.model_path, target)

    @classmethod
    def learn(cls, texts: Iterable[str], vocab_path: str, vocab_size: int, lowercase: bool = False,
              name: str | None = None, subword_model: str = "unigram", seed: int = 0,
              shared: bool = False) -> "SentencePieceTokenizer":
        """Learns a model from ``texts``, writes it beside ``vocab_path`` (``model_path_for``) with its pieces.

        Raises:
            VocabularySizeError: See ``train_sentencepiece``.
        """
        model = train_sentencepiece(normalized_lines(texts, lowercase), vocab_size, subword_model, seed)
        pieces = _pieces(model)
        if tuple(pieces[: len(F.SPECIAL_TOKENS)]) != F.SPECIAL_TOKENS:  # our bug, not the user's
            raise AssertionError(f"SentencePiece ids 0-3 are {pieces[:4]}, not {F.SPECIAL_TOKENS}")
        write_vocab(pieces, vocab_path)
        model_path = model_path_for(vocab_path)
        with open(model_path, "wb") as f:
            f.write(model)
        return cls(model_path, vocab_path, lowercase, name, subword_model, shared)

    @classmethod
    def load(cls, directory: str, prefix: str, config: dict) -> "SentencePieceTokenizer":
        """The tokenizer ``save(directory, prefix)`` wrote (``config``: its ``<prefix>_tokenizer.json``)."""
        return cls(os.path.join(directory, f"{prefix}_sentencepiece.model"),
                   os.path.join(directory, f"{prefix}_vocab.txt"), config["lowercase"], f"{prefix}_tokenizer",
                   config.get("subword_model", "unigram"), config.get("shared", False))


def read_tokenizer_config(directory: str, prefix: str) -> dict:
    """``<prefix>_tokenizer.json`` of ``directory``.

    Raises:
        FileNotFoundError: There is none.
    """
    path = os.path.join(directory, f"{prefix}_tokenizer.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no tokenizer {prefix!r} in {directory} (expected {path})")
    with open(path, encoding="utf-8") as f:
        return json.load(f)
