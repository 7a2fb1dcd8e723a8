"""The corpus registry: each corpus's folder, splits, languages, download URLs and reader.

Corpora are read from a local folder (``--data-dir``; default ``../shared/data`` when present, or the
``TFS2S_DATA_DIR`` environment variable). The file formats are read by the leaf modules beside this one
(``parallel``, ``dialogue``, ``summarization``); corpora without official splits are split by ``splits``. Each
corpus also knows its public download URLs, which the TFDS builders (``tfds_builders``, defined in
``tfs2s.data.tfds``) use when no local copy is given.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

from tfs2s.core.config import DataConfig
from tfs2s.core.errors import DataError  # noqa: F401  (raised here; importable from here)
from tfs2s.data import dialogue, files, summarization
from tfs2s.data import tfds as tfds_module
from tfs2s.data.parallel import Pair, read_parallel, read_tsv_pairs
from tfs2s.data.splits import hashed_split


def default_data_dir() -> str | None:
    """``$TFS2S_DATA_DIR``, else ``../shared/data`` beside the working directory or this checkout, else None."""
    env = os.environ.get("TFS2S_DATA_DIR")
    if env:
        return env
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tfs2s/data/ -> root
    for base in (os.getcwd(), checkout):
        candidate = os.path.normpath(os.path.join(base, "..", "shared", "data"))
        if os.path.isdir(candidate):
            return candidate
    return None


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A parallel corpus: where its files are, how to read a split, and where to download it.

    Attributes:
        name: Registry name.
        folder: Sub-folder of the data directory.
        languages: The two language codes.
        splits: Split name -> file pattern(s) relative to ``folder`` (``{lang}`` is substituted).
        urls: File name -> public URL.
        reader: ``reader(corpus, folder, split, source_lang, target_lang, limit, **options) -> pairs``
            (``options``: corpus-specific settings such as a dialogue's ``context_turns``).
    """

    name: str
    folder: str
    languages: tuple[str, str]
    splits: dict
    urls: dict
    reader: Callable
    citation: str = ""

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


_MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/"

CORPORA: dict[str, Corpus] = {
    "multi30k": Corpus(
        name="multi30k", folder="multi30k", languages=("de", "en"),
        splits={"train": "train.{lang}.gz", "validation": "val.{lang}.gz", "test": "test_2016_flickr.{lang}.gz"},
        urls={f"{stem}.{lang}.gz": f"{_MULTI30K_URL}{stem}.{lang}.gz"
              for stem in ("train", "val", "test_2016_flickr") for lang in ("de", "en")},
        reader=_read_multi30k,
        citation="Elliott et al. 2016, Multi30K: Multilingual English-German Image Descriptions (W16-3210)"),
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
        urls={f"{s}.json": f"https://raw.githubusercontent.com/alexa/Topical-Chat/master/conversations/{s}.json"
              for s in ("train", "valid_freq", "valid_rare", "test_rare")},
        reader=_read_dialogues,
        citation="Gopalakrishnan et al. 2019, Topical-Chat, CDLA-Sharing-1.0"),
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


def get_corpus(name: str) -> Corpus:
    """Looks a corpus up by name; the error lists the known ones."""
    if name not in CORPORA:
        raise DataError(f"unknown corpus {name!r}; known corpora: {', '.join(sorted(CORPORA))}")
    return CORPORA[name]


def resolve_data_dir(data_dir: str | None) -> str:
    """Returns ``data_dir`` or the default, failing clearly when neither exists."""
    resolved = data_dir or default_data_dir()
    if resolved is None:
        raise DataError("no data directory: pass --data-dir (or set data.data_dir / TFS2S_DATA_DIR); "
                        "the default ../shared/data was not found")
    return resolved


def load_pairs(name: str, split: str, data_dir: str | None, source_lang: str, target_lang: str,
               limit: int = 0, **options) -> list[Pair]:
    """Reads one split of a registered corpus as ``(source, target)`` text pairs.

    ``options`` go to the corpus reader (dialogue corpora: ``context_turns``, ``turn_separator``).

    Raises:
        DataError: Unknown corpus, split or language, or missing files (the message lists the files it
            expected and the folder it looked in).
    """
    corpus = get_corpus(name)
    if split not in corpus.splits:
        raise DataError(f"corpus {name!r} has no split {split!r}; splits: {', '.join(corpus.splits)}")
    for lang in (source_lang, target_lang):
        if lang not in corpus.languages:
            raise DataError(f"corpus {name!r} has no language {lang!r}; languages: {', '.join(corpus.languages)}")
    root = resolve_data_dir(data_dir)
    missing = [f for f in corpus.expected_files(split) if not os.path.exists(os.path.join(root, f))]
    if missing:
        raise DataError(f"corpus {name!r} split {split!r}: missing {', '.join(missing)} under {os.path.abspath(root)} "
                        f"(download from: {', '.join(sorted(set(corpus.urls.values())))})")
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
        _BUILDERS = tfds_module.make_builders(CORPORA, default_data_dir)
    return _BUILDERS
