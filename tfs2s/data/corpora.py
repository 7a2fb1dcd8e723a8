"""The corpus registry: each corpus's folder, splits, languages, download URLs and reader.

Corpora are read from a data folder (``data_root``): ``--data-dir`` / ``data.data_dir`` when given, else
``$TFS2S_DATA_DIR``, else ``../shared/data`` beside the working directory or the checkout, else the download cache
``~/.cache/tfs2s``. A corpus with verified ``downloads`` (Multi30k, Topical-Chat's three public files) is fetched
by ``tfs2s.data.download`` when its files are missing from ``$TFS2S_DATA_DIR`` or the cache; a folder the user
named is never written to. The file formats are read by the leaf modules beside this one (``parallel``,
``dialogue``, ``summarization``); corpora without official splits are split by ``splits``. The TFDS builders
(``tfds_builders``, defined in ``tfs2s.data.tfds``) read through ``prepare_corpus`` too.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

from tfs2s.core.config import DataConfig
from tfs2s.core.errors import DataError  # noqa: F401  (raised here; importable from here)
from tfs2s.data import dialogue, download, files, summarization
from tfs2s.data import tfds as tfds_module
from tfs2s.data.parallel import Pair, read_parallel, read_tsv_pairs
from tfs2s.data.download import Download
from tfs2s.data.splits import hashed_split


def _shared_data_dir() -> str | None:
    """``../shared/data`` beside the working directory or this checkout, if there is one."""
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tfs2s/data/ -> root
    for base in (os.getcwd(), checkout):
        candidate = os.path.normpath(os.path.join(base, "..", "shared", "data"))
        if os.path.isdir(candidate):
            return candidate
    return None


def default_data_dir() -> str:
    """The data folder when none is given: ``$TFS2S_DATA_DIR`` (always wins, so a test or a user can hide
    ``../shared/data``), else ``../shared/data`` beside the working directory or this checkout, else the download
    cache ``~/.cache/tfs2s`` (which may not exist yet)."""
    return os.environ.get(download.DATA_DIR_ENV) or _shared_data_dir() or download.cache_dir()


def data_root(data_dir: str | None) -> tuple[str, bool]:
    """The data folder for ``data_dir`` and whether missing corpus files may be downloaded into it.

    Downloads go only to ``$TFS2S_DATA_DIR`` or the cache ``~/.cache/tfs2s``: never into a folder the user named
    (``--data-dir`` / ``data.data_dir``), which only reports what it lacks, nor into ``../shared/data``.
    """
    if data_dir:
        return data_dir, False
    if os.environ.get(download.DATA_DIR_ENV) or not _shared_data_dir():
        return download.cache_dir(), True
    return default_data_dir(), False


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A parallel corpus: where its files are, how to read a split, and where to download it.

    Attributes:
        name: Registry name.
        folder: Sub-folder of the data directory.
        languages: The two language codes.
        splits: Split name -> file pattern(s) relative to ``folder`` (``{lang}`` is substituted).
        urls: File name -> public URL (named in the "missing files" message, for fetching by hand).
        reader: ``reader(corpus, folder, split, source_lang, target_lang, limit, **options) -> pairs``
            (``options``: corpus-specific settings such as a dialogue's ``context_turns``).
        citation: How to cite the corpus (TFDS metadata).
        downloads: Files that ``tfs2s.data.download`` fetches and verifies (paths relative to the data folder,
            as ``expected_files`` names them). Only for upstream files whose sha256 is known for certain.
    """

    name: str
    folder: str
    languages: tuple[str, str]
    splits: dict
    urls: dict
    reader: Callable
    citation: str = ""
    downloads: tuple[Download, ...] = ()

    def expected_files(self, split: str) -> list[str]:
        """The files (relative to the data directory) that ``split`` needs."""
        pattern = self.splits[split]
        patterns = [pattern] if isinstance(pattern, str) else list(pattern)
        return sorted({os.path.join(self.folder, p.format(lang=lang)) for p in patterns for lang in self.languages})


def _read_multi30k(corpus: Corpus, folder: str, split: str, source: str, target: str, limit: int,
                   **options) -> list[Pair]:
    stem = corpus.splits[split]
    return read_parallel(os.path.join(folder, stem.format(lang=source)),
                         os.path.join(folder, stem.format(lang=target)), limit)


def _read_spa_eng(corpus: Corpus, folder: str, split: str, source: str, target: str, limit: int,
                  **options) -> list[Pair]:
    path = os.path.join(folder, corpus.splits["all"])
    columns = {"en": 0, "es": 1}
    pairs = read_tsv_pairs(path, columns[source], columns[target])
    english = 0 if source == "en" else 1
    # Split by the English sentence, so its several Spanish translations never straddle splits.
    pairs = [p for p in pairs if hashed_split(p[english], seed=1234, validation=2, test=2) == split]
    return pairs[:limit] if limit else pairs


