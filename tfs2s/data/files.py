"""A user's own text files as ``(source, target)`` pairs: ``data.corpus: files``.

Each split (``data.train``, ``data.validation``, ``data.test``) names one file or two line-aligned files:

* two files ``[train.vi, train.en]`` (plain or ``.gz``): line *i* of the first is the source of line *i* of the
  second; pairs with an empty side are dropped (alignment is kept);
* one ``.tsv`` (or ``.tsv.gz``): ``source<TAB>target`` a line (dialogue ``context<TAB>response``, summarization
  ``document<TAB>summary``); blank lines are skipped;
* one ``.jsonl`` / ``.json`` (or ``.gz``), JSON lines: each line an object (``{"source", "target"}``,
  ``{"document", "summary"}`` or ``{"context", "response"}``) or a list of turns, one conversation a line, which
  becomes (context -> response) examples through ``tfs2s.data.dialogue.make_examples``; blank lines are skipped.

A split without files is held out of ``data.train``: ``data.validation_fraction`` of it for validation and
``data.test_fraction`` for test (no test split when 0). Which examples are held out depends only on their text
and ``data.seed`` (a sha256 of both, as in ``tfs2s.data.splits``, at a finer grain), so the same config always
gives the same disjoint splits; a conversation is held out whole, and equal sources always share a split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Sequence

from tfs2s.core.errors import DataError
from tfs2s.data.dialogue import make_examples
from tfs2s.data.parallel import Pair, keep_nonempty, open_text, read_parallel

logger = logging.getLogger(__name__)

# ``data.corpus`` value that selects this reader.
NAME = "files"

# Object keys accepted in JSON lines, as (source key, target key).
JSON_KEYS = (("source", "target"), ("document", "summary"), ("context", "response"))

SPLITS = ("train", "validation", "test")

# An example unit: the key it is split by and the pairs it gives (a conversation gives several).
Unit = tuple[str, list[Pair]]


def _strip_gz(path: str) -> str:
    return path[: -len(".gz")] if path.endswith(".gz") else path


def _require(path: str, key: str) -> None:
    if not os.path.exists(path):
        raise DataError(f"{key}: file not found: {path}")


def read_tsv(path: str) -> list[Unit]:
    """``source<TAB>target`` lines; blank lines are skipped, pairs with an empty side dropped (and logged).

    Raises:
        DataError: A non-blank line without exactly one tab (the file and 1-based line named).
    """
    rows = []
    with open_text(path) as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != 2:
                raise DataError(f"{path}:{number}: expected source<TAB>target (one tab), found {len(fields) - 1} "
                                f"tab(s): {line[:80]!r}")
            rows.append((fields[0], fields[1]))
    return [(source, [(source, target)]) for source, target in keep_nonempty(rows, path, 0)]


def _object_pair(value: dict, where: str, context_turns: int, separator: str) -> Pair:
    """The (source, target) of one JSON object; a ``context`` list keeps its last ``context_turns`` turns."""
    found = [keys for keys in JSON_KEYS if keys[0] in value and keys[1] in value]
    if len(found) != 1:
        expected = " or ".join("{%r, %r}" % keys for keys in JSON_KEYS)
        raise DataError(f"{where}: expected an object with the keys {expected}, got keys {sorted(value)}")
    source, target = (value[k] for k in found[0])
    if isinstance(source, list) and found[0][0] == "context" and all(isinstance(t, str) for t in source):
        source = f" {separator} ".join([t for t in source if t.strip()][-context_turns:])
    if not isinstance(source, str) or not isinstance(target, str):
        raise DataError(f"{where}: {found[0][0]!r} and {found[0][1]!r} must be strings"
                        + (" (a 'context' may be a list of strings)" if found[0][0] == "context" else ""))
    return source, target


def read_jsonl(path: str, context_turns: int, separator: str) -> list[Unit]:
    """JSON lines: objects (one pair each) or lists of turns (one conversation each, ``make_examples``).

    Raises:
        DataError: A line that is not JSON, or neither such an object nor a list of at least two strings (the
            file and 1-based line named).
    """
    units: list[Unit] = []
    skipped = 0
    with open_text(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{where}: not valid JSON ({err.msg}); expected one JSON object or list of turns "
                                f"a line (JSON lines)") from None
            if isinstance(value, dict):
                pair = _object_pair(value, where, context_turns, separator)
                if pair[0].strip() and pair[1].strip():
                    units.append((pair[0], [pair]))
                else:
                    skipped += 1
            elif isinstance(value, list) and len(value) >= 2 and all(isinstance(t, str) for t in value):
                units.append(("\n".join(value), make_examples([value], context_turns, separator)))
            else:
                raise DataError(f"{where}: expected an object ({', '.join('/'.join(k) for k in JSON_KEYS)}) or a "
                                f"list of at least two strings (a conversation), got {type(value).__name__}"
                                + (f" of {len(value)}" if isinstance(value, list) else ""))
    if skipped:
        logger.warning("skipped %d object(s) with an empty side in %s", skipped, path)
    return units


def read_units(paths: Sequence[str], key: str, context_turns: int, separator: str) -> list[Unit]:
    """The examples of one split's files (``key``: the config key naming them, for messages).

    Raises:
        DataError: A missing file, a single file of an unknown kind, or bad content (see the readers).
    """
    for path in paths:
        _require(path, key)
    if len(paths) == 2:
        try:
            pairs = read_parallel(paths[0], paths[1])
        except DataError as err:
            raise DataError(f"{key}: {err}") from None
        return [(source, [(source, target)]) for source, target in pairs]
    if len(paths) != 1:
        raise DataError(f"{key} names one file or two line-aligned files (source, target), got {len(paths)}")
    path = paths[0]
    kind = os.path.splitext(_strip_gz(path))[1].lower()
    if kind == ".tsv":
        return read_tsv(path)
    if kind in (".jsonl", ".json"):
        return read_jsonl(path, context_turns, separator)
    raise DataError(f"{key}: cannot read {path}: one file must be .tsv (source<TAB>target) or .jsonl/.json "
                    f"(JSON lines), plain or .gz; plain text needs two line-aligned files [source, target]")


def held_out_share(key: str, seed: int) -> float:
    """A number in ``[0, 1)`` fixed by ``key`` and ``seed`` (the first 8 bytes of ``sha256("<seed>:<key>")``)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def assign_split(key: str, seed: int, validation: float, test: float) -> str:
    """``validation`` below the ``validation`` share, ``test`` in the next ``test`` share, else ``train``."""
    share = held_out_share(key, seed)
    return "validation" if share < validation else "test" if share < validation + test else "train"


