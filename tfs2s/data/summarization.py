"""Readers of summarization corpora (document -> short summary).

Corpora (registered in ``tfs2s.data.corpora`` with languages ``("document", "summary")``; ROUGE and the
baselines are in ``tfs2s.apps.summarization``, unknown-word replacement in ``tfs2s.core.decoding.unk``):

* ``aeslc``: an Enron email body -> its subject line (official train / dev splits as train / validation; dev emails
  also carry three human-written subjects, ``read_aeslc_annotations``);
* ``gigaword_sample``: a news article's first sentence -> its headline (900 pairs: a smoke-sized corpus);
* ``bbc_news``: a BBC article's body -> its title (its first line).
"""

from __future__ import annotations

import re
import tarfile

from tfs2s.core.errors import DataError


def _whitespace(text: str) -> str:
    return " ".join(text.split())


def read_aeslc(path: str) -> list[tuple[str, str]]:
    """(body, subject) pairs from an AESLC split tarball (``aeslc-<split>.tar.gz``), in member order.

    Raises:
        DataError: A member without the ``@subject`` marker (names the tarball and the member).
    """
    return [(body, subject) for body, subject, _ in _aeslc_records(path)]


def read_aeslc_annotations(path: str) -> list[list[str]]:
    """Each email's human-written reference subjects (dev and test: ``@ann0``..``@ann2``; none in train), aligned
    with ``read_aeslc(path)``'s pairs.

    Raises:
        DataError: As ``read_aeslc``.
    """
    return [annotations for _, _, annotations in _aeslc_records(path)]


def _aeslc_records(path: str) -> list[tuple[str, str, list[str]]]:
    """(body, original subject, annotated subjects) of every email with a non-empty body and subject."""
    records = []
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if not member.isfile() or not member.name.endswith(".subject"):
                    continue
                text = tar.extractfile(member).read().decode("utf-8", errors="replace")
                if "\n\n@subject\n" not in text:
                    raise DataError(f"{path}: member {member.name} has no '@subject' section")
                body, rest = text.split("\n\n@subject\n", 1)
                subject, *annotations = re.split(r"\n\n@ann\d+\n", rest)
                body, subject = _whitespace(body), _whitespace(subject)
                if body and subject:
                    records.append((body, subject, [a for a in map(_whitespace, annotations) if a]))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read the tarball ({e})") from None
    return records


def read_bbc_news(path: str) -> list[tuple[str, str, str]]:
    """(member name, body, title) triples from ``bbc-news.tar.gz``: the title is each article's first line.

    One source file has a Latin-1 byte; undecodable bytes become U+FFFD.
    """
    articles = []
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if not member.isfile() or not member.name.endswith(".txt") or member.name.endswith("README.TXT"):
                    continue
                text = tar.extractfile(member).read().decode("utf-8", errors="replace")
                title, _, body = text.strip().partition("\n")
                if title.strip() and body.strip():
                    articles.append((member.name, _whitespace(body), _whitespace(title)))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read the tarball ({e})") from None
    return articles
