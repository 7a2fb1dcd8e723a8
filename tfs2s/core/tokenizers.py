"""In-graph tokenizers: word level and tensorflow-text WordPiece.

Both normalise and split text with core TF string ops, map tokens to ids through a hash table read from a
vocabulary file (one token a line, line number = id), and turn ids back into text. Everything runs inside a
``tf.function``, so the same code serves ``tf.data`` pipelines and exported signatures; the vocabulary file
becomes a SavedModel asset when the tokenizer is saved as part of a ``tf.Module``.

Ids 0-3 are ``<pad> <unk> <s> </s>`` for every tokenizer (see ``tfs2s.core.features``).
"""

from __future__ import annotations

import collections
import json
import os
import uuid
from typing import Iterable

import tensorflow as tf

from tfs2s.core import features as F

# Punctuation (anything that is neither a letter, a digit, whitespace nor an apostrophe) becomes its own token.
# RE2's \w is ASCII-only, so Unicode classes keep umlauts and accents inside words.
_PUNCT = r"([^\pL\pN\s\p{Z}'])"
# Typographic apostrophes in English contractions ("I’m", DailyDialog's "I ’ m", phone keyboards' smart quotes)
# become the ASCII one, so "I’m" and "I'm" are one token; a ’ elsewhere (a closing quote) stays punctuation.
_CONTRACTION = r"(\pL) ?[\x{2019}\x{02BC}] ?((?i:s|t|m|d|ll|re|ve|clock))\b"
_DETOK_CLOSE = r" ([.,!?;:%)\]}])"
_DETOK_OPEN = r"([(\[{¿¡]) "  # Spanish opening marks attach to the next word: "¿Cómo está?"

# Versions of the word-level rules (``Tokenizer.rules``, saved in ``<prefix>_tokenizer.json``). A saved tokenizer
# without the key uses rules 1, so the runs and exports made before rules 2 keep their tokens.
#   1: punctuation split off everywhere; "T-shirt" -> "T - shirt", detokenized "T - shirt".
#   2: in-word hyphens and separators become joiner tokens ("T @-@ shirt", "3 @.@ 14"; Moses' aggressive hyphen
#      splitting), which detokenization glues back, and it pairs quotes, so that detokenize(tokenize(x)) == x for
#      99.8-100 % of the Multi30k references, train, val and test, English and German (rules 1: 88-96 %).
RULES = 2
# Rules 2 joiner tokens (each is its own token; detokenization glues it to its neighbours):
#   "@-@" between any character and a letter/digit ("T-shirt", "„Open“-Anzeige", "Dr.-Seuss"),
#   "@/@" "@.@" between two letters/digits ("Freund/in", "U.S.", "3.14"), "@,@" "@:@" between two digits
#   ("1,000", "10:30"), "@-" for a hyphen after a word and before no word ("Obst- und Gemüse", "rot-, weiß-"),
#   "-@" "#@" before a word after a space ("und -untergang", "-42", "#19").
# The in-word ones are applied twice: a match consumes the character after the separator ("a-b-c", "U.S.A.").
_JOINED = ((r"([^\s\p{Z}])-([\pL\pN])", r"\1 @-@ \2"), (r"([\pL\pN])([/.])([\pL\pN])", r"\1 @\2@ \3"),
           (r"(\pN)([,:])(\pN)", r"\1 @\2@ \3"))
_GLUE_LEFT = (r"([\pL\pN])-([^\pL\pN]|$)", r"\1 @- \2")
_GLUE_RIGHT = (r"(^| )([-#])([\pL\pN])", r"\1\2@ \3")
# Rules 2 punctuation split: a joiner token stays whole (RE2 takes the first alternative that matches here).
_PUNCT_2 = r"(@[-/.,:]@|@-|[-#]@|[^\pL\pN\s\p{Z}'])"
_DETOK_JOINERS = ((r" ?@([-/.,:])@ ?", r"\1"), (r" @-", "-"), (r"([-#])@ ", r"\1"))
# Quotes, paired left to right: the first of a pair attaches to the next token, the second to the previous one
# ('says " Asian Pacific " and' -> 'says "Asian Pacific" and'); an unpaired quote stays spaced. German „…“
# before English “…”, whose opening mark is the German closing one.
_DETOK_QUOTES = ((r'" ([^"]*) "', r'"\1"'), (r"„ ([^“]*) “", r"„\1“"), (r"“ ([^”]*) ”", r"“\1”"),
                 (r"‘ ([^’]*) ’", r"‘\1’"))


