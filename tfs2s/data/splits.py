"""Deterministic train / validation / test splits by a hash of a key, for corpora without official splits.

A key (an English sentence, a conversation, an article) always lands in the same split on every machine and
Python version: the bucket is the first four bytes of ``sha256("<seed>:<key>")`` modulo 100, not ``hash()``.
"""

from __future__ import annotations

import hashlib


def hash_bucket(key: str, seed: int) -> int:
    """``key``'s bucket in ``0..99`` for ``seed``."""
    digest = hashlib.sha256(f"{seed}:{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 100


def hashed_split(key: str, seed: int, validation: int, test: int) -> str:
    """``test`` for the first ``test`` buckets, ``validation`` for the next ``validation``, else ``train``.

    Args:
        key: The text whose split is decided; equal keys always share a split.
        seed: Chooses another, independent split of the same keys.
        validation: Percentage of buckets for validation.
        test: Percentage of buckets for test.
    """
    bucket = hash_bucket(key, seed)
    return "test" if bucket < test else "validation" if bucket < test + validation else "train"
