"""Translating with an exported text model through its serving signatures, as a client of TF Serving would.

The export's decoding settings are baked in when it is written (``tfs2s export``); a signature takes only the
options it was traced with:

* ``beam``: ``translate_options`` (``beam_width`` up to the export's ``max_beam_width``, ``n_best``);
* ``greedy``: ``translate_greedy`` when the export has it, else ``translate_options`` with one beam (a beam of
  width 1 keeps one finished and one alive hypothesis, so it can differ from greedy search now and then);
* ``sample``: ``sample`` (``temperature``, ``top_k``, ``seed``).

Everything else (``length_penalty``, ``no_repeat_ngram_size``, ``min_length``) is fixed by the export's config.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from tfs2s.core.errors import InputError
from tfs2s.export.savedmodel import read_metadata

# What each strategy's signature takes per request.
SIGNATURE_OPTIONS = {"beam": ("beam_width", "n_best"), "greedy": (), "sample": ("temperature", "top_k", "seed")}
# Options a run folder takes per request but an export has baked in (set in the config before `tfs2s export`).
BAKED = ("length_penalty", "no_repeat_ngram_size", "min_length")

logger = logging.getLogger(__name__)


def check_options(strategy: str, overrides: dict, decoding: dict, where: str) -> None:
    """Raises an ``InputError`` for an option the export's signature for ``strategy`` cannot take.

    Args:
        strategy: ``greedy``, ``beam`` or ``sample``.
        overrides: The options the user set (``DecodeOptions`` field names).
        decoding: The export's decoding config (metadata ``decoding``).
        where: The export's folder (named in the message).
    """
    baked = sorted(set(overrides) & set(BAKED))
    if baked:
        values = ", ".join(f"decoding.{k}={decoding.get(k)}" for k in baked)
        raise InputError(f"{where} has {values} built in; an export cannot change {baked} per request "
                         "(translate with --run-dir, or export again with --set decoding.<key>=...)")
    extra = sorted(set(overrides) - set(SIGNATURE_OPTIONS[strategy]))
    if extra:
        takes = sorted(SIGNATURE_OPTIONS[strategy])
        raise InputError(f"option(s) {extra} do not apply to {strategy} decoding of an export; it takes "
                         f"{takes if takes else 'no options'}")


class ExportedTranslator:
    """Translates text with an exported text model (a ``saved_models/<name>/<version>`` folder).

    Args:
        export_dir: A SavedModel version folder written by ``tfs2s export``.

    Raises:
        RunNotFoundError: ``export_dir`` is not a tfs2s export.
        InputError: The export is not a text-to-text model.
    """

    def __init__(self, export_dir: str):
        meta = read_metadata(export_dir)
        if meta.get("task", "text_to_text") != "text_to_text":
            raise InputError(f"{export_dir} is a {meta['task']} export; tfs2s translate needs a text model")
        import tensorflow as tf

        if meta.get("requires_tensorflow_text"):
            import tensorflow_text  # noqa: F401  (registers the ops the export needs; only such exports need it)
        self._tf = tf
        self.export_dir = export_dir
        self.metadata = meta
        self.decoding = dict(meta["decoding"])
        self.max_beam_width = int(meta.get("max_beam_width", 0)) or None
        self.signatures = tf.saved_model.load(export_dir).signatures

    def _signature(self, name: str):
        if name not in self.signatures:
            raise InputError(f"{self.export_dir} has no {name!r} signature (exported by an older tfs2s?)")
        return self.signatures[name]

    def options(self, strategy: str | None = None, **overrides) -> tuple[str, dict]:
        """The strategy (default: the export's config's) and the values its signature is called with.

        Raises:
            InputError: An unknown strategy, an option the signature cannot take, or values out of range.
        """
        strategy = strategy or self.decoding["strategy"]
        if strategy not in SIGNATURE_OPTIONS:
            raise InputError(f"unknown decoding strategy {strategy!r}; choose {', '.join(SIGNATURE_OPTIONS)}")
        check_options(strategy, overrides, self.decoding, self.export_dir)
        values = {k: overrides.get(k, self.decoding.get(k)) for k in SIGNATURE_OPTIONS[strategy]}
        if strategy == "sample":
            values["seed"] = overrides.get("seed", 0)
        if strategy == "beam":
            if self.max_beam_width and values["beam_width"] > self.max_beam_width:
                raise InputError(f"--beam-width {values['beam_width']}: {self.export_dir} was exported with "
                                 f"--max-beam-width {self.max_beam_width}")
            if not 1 <= values["n_best"] <= values["beam_width"]:
                raise InputError(f"--n-best {values['n_best']} must be between 1 and the beam width "
                                 f"({values['beam_width']})")
        return strategy, values

    def _call(self, texts: Sequence[str], strategy: str, values: dict) -> dict:
        tf = self._tf
        text = tf.constant(list(texts), tf.string)
        if strategy == "sample":
            return self._signature("sample")(text=text, temperature=tf.constant(float(values["temperature"])),
                                             top_k=tf.constant(int(values["top_k"])),
                                             seed=tf.constant(int(values["seed"])))
        if strategy == "greedy" and "translate_greedy" in self.signatures:
            return self.signatures["translate_greedy"](text=text)
        if strategy == "greedy" and not getattr(self, "_warned", False):
            self._warned = True
            logger.warning("%s has no translate_greedy signature: greedy decoding is a beam of width 1 here, "
                           "which can differ from greedy search", self.export_dir)
        width, n_best = (1, 1) if strategy == "greedy" else (values["beam_width"], values["n_best"])
        return self._signature("translate_options")(text=text, beam_width=tf.constant(int(width)),
                                                    n_best=tf.constant(int(n_best)), max_length=tf.constant(0))

    def translate_batch(self, texts: Sequence[str], strategy: str | None = None, **overrides) -> dict:
        """Translates one batch: ``text [batch, n]`` (Python strings, best first) and ``scores [batch, n]``.

        ``overrides``: the options the strategy's signature takes (see ``SIGNATURE_OPTIONS``).
        """
        strategy, values = self.options(strategy, **overrides)
        out = self._call(texts, strategy, values)
        texts_out = out["translations"] if "translations" in out else out["text"][:, None]
        decoded = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(texts_out.numpy()) \
            if texts_out.shape[0] else np.zeros([0, 1], object)
        return {"text": decoded, "scores": out["scores"].numpy()}

    def translate(self, texts: Sequence[str], strategy: str | None = None, batch_size: int = 64,
                  **overrides) -> list[str]:
        """Best translation of each text, in input order (batches of ``batch_size``)."""
        texts = list(texts)
        results: list[str] = []
        for start in range(0, len(texts), batch_size):
            results += list(self.translate_batch(texts[start:start + batch_size], strategy, **overrides)["text"][:, 0])
        return results