def normalize(texts: tf.Tensor, lowercase: bool = False, portable: bool = False,
              split_punctuation: bool = True, rules: int = RULES) -> tf.Tensor:
    """Cleans a ``[batch]`` string tensor: valid UTF-8, punctuation split off, single spaces, no edges.

    ``portable=True`` leaves out the steps that have no portable ONNX equivalent, the UTF-8 repair and the
    lowercasing (onnxruntime's StringNormalizer needs an installed ``en_US.UTF-8`` locale): for graphs converted
    to ONNX, whose host code must pass valid, already lowercased UTF-8 (``tfs2s.export.onnx.runtime`` does).
    ``rules`` selects the version of the punctuation rules (see ``RULES``).
    """
    if not portable:
        texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
    if lowercase and not portable:
        texts = tf.strings.lower(texts, encoding="utf-8")
    return apply_steps(texts, normalize_steps(split_punctuation, rules))


def normalize_steps(split_punctuation: bool = True, rules: int = RULES) -> tuple[tuple[str, str], ...]:
    """The ``(RE2 pattern, rewrite)`` steps of ``normalize`` after UTF-8 repair and lowercasing, in order.

    ``normalize`` runs exactly these (``apply_steps``), and exports describe the tokenizer with them
    (``tfs2s.export.tokenization``), so a client in another language cannot drift from the graph.
    """
    # RE2's \s is ASCII-only: fold every Unicode separator (e.g. U+00A0, in Multi30k) and control character.
    steps = [(r"[\s\p{Z}\p{Cc}]+", " ")]
    if split_punctuation:
        steps.append((_CONTRACTION, r"\1'\2"))
        if rules >= 2:
            steps.extend(_JOINED + _JOINED + (_GLUE_LEFT, _GLUE_RIGHT))
        steps.append((_PUNCT_2 if rules >= 2 else _PUNCT, r" \1 "))
        steps.append((r" +", " "))
    # `tf.strings.strip` does not convert to ONNX; a regex does.
    steps.append((r"^ | $", ""))
    return tuple(steps)


def apply_steps(texts: tf.Tensor, steps: Iterable[tuple[str, str]]) -> tf.Tensor:
    """Runs ``(pattern, rewrite)`` regex replacements (every match, RE2 syntax) on ``texts`` in order."""
    for pattern, rewrite in steps:
        texts = tf.strings.regex_replace(texts, pattern, rewrite)
    return texts


def split_words(texts: tf.Tensor) -> tf.RaggedTensor:
    """Splits normalised ``[batch]`` text on single spaces into ``[batch, (words)]``.

    Normalised text has no double or edge spaces, so the only empty "word" is an empty text's. It becomes
    ``<pad>``, which every lookup maps to id 0 and then drops (string length/equality ops have no ONNX
    equivalent; a regex and an integer comparison do).
    """
    words = tf.strings.split(texts, sep=" ")
    return tf.ragged.map_flat_values(tf.strings.regex_replace, words, "^$", F.PAD)


def _drop_padding(ids: tf.RaggedTensor) -> tf.RaggedTensor:
    return tf.ragged.boolean_mask(ids, tf.not_equal(ids, tf.constant(F.PAD_ID, ids.dtype)))


def join_tokens(tokens: tf.Tensor, wordpiece: bool = False, rules: int = RULES) -> tf.Tensor:
    """Joins dense ``[batch, time]`` token strings ("" = nothing) into text and re-attaches punctuation.

    Dense on purpose: a ragged ``reduce_join`` has no ONNX equivalent. ``rules``: as in ``normalize``.
    """
    texts = tf.strings.reduce_join(tokens, axis=1, separator=" ")
    return apply_steps(texts, join_steps(wordpiece, rules))


def join_steps(wordpiece: bool = False, rules: int = RULES) -> tuple[tuple[str, str], ...]:
    """The ``(RE2 pattern, rewrite)`` steps of ``join_tokens`` after joining the tokens with spaces, in order."""
    steps = [(" +", " "), ("^ | $", "")]
    if wordpiece:
        steps.append((r" ##", ""))  # glue continuation pieces
    if rules >= 2:
        steps.extend(_DETOK_JOINERS + _DETOK_QUOTES)
    steps.extend(((_DETOK_CLOSE, r"\1"), (_DETOK_OPEN, r"\1")))
    return tuple(steps)


