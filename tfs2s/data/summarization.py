"""Summarization corpora (document -> short summary), ROUGE, the lead and random-sentence baselines, and
unknown-word replacement: tfs2s.core.decoding.unk.

Corpora (registered in ``tfs2s.corpora`` with languages ``("document", "summary")``):

* ``aeslc``: an Enron email body -> its subject line (official train / dev splits as train / validation);
* ``gigaword_sample``: a news article's first sentence -> its headline (900 pairs: a smoke-sized corpus);
* ``bbc_news``: a BBC article's body -> its title (its first line).
"""

from __future__ import annotations

import hashlib
import random
import re
import tarfile
from typing import Sequence

from tfs2s.data.corpora import DataError

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _whitespace(text: str) -> str:
    return " ".join(text.split())


def read_aeslc(path: str) -> list[tuple[str, str]]:
    """(body, subject) pairs from an AESLC split tarball (``aeslc-<split>.tar.gz``), in member order.

    Raises:
        DataError: A member without the ``@subject`` marker (names the tarball and the member).
    """
    pairs = []
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if not member.isfile() or not member.name.endswith(".subject"):
                    continue
                text = tar.extractfile(member).read().decode("utf-8", errors="replace")
                if "\n\n@subject\n" not in text:
                    raise DataError(f"{path}: member {member.name} has no '@subject' section")
                body, rest = text.split("\n\n@subject\n", 1)
                subject = rest.split("\n\n@ann0\n", 1)[0]
                body, subject = _whitespace(body), _whitespace(subject)
                if body and subject:
                    pairs.append((body, subject))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read the tarball ({e})") from None
    return pairs


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


def hashed_split(key: str, seed: int = 2024, validation: int = 5, test: int = 5) -> str:
    """``train`` / ``validation`` / ``test`` by a hash of ``key`` (percentages of validation and test)."""
    bucket = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode("utf-8")).digest()[:4], "big") % 100
    return "test" if bucket < test else "validation" if bucket < test + validation else "train"


def rouge_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """Mean ROUGE-1/2/L F1 (x 100) with the ``rouge-score`` package (its tokenizer lowercases; Porter stemming)."""
    from rouge_score import rouge_scorer

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for hypothesis, reference in zip(hypotheses, references):
        for name, score in scorer.score(reference, hypothesis).items():
            totals[name] += score.fmeasure
    n = max(len(hypotheses), 1)
    return {name: round(100.0 * total / n, 2) for name, total in totals.items()}


def lead(documents: Sequence[str], words: int) -> list[str]:
    """The lead baseline: the first ``words`` words of each document."""
    return [" ".join(d.split()[:words]) for d in documents]


def random_sentence(documents: Sequence[str], seed: int = 0) -> list[str]:
    """The random-sentence baseline: one sentence of each document, chosen with a seeded generator."""
    rng = random.Random(seed)
    out = []
    for document in documents:
        sentences = [s for s in _SENTENCE_END.split(document) if s.strip()] or [""]
        out.append(rng.choice(sentences))
    return out