def _require_sides(corpus: Corpus, source: str, target: str) -> None:
    """One-directional corpora (dialogue, summarization) read only as ``languages[0] -> languages[1]``."""
    if (source, target) != corpus.languages:
        a, b = corpus.languages
        raise DataError(f"corpus {corpus.name!r} pairs {a} -> {b}; set source_lang: {a} and target_lang: {b} "
                        f"(got {source} -> {target})")


def _read_dialogues(corpus: Corpus, folder: str, split: str, source: str, target: str, limit: int,
                    context_turns: int = DataConfig.context_turns, turn_separator: str = DataConfig.turn_separator,
                    **options) -> list[Pair]:
    """(context -> response) pairs of a dialogue corpus (see ``tfs2s.data.dialogue``)."""
    _require_sides(corpus, source, target)
    read = {"dailydialog": dialogue.read_dailydialog, "topical_chat": dialogue.read_topical_chat,
            "chatterbot": dialogue.read_chatterbot}[corpus.name]
    if corpus.name == "chatterbot":
        # No official split: whole conversations go to train / validation / test by a hash of their text.
        dialogues = [d for d in read(folder) if hashed_split(" ".join(d), seed=4321, validation=2, test=2) == split]
    else:
        dialogues = read(os.path.join(folder, corpus.splits[split]))
    pairs = dialogue.make_examples(dialogues, context_turns, turn_separator)
    return pairs[:limit] if limit else pairs


def _read_summaries(corpus: Corpus, folder: str, split: str, source: str, target: str, limit: int,
                    **options) -> list[Pair]:
    """(document -> summary) pairs of a summarization corpus (see ``tfs2s.data.summarization``)."""
    _require_sides(corpus, source, target)
    if corpus.name == "aeslc":
        pairs = summarization.read_aeslc(os.path.join(folder, corpus.splits[split]))
    elif corpus.name == "gigaword_sample":
        pairs = read_parallel(os.path.join(folder, "train.article.txt"), os.path.join(folder, "train.title.txt"))
        pairs = [p for p in pairs if hashed_split(p[0], seed=2024, validation=10, test=0) == split]
    else:  # bbc_news: split by file, 90 / 5 / 5
        articles = summarization.read_bbc_news(os.path.join(folder, "bbc-news.tar.gz"))
        pairs = [(body, title) for name, body, title in articles
                 if hashed_split(name, seed=2024, validation=5, test=5) == split]
    return pairs[:limit] if limit else pairs


# Checksums: only of upstream files that ../shared/data/README.md says the local copies are byte-identical to
# (sha256 computed from those copies). Multi30k's six .gz are the repo's blobs; Topical-Chat's local .json.gz each
# decompress to the repo blob (git blob ids checked), so the JSON is downloaded and gzipped. The other corpora's
# local copies are converted, cut or re-packed from their sources (spa-eng, DailyDialog, AESLC, BBC, Gigaword), or
# come from a file whose checksum nobody verified (chatterbot's wheel URL, Topical-Chat's train.json): they keep
# their URLs in the "missing files" message only, with no invented checksum.
_MULTI30K_URL = ("https://raw.githubusercontent.com/multi30k/dataset/"
                 "a3d2e0d26b56f3846f66a952536ffed4e401d05a/data/task1/raw/")
_MULTI30K_SHA256 = {
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
}
_TOPICAL_CHAT_URL = ("https://raw.githubusercontent.com/alexa/Topical-Chat/"
                     "7c939229cbcf6f55f6977b341a5a2f2fe982d53f/conversations/")
_TOPICAL_CHAT_SHA256 = {  # of the upstream .json (uncompressed)
    "valid_freq": "d14e8bde94fa5556d4aad8fd3fb666df674e4fef8b4193c8c3c06c72822a366b",
    "valid_rare": "b0f3c59584ea4ed61e368dc94feade6ba499a207a6437573b028d1f3ff918714",
    "test_rare": "4f21a18be16e310840280678e7bb4646852573b239b69183ddf8898f40119567",
}