def output_mask(ids: tf.Tensor) -> tf.Tensor:
    """``[batch, time]`` bool: True for tokens before the first ``</s>`` that are not ``<pad>``/``<s>``."""
    ids = tf.cast(ids, tf.int64)
    before_eos = tf.equal(tf.cumsum(tf.cast(tf.equal(ids, F.EOS_ID), tf.int32), axis=1), 0)
    return tf.logical_and(before_eos, tf.logical_and(tf.not_equal(ids, F.PAD_ID), tf.not_equal(ids, F.BOS_ID)))


def _no_special_ids(ids: tf.RaggedTensor) -> tf.RaggedTensor:
    """Maps ids of special tokens to ``<unk>``: text that spells ``<s>`` must not act as one."""
    unk = tf.constant(F.UNK_ID, tf.int64)
    return tf.ragged.map_flat_values(lambda x: tf.where(x < len(F.SPECIAL_TOKENS), unk, x), ids)


def read_vocab(path: str) -> list[str]:
    """Reads a vocabulary file written by ``write_vocab``."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def write_vocab(tokens: Iterable[str], path: str) -> str:
    """Writes one token a line, special tokens first, and returns the path."""
    tokens = [t for t in tokens if t not in F.SPECIAL_TOKENS]
    for token in tokens:
        if not token or any(c.isspace() for c in token):
            raise ValueError(f"vocabulary token {token!r} is empty or holds whitespace")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(list(F.SPECIAL_TOKENS) + tokens) + "\n")
    return path


def count_words(texts: Iterable[str], lowercase: bool, rules: int = RULES) -> collections.Counter:
    """Counts normalised words with the in-graph normaliser, so counting and tokenizing always agree."""
    counts: collections.Counter = collections.Counter()
    ds = tf.data.Dataset.from_generator(lambda: iter(texts), output_signature=tf.TensorSpec([], tf.string))
    for batch in ds.batch(2048):
        words = split_words(normalize(batch, lowercase, rules=rules))
        counts.update(w for w in (x.decode("utf-8") for x in words.flat_values.numpy()) if w != F.PAD)
    return counts


class _VocabularyFileInitializer(tf.lookup.TextFileInitializer):
    """``TextFileInitializer`` whose table has a name of its own.

    TensorFlow names (and shares) a text-file table after ``str(filename)``; for a ``tf.saved_model.Asset`` that
    string holds the object's memory address, which a later Asset reuses once the first is freed. The new table
    then silently reads the old table's vocabulary (in one process: tests, a server loading two exports). A
    random suffix keeps each vocabulary's tables apart.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._unique_suffix = uuid.uuid4().hex

    @property
    def _shared_name(self):
        return f"{super()._shared_name}_{self._unique_suffix}"


