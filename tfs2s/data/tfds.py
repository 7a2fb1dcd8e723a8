"""TensorFlow Datasets builders for the translation corpora, reading through the tfs2s corpus registry.

``make_builders`` takes the registry's corpora and its ``prepare_corpus`` rather than importing the registry, so
this module stays a leaf; ``tfs2s.data.corpora.tfds_builders()`` calls it once and caches the classes (TFDS
registers a builder class when it is defined).

The builders do not use TFDS's download manager: its cache layout (hashed file names under ``downloads/``) is
not the one the tfs2s readers expect. They get their files as ``load_pairs`` does: from ``source_dir`` when given
(only read), else from the default data folder, downloading into ``$TFS2S_DATA_DIR`` / ``~/.cache/tfs2s`` with
checksums (``tfs2s.data.download``). So one download serves both ``tfs2s train`` and ``tfds.load``.
"""

from __future__ import annotations

import os
from typing import Callable, Mapping

SPLITS = ("train", "validation", "test")


def make_builders(corpora: Mapping, prepare_corpus: Callable[..., str]) -> dict:
    """Defines the builder classes ``tfs2s_multi30k`` and ``tfs2s_spa_eng``.

    Args:
        corpora: Registry name -> ``Corpus`` (``multi30k`` and ``spa_eng`` are used).
        prepare_corpus: ``prepare_corpus(name, splits, data_dir) -> data folder``: finds (or downloads) the files.

    Returns:
        ``{"multi30k": Tfs2sMulti30k, "spa_eng": Tfs2sSpaEng}``.
    """
    import tensorflow_datasets as tfds  # heavy, and only these builders need it

    class _FromRegistry(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """Shared logic: the registry's files (``source_dir`` if given, else the default folder or a download)."""

        VERSION = tfds.core.Version("1.0.0")
        CORPUS: object  # a tfs2s.data.corpora.Corpus, set by each subclass

        def __init__(self, *, source_dir: str | None = None, **kwargs):
            self._source_dir = source_dir
            super().__init__(**kwargs)

        def _info(self):
            return self.dataset_info_from_configs(
                features=tfds.features.Translation(languages=self.CORPUS.languages),
                supervised_keys=self.CORPUS.languages, citation=self.CORPUS.citation)

        def _split_generators(self, dl_manager):
            del dl_manager  # see the module docstring: tfs2s.data.download fetches, with its own layout
            root = prepare_corpus(self.CORPUS.name, SPLITS, self._source_dir)
            folder = os.path.join(root, self.CORPUS.folder)
            return {split: self._generate_examples(folder, split) for split in SPLITS}

        def _generate_examples(self, folder, split):
            a, b = self.CORPUS.languages
            for i, (x, y) in enumerate(self.CORPUS.reader(self.CORPUS, folder, split, a, b, 0)):
                yield i, {a: x, b: y}

    class Tfs2sMulti30k(_FromRegistry):
        """Multi30k task 1 (raw, de-en): train 29,000 / validation 1,014 / test_2016_flickr 1,000."""

        CORPUS = corpora["multi30k"]

    class Tfs2sSpaEng(_FromRegistry):
        """Anki Spanish-English with the tfs2s 96/2/2 split by English sentence (no verified download)."""

        CORPUS = corpora["spa_eng"]

    return {"multi30k": Tfs2sMulti30k, "spa_eng": Tfs2sSpaEng}