CORPORA: dict[str, Corpus] = {
    "multi30k": Corpus(
        name="multi30k", folder="multi30k", languages=("de", "en"),
        splits={"train": "train.{lang}.gz", "validation": "val.{lang}.gz", "test": "test_2016_flickr.{lang}.gz"},
        urls={name: _MULTI30K_URL + name for name in _MULTI30K_SHA256},
        reader=_read_multi30k,
        citation="Elliott et al. 2016, Multi30K: Multilingual English-German Image Descriptions (W16-3210)",
        downloads=tuple(Download(_MULTI30K_URL + name, f"multi30k/{name}", sha)
                        for name, sha in _MULTI30K_SHA256.items())),
    "spa_eng": Corpus(
        name="spa_eng", folder="spa-eng", languages=("en", "es"),
        splits={"all": "spa.txt.gz", "train": "spa.txt.gz", "validation": "spa.txt.gz", "test": "spa.txt.gz"},
        urls={"spa-eng.zip": "http://storage.googleapis.com/download.tensorflow.org/data/spa-eng.zip"},
        reader=_read_spa_eng,
        citation="Tatoeba / manythings.org Anki export, CC-BY 2.0; split: 96/2/2 % by sha256 of the English side"),
    "dailydialog": Corpus(
        name="dailydialog", folder="dialogs/dailydialog", languages=("context", "response"),
        splits={"train": "train/dialogues_train.txt.gz", "validation": "validation/dialogues_validation.txt"},
        urls={"ijcnlp_dailydialog.zip": "http://yanran.li/files/ijcnlp_dailydialog.zip"},
        reader=_read_dialogues,
        citation="Li et al. 2017, DailyDialog (IJCNLP), CC BY-NC-SA 4.0; official train / validation splits"),
    "topical_chat": Corpus(
        name="topical_chat", folder="dialogs/topical-chat", languages=("context", "response"),
        # The official train.json is not in ../shared/data: its valid_freq split stands in for training here.
        splits={"train": "valid_freq.json.gz", "validation": "valid_rare.json.gz", "test": "test_rare.json.gz"},
        urls={f"{s}.json": f"{_TOPICAL_CHAT_URL}{s}.json" for s in ("train", "valid_freq", "valid_rare", "test_rare")},
        reader=_read_dialogues,
        citation="Gopalakrishnan et al. 2019, Topical-Chat, CDLA-Sharing-1.0",
        downloads=tuple(Download(f"{_TOPICAL_CHAT_URL}{s}.json", f"dialogs/topical-chat/{s}.json.gz", sha, gzip=True)
                        for s, sha in _TOPICAL_CHAT_SHA256.items())),
    "chatterbot": Corpus(
        name="chatterbot", folder="dialogs/chatterbot-corpus/english", languages=("context", "response"),
        splits={"train": "greetings.yml", "validation": "greetings.yml", "test": "greetings.yml"},
        urls={"chatterbot-corpus": "https://github.com/gunthercox/chatterbot-corpus"},
        reader=_read_dialogues,
        citation="chatterbot-corpus (English files), BSD-3-Clause; split 90/5/5 by a hash of each conversation"),
    "aeslc": Corpus(
        name="aeslc", folder="summarization/aeslc", languages=("document", "summary"),
        splits={"train": "aeslc-train.tar.gz", "validation": "aeslc-dev.tar.gz"},
        urls={"AESLC": "https://github.com/ryanzhumich/AESLC (enron_subject_line/)"},
        reader=_read_summaries,
        citation="Zhang & Tetreault 2019, AESLC (ACL), CC BY-NC-SA 4.0; official train / dev splits"),
    "gigaword_sample": Corpus(
        name="gigaword_sample", folder="summarization/gigaword-sample", languages=("document", "summary"),
        splits={"train": ["train.article.txt", "train.title.txt"], "validation": ["train.article.txt", "train.title.txt"]},
        urls={"sent-summary": "https://github.com/harvardnlp/sent-summary"},
        reader=_read_summaries,
        citation="Rush et al. 2015 Gigaword headlines (first 900 pairs; LDC terms); split 90/10 by article hash"),
    "bbc_news": Corpus(
        name="bbc_news", folder="summarization/bbc-news", languages=("document", "summary"),
        splits={s: "bbc-news.tar.gz" for s in ("train", "validation", "test")},
        urls={"bbc-fulltext.zip": "http://mlg.ucd.ie/files/datasets/bbc-fulltext.zip"},
        reader=_read_summaries,
        citation="Greene & Cunningham 2006, BBC News (research use); split 90/5/5 by file"),
}


# Single files read outside the pair registry (tfs2s.tasks.series reads ett/ETTh1.csv), by their path in the data
# folder. ETTh1.csv is byte-identical to the ETDataset blob (../shared/data/README.md), sha256 of the shared copy.
FILE_DOWNLOADS: dict[str, Download] = {
    "ett/ETTh1.csv": Download("https://raw.githubusercontent.com/zhouhaoyi/ETDataset/"
                              "1d16c8f4f943005d613b5bc962e9eeb06058cf07/ETT-small/ETTh1.csv", "ett/ETTh1.csv",
                              "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"),
}


def data_file(path: str, data_dir: str | None = None, progress: bool = True) -> str:
    """The file ``path`` (relative to the data folder), downloaded first when it is in ``FILE_DOWNLOADS``,
    missing, and the folder is ``$TFS2S_DATA_DIR`` or the cache (see ``data_root``); else just the joined path.

    Raises:
        DataError: The download failed (offline, checksum; see ``tfs2s.data.download.fetch``).
    """
    root, may_download = data_root(data_dir)
    full = os.path.join(root, path)
    if may_download and path in FILE_DOWNLOADS and not os.path.exists(full):
        download.fetch([FILE_DOWNLOADS[path]], root, progress=progress)
    return full