class Tokenizer(tf.Module):
    """Base class: in-graph text <-> ids over a vocabulary file.

    Subclasses define ``tokenize(texts [batch], portable=False) -> [batch, (tokens)] int64 ids`` (no
    ``<s>``/``</s>``; see ``normalize`` for ``portable``) and
    ``detokenize(ids [batch, time]) -> [batch] text`` (cut at the first ``</s>``).

    Args:
        vocab_path: Vocabulary file (special tokens on lines 0-3).
        lowercase: Lowercase before tokenizing.
        name: Module name (``source_tokenizer``/``target_tokenizer``).
        rules: Version of the word-level normalisation and detokenization rules (see ``RULES``): the newest for
            a new tokenizer; ``load_tokenizer`` passes the saved one (1 where the file predates the key).
    """

    kind = "base"

    def __init__(self, vocab_path: str, lowercase: bool = False, name: str | None = None, rules: int = RULES):
        super().__init__(name=name)
        if not os.path.exists(vocab_path):
            raise FileNotFoundError(f"vocabulary file not found: {vocab_path}")
        if rules not in range(1, RULES + 1):
            raise ValueError(f"tokenizer rules {rules!r} are not known to this version of tfs2s (1 to {RULES})")
        self.lowercase = lowercase
        self.rules = rules
        self.vocab_path = vocab_path
        vocab = read_vocab(vocab_path)
        if tuple(vocab[: len(F.SPECIAL_TOKENS)]) != F.SPECIAL_TOKENS:
            raise ValueError(f"{vocab_path} must start with the special tokens {F.SPECIAL_TOKENS}")
        self.vocab_size = len(vocab)
        # A tf.saved_model.Asset makes the vocabulary travel with an export.
        self.vocab_asset = tf.saved_model.Asset(vocab_path)
        self.token_to_id = tf.lookup.StaticHashTable(
            _VocabularyFileInitializer(self.vocab_asset, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                       tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER),
            default_value=F.UNK_ID)
        self.id_to_token = tf.lookup.StaticHashTable(
            _VocabularyFileInitializer(self.vocab_asset, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
                                       tf.string, tf.lookup.TextFileIndex.WHOLE_LINE),
            default_value=F.UNK)

    def _lookup(self, tokens: tf.RaggedTensor) -> tf.RaggedTensor:
        return _no_special_ids(_drop_padding(tf.ragged.map_flat_values(self.token_to_id.lookup, tokens)))

    def dense_tokens(self, ids: tf.Tensor) -> tf.Tensor:
        """``[batch, time]`` ids -> ``[batch, time]`` token strings, "" after ``</s>`` and for ``<pad>``/``<s>``."""
        tokens = self.id_to_token.lookup(tf.cast(ids, tf.int64))
        return tf.where(output_mask(ids), tokens, tf.constant(""))

    def id_tokens(self, ids: tf.Tensor) -> tf.RaggedTensor:
        """``[batch, time]`` ids -> ``[batch, (tokens)]`` token strings, cut at ``</s>``."""
        return tf.ragged.boolean_mask(self.id_to_token.lookup(tf.cast(ids, tf.int64)), output_mask(ids))

    def get_config(self) -> dict:
        """What ``load_tokenizer`` needs besides the vocabulary file."""
        return {"kind": self.kind, "lowercase": self.lowercase, "rules": self.rules}

    def save(self, directory: str, prefix: str) -> None:
        """Writes ``<prefix>_vocab.txt`` and ``<prefix>_tokenizer.json`` into ``directory``."""
        os.makedirs(directory, exist_ok=True)
        target = os.path.join(directory, f"{prefix}_vocab.txt")
        if os.path.abspath(target) != os.path.abspath(self.vocab_path):
            write_vocab(read_vocab(self.vocab_path), target)
        with open(os.path.join(directory, f"{prefix}_tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(self.get_config(), f, indent=2)


class WordTokenizer(Tokenizer):
    """Whole-word tokenizer: normalise, split on spaces, hash-table lookup (unknown words -> ``<unk>``)."""

    kind = "word"

    def tokenize(self, texts, portable: bool = False):
        return self._lookup(self.words(texts, portable))

    def words(self, texts, portable: bool = False) -> tf.RaggedTensor:
        """``[batch, (words)]``: the words that ``tokenize`` maps to ids, one per id (an empty text's one
        ``<pad>`` word aside)."""
        return split_words(normalize(texts, self.lowercase, portable, rules=self.rules))

    def join(self, tokens):
        """Dense ``[batch, time]`` token strings ("" = nothing) -> ``[batch]`` text."""
        return join_tokens(tokens, rules=self.rules)

    def detokenize(self, ids):
        return self.join(self.dense_tokens(ids))

    @staticmethod
    def learn_vocab(texts: Iterable[str], vocab_size: int, min_frequency: int = 1,
                    lowercase: bool = False) -> list[str]:
        """Most frequent words seen at least ``min_frequency`` times, at most ``vocab_size`` minus specials."""
        counts = count_words(texts, lowercase)
        words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_frequency]
        return words[: max(0, vocab_size - len(F.SPECIAL_TOKENS))]


class WordPieceTokenizer(Tokenizer):
    """Subword tokenizer: the word split above, then tensorflow-text's WordPiece (``##`` continuation pieces).

    Uses ``text.WordpieceTokenizer`` rather than ``FastWordpieceTokenizer`` because only the former converts
    to ONNX (onnxruntime-extensions).
    """

    kind = "wordpiece"

    def __init__(self, vocab_path: str, lowercase: bool = False, name: str | None = None, rules: int = RULES):
        super().__init__(vocab_path, lowercase, name, rules)
        import tensorflow_text as text  # imported lazily: word-level users need not load its ops

        self._wordpiece = text.WordpieceTokenizer(self.token_to_id, suffix_indicator="##",
                                                  token_out_type=tf.int64, unknown_token=F.UNK)

    def tokenize(self, texts, portable: bool = False):
        words = split_words(normalize(texts, self.lowercase, portable, rules=self.rules))
        pieces = self._wordpiece.tokenize(words)
        return _no_special_ids(_drop_padding(pieces.merge_dims(1, 2)))

    def join(self, tokens):
        """Dense ``[batch, time]`` pieces ("" = nothing) -> ``[batch]`` text (``##`` pieces glued on)."""
        return join_tokens(tokens, wordpiece=True, rules=self.rules)

    def detokenize(self, ids):
        return self.join(self.dense_tokens(ids))

    @staticmethod
    def learn_vocab(texts: Iterable[str], vocab_size: int, min_frequency: int = 1,
                    lowercase: bool = False) -> list[str]:
        """Learns WordPiece pieces (tensorflow-text's learner) from the normalised words of ``texts``."""
        from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

        counts = count_words(texts, lowercase)
        pieces = learner.learn(sorted(counts.items()), vocab_size=vocab_size,
                               reserved_tokens=list(F.SPECIAL_TOKENS), lower_thresh=max(1, min_frequency),
                               include_joiner_token=True)
        return [p for p in pieces if p not in F.SPECIAL_TOKENS]


class CharTokenizer(Tokenizer):
    """Character tokenizer (image-to-text such as captchas, where the characters are the units).

    Whitespace runs become one ``▁`` (U+2581) token, so a vocabulary file can hold it on a line.
    """

    kind = "char"
    SPACE = "\u2581"

    def tokenize(self, texts, portable: bool = False):
        texts = normalize(texts, self.lowercase, portable, split_punctuation=False)
        texts = tf.strings.regex_replace(texts, " ", self.SPACE)
        return self._lookup(tf.strings.unicode_split(texts, "UTF-8"))

    def detokenize(self, ids):
        texts = tf.strings.reduce_join(self.dense_tokens(ids), axis=1)
        return tf.strings.regex_replace(texts, self.SPACE, " ")

    @staticmethod
    def learn_vocab(texts: Iterable[str], vocab_size: int, min_frequency: int = 1,
                    lowercase: bool = False) -> list[str]:
        """Most frequent characters (whitespace as ``▁``) seen at least ``min_frequency`` times."""
        counts: collections.Counter = collections.Counter()
        for text in texts:
            text = " ".join(text.lower().split() if lowercase else text.split())
            counts.update(text.replace(" ", CharTokenizer.SPACE))
        chars = [c for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_frequency]
        return chars[: max(0, vocab_size - len(F.SPECIAL_TOKENS))]


TOKENIZERS = {cls.kind: cls for cls in (WordTokenizer, WordPieceTokenizer, CharTokenizer)}


def learn_tokenizer(kind: str, texts: Iterable[str], vocab_path: str, vocab_size: int,
                    min_frequency: int = 1, lowercase: bool = False, name: str | None = None) -> Tokenizer:
    """Learns a vocabulary from ``texts``, writes it to ``vocab_path`` and returns the tokenizer."""
    if kind not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {kind!r}; choose one of {', '.join(TOKENIZERS)}")
    cls = TOKENIZERS[kind]
    tokens = cls.learn_vocab(list(texts), vocab_size, min_frequency, lowercase)
    write_vocab(tokens, vocab_path)
    return cls(vocab_path, lowercase=lowercase, name=name)


def load_tokenizer(directory: str, prefix: str) -> Tokenizer:
    """Loads a tokenizer saved by ``Tokenizer.save``."""
    config_path = os.path.join(directory, f"{prefix}_tokenizer.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"no tokenizer {prefix!r} in {directory} (expected {config_path})")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    cls = TOKENIZERS[config["kind"]]
    return cls(os.path.join(directory, f"{prefix}_vocab.txt"), lowercase=config["lowercase"],
               name=f"{prefix}_tokenizer", rules=config.get("rules", 1))
