"""Line-aligned text pairs on disk: two parallel files, or one tab-separated file.

Both readers open plain or ``.gz`` files, skip pairs with an empty side (counted in the log) and fail with a
``DataError`` naming the file, and the line where the format allows.
"""

from __future__ import annotations

import gzip
import logging
import os
from typing import Iterable

from tfs2s.core.errors import DataError

logger = logging.getLogger(__name__)

Pair = tuple[str, str]


def open_text(path: str):
    """Opens a UTF-8 text file for reading, gunzipping it when its name ends with ``.gz``."""
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_lines(path: str) -> list[str]:
    """The lines of a text file (plain or ``.gz``) without their line endings."""
    with open_text(path) as f:
        return [line.rstrip("\n").rstrip("\r") for line in f]


def read_parallel(source_path: str, target_path: str, limit: int = 0) -> list[Pair]:
    """Reads two line-aligned files (plain or ``.gz``) into ``(source, target)`` pairs.

    Pairs where either side is empty or whitespace are skipped and counted in the log.

    Raises:
        DataError: A file is missing, or the two files have different line counts (both named, with counts).
    """
    for path in (source_path, target_path):
        if not os.path.exists(path):
            raise DataError(f"parallel file not found: {path}")
    sources, targets = read_lines(source_path), read_lines(target_path)
    if len(sources) != len(targets):
        raise DataError(f"parallel files differ in length: {source_path} has {len(sources)} lines, "
                        f"{target_path} has {len(targets)} lines")
    return keep_nonempty(zip(sources, targets), f"{source_path} / {target_path}", limit)


def read_tsv_pairs(path: str, source_column: int, target_column: int, limit: int = 0) -> list[Pair]:
    """Reads tab-separated pairs (e.g. Anki ``English<TAB>Spanish``).

    Raises:
        DataError: The file is missing, or a line has too few columns (file and line number named).
    """
    if not os.path.exists(path):
        raise DataError(f"file not found: {path}")
    rows = []
    with open_text(path) as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                rows.append(("", ""))
                continue
            fields = line.split("\t")
            if len(fields) <= max(source_column, target_column):
                raise DataError(f"{path}:{number}: expected at least {max(source_column, target_column) + 1} "
                                f"tab-separated columns, found {len(fields)}")
            rows.append((fields[source_column], fields[target_column]))
    return keep_nonempty(rows, path, limit)


def keep_nonempty(pairs: Iterable[Pair], where: str, limit: int) -> list[Pair]:
    """The pairs with two non-blank sides (at most ``limit``; 0 = all); logs how many were skipped in ``where``."""
    kept, skipped = [], 0
    for source, target in pairs:
        if not source.strip() or not target.strip():
            skipped += 1
            continue
        kept.append((source, target))
        if limit and len(kept) >= limit:
            break
    if skipped:
        logger.warning("skipped %d pair(s) with an empty side in %s", skipped, where)
    return kept
