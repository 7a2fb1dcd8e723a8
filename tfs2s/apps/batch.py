"""Translating files: one output line per input line, in order, written batch by batch; scoring against a
reference file (``tfs2s.core.metrics.bleu_scores``).
"""

from __future__ import annotations

import sys
from typing import Callable, Iterator, Sequence

from tfs2s.core.errors import InputError

DEFAULT_BATCH_SIZE = 64


def read_lines(path: str) -> list[str]:
    """The lines of a UTF-8 text file without their line ends (``\\n`` or ``\\r\\n``); an empty line stays.

    Only ``\\n`` ends a line (a stray ``\\r`` inside a line does not split it), so the line numbers are those
    of ``wc -l`` and of the reference file.

    Raises:
        InputError: The file is missing, unreadable or not UTF-8 (the message names it and the line).
    """
    try:
        with open(path, encoding="utf-8", newline="\n") as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a text file") from None
    except UnicodeDecodeError as err:
        with open(path, "rb") as f:
            line = f.read()[: err.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text ({err.reason})") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror})") from None
    if lines and lines[-1] == "":
        lines.pop()  # the final line end ends the last line, it does not start another
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def check_parallel(first: tuple[str, Sequence[str]], second: tuple[str, Sequence[str]]) -> None:
    """Raises an ``InputError`` naming both files when ``(path, lines)`` pairs differ in line count."""
    (a, a_lines), (b, b_lines) = first, second
    if len(a_lines) != len(b_lines):
        raise InputError(f"{a} has {len(a_lines)} lines but {b} has {len(b_lines)}: they must be line-parallel")


def in_batches(translate: Callable[[list[str]], list[str]], lines: Sequence[str],
               batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = False) -> Iterator[list[str]]:
    """Yields ``translate`` of consecutive batches of ``lines``: one output per input, in input order.

    Args:
        translate: Batch of inputs -> one output line each.
        lines: The inputs.
        batch_size: Inputs per call of ``translate``.
        progress: Show a progress bar (tqdm, on stderr).
    """
    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_size}")
    bar = _progress_bar(len(lines), progress)
    try:
        for start in range(0, len(lines), batch_size):
            batch = list(lines[start:start + batch_size])
            out = translate(batch)
            if len(out) != len(batch):  # a bug, not the user's mistake
                raise AssertionError(f"{len(out)} outputs for {len(batch)} inputs")
            # A line end inside an output would shift every later line against its input.
            yield [line.replace("\r", " ").replace("\n", " ") for line in out]
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()


def _progress_bar(total: int, show: bool):
    if not show:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a convenience: translate without it
        return None
    return tqdm(total=total, unit="line", file=sys.stderr, dynamic_ncols=True, leave=False)