def get_corpus(name: str) -> Corpus:
    """Looks a corpus up by name; the error lists the known ones."""
    if name not in CORPORA:
        raise DataError(f"unknown corpus {name!r}; known corpora: {', '.join(sorted(CORPORA))}")
    return CORPORA[name]


def resolve_data_dir(data_dir: str | None) -> str:
    """Returns ``data_dir`` or ``default_data_dir()`` (the download cache when nothing else is there)."""
    return data_root(data_dir)[0]


def prepare_corpus(name: str, splits, data_dir: str | None = None, progress: bool = True) -> str:
    """The data folder holding ``splits`` of corpus ``name``, downloading missing files where that is allowed.

    Missing files are fetched (``tfs2s.data.download.fetch``, progress bar on stderr) when the corpus has
    ``downloads`` for all of them and the folder is ``$TFS2S_DATA_DIR`` or the cache (see ``data_root``).

    Raises:
        DataError: Files are missing and cannot be downloaded (the message lists them, the folder, and the
            URLs), or the download failed (offline, checksum; see ``fetch``).
    """
    corpus = get_corpus(name)
    root, may_download = data_root(data_dir)
    wanted = sorted({f for split in splits for f in corpus.expected_files(split)})
    missing = [f for f in wanted if not os.path.exists(os.path.join(root, f))]
    if not missing:
        return root
    downloads = {d.path: d for d in corpus.downloads}
    if may_download and all(f in downloads for f in missing):
        download.fetch([downloads[f] for f in missing], root, progress=progress)
        return root
    hint = ""
    if downloads and not may_download:
        hint = (f"; tfs2s downloads {name!r} by itself into ${download.DATA_DIR_ENV} (default "
                "~/.cache/tfs2s) when no --data-dir / data.data_dir is given")
    raise DataError(f"corpus {name!r} ({', '.join(splits)}): missing {', '.join(missing)} "
                    f"under {os.path.abspath(root)} "
                    f"(download from: {', '.join(sorted(set(corpus.urls.values())))}; put the files in "
                    f"{os.path.abspath(os.path.join(root, corpus.folder))}{hint})")


def is_dialogue(name: str) -> bool:
    """Whether ``name`` is a registered dialogue corpus (its sources are conversation contexts)."""
    return name in CORPORA and CORPORA[name].reader is _read_dialogues


def load_pairs(name: str, split: str, data_dir: str | None, source_lang: str, target_lang: str,
               limit: int = 0, **options) -> list[Pair]:
    """Reads one split of a registered corpus as ``(source, target)`` text pairs.

    ``options`` go to the corpus reader (dialogue corpora: ``context_turns``, ``turn_separator``). With no
    ``data_dir`` the default folder is used, and a corpus with downloads is fetched there when missing (see
    ``prepare_corpus``); a given ``data_dir`` is only read.

    Raises:
        DataError: Unknown corpus, split or language, or missing files that cannot be downloaded (the message
            lists the files it expected, the folder it looked in and the URLs), or a failed download.
    """
    corpus = get_corpus(name)
    if split not in corpus.splits:
        raise DataError(f"corpus {name!r} has no split {split!r}; splits: {', '.join(corpus.splits)}")
    for lang in (source_lang, target_lang):
        if lang not in corpus.languages:
            raise DataError(f"corpus {name!r} has no language {lang!r}; languages: {', '.join(corpus.languages)}")
    root = prepare_corpus(name, [split], data_dir)
    return corpus.reader(corpus, os.path.join(root, corpus.folder), split, source_lang, target_lang, limit,
                         **options)


def load_split(data, split: str, limit: int = 0) -> list[Pair]:
    """``load_pairs`` for a ``DataConfig``: its corpus, folder, languages and corpus options.

    ``data.corpus: files`` reads the user's own ``data.train`` / ``validation`` / ``test`` files instead
    (``tfs2s.data.files``; no data directory, and the languages are free labels).
    """
    if data.corpus == files.NAME:
        return files.load_split(data, split, limit)
    return load_pairs(data.corpus, split, data.data_dir, data.source_lang, data.target_lang, limit,
                      context_turns=data.context_turns, turn_separator=data.turn_separator)


_BUILDERS: dict | None = None


def tfds_builders() -> dict:
    """Registers (once) and returns the TFDS builder classes: ``tfs2s_multi30k`` and ``tfs2s_spa_eng``."""
    global _BUILDERS
    if _BUILDERS is None:
        _BUILDERS = tfds_module.make_builders(CORPORA, prepare_corpus)
    return _BUILDERS
