"""TensorFlow Datasets builders for the translation corpora: read the local copy, else download.

``make_builders`` takes the registry's corpora rather than importing the registry, so this module stays a leaf;
``tfs2s.data.corpora.tfds_builders()`` calls it once and caches the classes (TFDS registers a builder class
when it is defined).
"""

from __future__ import annotations

import os
from typing import Callable, Mapping


def make_builders(corpora: Mapping, default_data_dir: Callable[[], str | None]) -> dict:
    """Defines the builder classes ``tfs2s_multi30k`` and ``tfs2s_spa_eng``.

    Args:
        corpora: Registry name -> ``Corpus`` (``multi30k`` and ``spa_eng`` are used).
        default_data_dir: Where to look for local copies when a builder gets no ``source_dir``.

    Returns:
        ``{"multi30k": Tfs2sMulti30k, "spa_eng": Tfs2sSpaEng}``.
    """
    import tensorflow_datasets as tfds  # heavy, and only these builders need it

    class _LocalOrDownload(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """Shared logic: read the local copy under ``source_dir`` if given, else download the public files."""

        VERSION = tfds.core.Version("1.0.0")
        CORPUS: object  # a tfs2s.data.corpora.Corpus, set by each subclass

        def __init__(self, *, source_dir: str | None = None, **kwargs):
            self._source_dir = source_dir
            super().__init__(**kwargs)

        def _info(self):
            return self.dataset_info_from_configs(
                features=tfds.features.Translation(languages=self.CORPUS.languages),
                supervised_keys=self.CORPUS.languages, citation=self.CORPUS.citation)

        def _folder(self, dl_manager) -> str:
            local = self._source_dir or default_data_dir()
            if local and os.path.isdir(os.path.join(local, self.CORPUS.folder)):
                return os.path.join(local, self.CORPUS.folder)
            paths = dl_manager.download_and_extract(self.CORPUS.urls)
            return os.path.dirname(str(next(iter(paths.values()))))

        def _split_generators(self, dl_manager):
            folder = self._folder(dl_manager)
            return {split: self._generate_examples(folder, split)
                    for split in ("train", "validation", "test")}

        def _generate_examples(self, folder, split):
            a, b = self.CORPUS.languages
            for i, (x, y) in enumerate(self.CORPUS.reader(self.CORPUS, folder, split, a, b, 0)):
                yield i, {a: x, b: y}

    class Tfs2sMulti30k(_LocalOrDownload):
        """Multi30k task 1 (raw, de-en): train 29,000 / validation 1,014 / test_2016_flickr 1,000."""

        CORPUS = corpora["multi30k"]

    class Tfs2sSpaEng(_LocalOrDownload):
        """Anki Spanish-English with the tfs2s 96/2/2 split by English sentence."""

        CORPUS = corpora["spa_eng"]

    return {"multi30k": Tfs2sMulti30k, "spa_eng": Tfs2sSpaEng}
