"""Tokenization as data: how a client in another language tokenizes and detokenizes like an export's graph.

An export's metadata (``assets.extra/tfs2s_export.json``) holds ``host_tokenization``, built here from the very
step lists the in-graph tokenizers run (``tokenizers.normalize_steps`` / ``join_steps``), so it cannot drift from
them. ``clients/js/src/index.mjs`` implements it. Format (``version`` 1)::

    {"format": "tfs2s-tokenization", "version": 1,
     "special_ids": {"pad": 0, "unk": 1, "bos": 2, "eos": 3}, "unk_id": 1,
     "max_source_length": 50, "reverse_source": false,
     "source": SIDE, "target": SIDE}

    SIDE = {"kind": "word", "supported": true,       # false: this format does not describe the kind (see "note")
            "vocab": "source_vocab.txt",              # under the export's assets/: one token a line, line = id
            "lowercase": false, "rules": 2,
            "host": ["utf8_repair", "lowercase"],    # done before the regex steps (lowercase only if "lowercase")
            "normalize": [[pattern, rewrite], ...],   # RE2 syntax, every match replaced, in order
            "split": " ",                             # normalised text split on this; "" (empty text) -> no token
            "lookup": "unknown tokens and ids of special tokens -> unk_id",
            "detokenize": [[pattern, rewrite], ...]}  # on the kept tokens joined with " "

Source ids: tokenize, keep the first ``max_source_length - 1``, reverse if ``reverse_source``, append ``eos``,
pad with ``pad`` to the longest row (at least one column). Output ids: cut at the first ``eos``, drop ``pad`` and
``bos``, look up (out-of-range ids -> ``<unk>``), detokenize. A source of only ``eos`` translates to "".
"""

from __future__ import annotations

import os

from tfs2s.core import features as F
from tfs2s.core.tokenizers import join_steps, normalize_steps

FORMAT = "tfs2s-tokenization"
VERSION = 1
# Kinds whose whole tokenization the regex steps describe (WordPiece and SentencePiece need their own algorithms).
DESCRIBED_KINDS = {"word"}


def describe_side(tokenizer) -> dict:
    """The ``SIDE`` record of ``tokenizer`` (see the module docstring)."""
    kind = tokenizer.kind
    side = {"kind": kind, "supported": kind in DESCRIBED_KINDS, "vocab": os.path.basename(tokenizer.vocab_path),
            "lowercase": bool(tokenizer.lowercase), "rules": getattr(tokenizer, "rules", None)}
    if kind not in DESCRIBED_KINDS:
        side["note"] = (f"{kind} tokenization is not described by this format (not supported by the JS client): "
                        "use the SavedModel or the Python ONNX runtime")
        return side
    side.update({
        "host": ["utf8_repair"] + (["lowercase"] if tokenizer.lowercase else []),
        "normalize": [list(step) for step in normalize_steps(rules=tokenizer.rules)],
        "split": " ",
        "lookup": "unknown tokens and ids of special tokens -> unk_id",
        "detokenize": [list(step) for step in join_steps(rules=tokenizer.rules)],
    })
    return side


def describe(source_tokenizer, target_tokenizer, max_source_length: int, reverse_source: bool) -> dict:
    """The export's ``host_tokenization`` record (see the module docstring)."""
    return {"format": FORMAT, "version": VERSION,
            "special_ids": {"pad": F.PAD_ID, "unk": F.UNK_ID, "bos": F.BOS_ID, "eos": F.EOS_ID},
            "unk_id": F.UNK_ID, "max_source_length": int(max_source_length), "reverse_source": bool(reverse_source),
            "source": describe_side(source_tokenizer), "target": describe_side(target_tokenizer)}