def load_split(data, split: str, limit: int = 0) -> list[Pair]:
    """One split of a ``files`` corpus (``data``: a ``DataConfig``) as ``(source, target)`` pairs.

    Args:
        data: The ``DataConfig``: ``train`` / ``validation`` / ``test`` files, the held-out fractions, ``seed``,
            and the dialogue options ``context_turns`` and ``turn_separator``.
        split: ``train``, ``validation`` or ``test``.
        limit: At most this many pairs (0 = all), the first in file order.

    Raises:
        DataError: An unknown split; a split with neither files nor a held-out share; a held-out split that came
            out empty; or a bad file (see ``read_units``).
    """
    if split not in SPLITS:
        raise DataError(f"a files corpus has the splits {', '.join(SPLITS)}, not {split!r}")
    if not data.train:
        raise DataError("data.corpus=files needs data.train: one file or [source file, target file]")
    own = getattr(data, split)
    options = dict(context_turns=data.context_turns, separator=data.turn_separator)
    if own and split != "train":
        units = read_units(own, f"data.{split}", **options)
    else:
        shares = {"validation": 0.0 if data.validation else data.validation_fraction,
                  "test": 0.0 if data.test else data.test_fraction}
        if split != "train" and not shares[split]:
            fraction = f"{split}_fraction"
            raise DataError(f"the files corpus has no {split} split: set data.{split} (its files) or "
                            f"data.{fraction} (a share held out of data.train; now {getattr(data, fraction)})")
        units = [u for u in read_units(data.train, "data.train", **options)
                 if assign_split(u[0], data.seed, shares["validation"], shares["test"]) == split]
        if split != "train" and not units:
            raise DataError(f"the {split} share held out of data.train ({shares[split]}) came out empty: "
                            f"data.train is too small; raise data.{split}_fraction or set data.{split}")
    pairs = [pair for _, unit_pairs in units for pair in unit_pairs]
    if not pairs:
        named = own if own else data.train
        raise DataError(f"data.{split}: no (source, target) pairs in {', '.join(named)}")
    return pairs[:limit] if limit else pairs
