"""Fetches a corpus's files from their official URLs into a data folder, checked by sha256.

Each ``Download`` names one upstream file (pinned URL and the sha256 of its bytes) and the path, relative to the
data folder, that the readers expect (the same layout as ``../shared/data``). ``fetch`` downloads the missing ones
with a progress bar on stderr, into a temporary file beside the target, and renames it into place only after the
checksum matched: a wrong checksum, a short body, a dropped connection or Ctrl-C leaves no file behind.

Environment:
    ``TFS2S_DATA_DIR``: the folder downloads go to (``cache_dir()``; default ``~/.cache/tfs2s``).
    ``TFS2S_DOWNLOAD_URL``: a mirror. Every URL ``scheme://host/path`` is fetched as ``$TFS2S_DOWNLOAD_URL/host/path``
        instead (the layout ``wget --force-directories URL`` writes), e.g. ``http://127.0.0.1:8000`` (the tests' local
        server) or an internal mirror; checksums are still verified.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.client
import logging
import os
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from typing import Iterable

from tfs2s.core.errors import DataError

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "TFS2S_DATA_DIR"
MIRROR_ENV = "TFS2S_DOWNLOAD_URL"
_CHUNK = 1 << 16


@dataclasses.dataclass(frozen=True)
class Download:
    """One upstream file and where it lands.

    Attributes:
        url: The official, pinned URL (a commit, not a branch, so the checksum stays true).
        path: Where the file goes, relative to the data folder (e.g. ``multi30k/train.de.gz``).
        sha256: The sha256 of the bytes served at ``url``.
        gzip: Gzip the downloaded bytes into ``path`` (for readers that want ``.gz`` where upstream serves plain
            text). Deterministic: level 9, no name, mtime 0; the checksum is of the upstream bytes.
    """

    url: str
    path: str
    sha256: str
    gzip: bool = False


def cache_dir() -> str:
    """The folder downloads go to: ``$TFS2S_DATA_DIR``, else ``~/.cache/tfs2s``."""
    return os.environ.get(DATA_DIR_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "tfs2s")


def mirror_url(url: str) -> str:
    """``url``, or its copy under ``$TFS2S_DOWNLOAD_URL`` (``<mirror>/<host>/<path>``) when that is set."""
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"


def missing(downloads: Iterable[Download], root: str) -> list[Download]:
    """The downloads whose target file is not under ``root`` yet."""
    return [d for d in downloads if not os.path.exists(os.path.join(root, d.path))]


def fetch(downloads: Iterable[Download], root: str, progress: bool = True, timeout: float = 60.0) -> list[str]:
    """Downloads the files missing under ``root`` (files already there are kept, with no request).

    Args:
        downloads: The files to have.
        root: The data folder (created when needed).
        progress: Show a tqdm progress bar per file on stderr.
        timeout: Seconds to wait for a connection or for data.

    Returns:
        The paths (under ``root``) of all ``downloads``.

    Raises:
        DataError: The server cannot be reached (the message names every URL still missing and the folders where
            the files can be put by hand), answers an HTTP error, stops early, or serves bytes whose sha256
            differs (URL, expected and actual checksum named). No partial file is left in any case.
    """
    downloads = list(downloads)
    todo = missing(downloads, root)
    for i, item in enumerate(todo):
        try:
            _fetch_one(item, root, progress, timeout)
        except _Unreachable as err:
            raise DataError(_offline_message(todo[i:], root, err.reason)) from None
    return [os.path.join(root, d.path) for d in downloads]


class _Unreachable(Exception):
    """No connection to the server at all (refused, DNS, timeout before any byte)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _offline_message(todo: list[Download], root: str, reason: str) -> str:
    lines = "; ".join(f"{mirror_url(d.url)} -> {os.path.join(os.path.abspath(root), d.path)}"
                      + (" (gzip it)" if d.gzip else "") for d in todo)
    return (f"cannot download ({reason}): put these files there by hand, or set {MIRROR_ENV} to a mirror: {lines}")


def _fetch_one(item: Download, root: str, progress: bool, timeout: float) -> None:
    target = os.path.join(root, item.path)
    url = mirror_url(item.url)
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=f".{os.path.basename(target)}.",
                                    suffix=".part")
    except OSError as err:
        raise DataError(f"cannot write the download of {url} into {os.path.dirname(target)} ({err}); "
                        f"set {DATA_DIR_ENV} to a writable folder") from None
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _copy(url, out, progress, timeout)
        if digest != item.sha256:
            raise DataError(f"checksum mismatch for {url}: expected sha256 {item.sha256}, got {digest} "
                            "(the file was not kept)")
        if item.gzip:
            _gzip_in_place(temp)
        os.replace(temp, target)
        logger.info("downloaded %s to %s (sha256 verified)", url, target)
    finally:
        if os.path.exists(temp):  # anything short of a verified rename: no half-written file stays
            os.remove(temp)


def _copy(url: str, out, progress: bool, timeout: float) -> str:
    """Streams ``url`` into ``out``; returns the sha256 of the bytes. Raises ``_Unreachable`` or ``DataError``."""
    from tqdm import tqdm  # a tensorflow-datasets dependency too; setup.cfg lists it

    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as err:
        raise DataError(f"download failed: {url} answered HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise _Unreachable(str(err.reason)) from None
    except (TimeoutError, socket.timeout, ConnectionError) as err:
        raise _Unreachable(str(err) or type(err).__name__) from None
    digest, received = hashlib.sha256(), 0
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(urllib.parse.urlsplit(url).path),
                  disable=not progress, leave=False) as bar:
            try:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (http.client.IncompleteRead, ConnectionError, TimeoutError, socket.timeout, OSError) as err:
                raise DataError(f"download of {url} interrupted after {received} bytes "
                                f"({type(err).__name__}: {err}); the file was not kept") from None
    if total is not None and received != total:
        raise DataError(f"download of {url} interrupted: got {received} of {total} bytes; the file was not kept")
    return digest.hexdigest()


def _gzip_in_place(path: str) -> None:
    """Replaces ``path``'s content by its gzip (level 9, no file name, mtime 0: the same bytes every time)."""
    packed = path + ".gz"
    try:
        with open(path, "rb") as raw, open(packed, "wb") as sink:
            with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=sink, mtime=0) as z:
                while chunk := raw.read(_CHUNK):
                    z.write(chunk)
        os.replace(packed, path)
    finally:
        if os.path.exists(packed):
            os.remove(packed)
