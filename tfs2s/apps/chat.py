"""Talking to an exported conversational model: the context is kept on the client, as a server would.

The model was trained on (context -> response) pairs whose context is the last ``data.context_turns``
utterances joined by ``data.turn_separator`` (see ``tfs2s.data.dialogue``). ``Conversation`` builds the same context
from the running conversation and asks the SavedModel for a reply: by beam search (``translate_options``, with the
export's n-gram repeat blocking) or by sampling (``sample``: temperature, top-k, seed).
"""

from __future__ import annotations

import os

from tfs2s.core.config import load_config
from tfs2s.core.errors import InputError
from tfs2s.export.savedmodel import read_metadata


class Conversation:
    """A conversation with an exported model.

    Args:
        export_dir: A SavedModel version folder written by ``tfs2s export``.
        strategy: ``beam`` or ``sample``.
        temperature: Sampling temperature (default: the export's config).
        top_k: Sample among the k most likely tokens (0: all; default: the export's config).
        seed: Seed of the first sampled reply (each later reply uses the next seed).
        beam_width: Beam width for ``beam`` (default: the export's config).
    """

    def __init__(self, export_dir: str, strategy: str = "beam", temperature: float | None = None,
                 top_k: int | None = None, seed: int = 0, beam_width: int | None = None):
        if strategy not in ("beam", "sample"):
            raise InputError(f"strategy must be beam or sample, got {strategy!r}")
        meta = read_metadata(export_dir)
        import tensorflow as tf

        if meta.get("requires_tensorflow_text"):
            import tensorflow_text  # noqa: F401  (registers the ops the export needs)
        self.config = load_config(os.path.join(export_dir, "assets.extra", "config.json"))
        d = self.config.decoding
        self.strategy = strategy
        self.temperature = d.temperature if temperature is None else temperature
        self.top_k = d.top_k if top_k is None else top_k
        self.beam_width = d.beam_width if beam_width is None else beam_width
        self.seed = seed
        self.history: list[str] = []
        self._tf = tf
        signatures = tf.saved_model.load(export_dir).signatures
        name = "translate_options" if strategy == "beam" else "sample"
        if name not in signatures:
            raise InputError(f"{export_dir} has no {name!r} signature (exported by an older tfs2s?)")
        self._signature = signatures[name]

    def context(self) -> str:
        """The source the next reply is conditioned on: the last ``context_turns`` utterances."""
        turns = [u for u in self.history[-self.config.data.context_turns:] if u]
        return f" {self.config.data.turn_separator} ".join(turns)

    def reply(self, message: str) -> str:
        """Adds the user's ``message`` to the conversation and returns the model's reply (possibly empty)."""
        tf = self._tf
        self.history.append(" ".join(str(message).split()))
        text = tf.constant([self.context()])
        if self.strategy == "beam":
            out = self._signature(text=text, beam_width=tf.constant(self.beam_width), n_best=tf.constant(1),
                                  max_length=tf.constant(0))
        else:
            out = self._signature(text=text, temperature=tf.constant(float(self.temperature)),
                                  top_k=tf.constant(int(self.top_k)), seed=tf.constant(self.seed))
            self.seed += 1
        answer = out["text"][0].numpy().decode("utf-8")
        self.history.append(answer)
        return answer

    def reset(self) -> None:
        """Forgets the conversation so far."""
        self.history.clear()
