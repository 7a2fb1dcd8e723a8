"""What a text export serves: the ``tf.Module`` saved as the SavedModel of a text-to-text model.

Signatures (all take batches; a batch of zero gives empty outputs). Text outputs (``text``, ``translations``,
``translation``) replace each ``<unk>`` by the source word it attends to most where ``decoding.replace_unknown``
applies (word-level source, attention: ``Translator.replaces_unknown``); ``tokens`` keep the ``<unk>`` id:

* ``serving_default``: ``text [B]`` -> ``text [B]`` best translation, ``translations [B, N]``,
  ``tokens [B, N, L]``, ``length [B, N]``, ``scores [B, N]`` (and ``alignment [B, N, L, S]`` with attention),
  decoded with the exported decoding config (beam search by default);
* ``translate_greedy``: the same outputs, decoded by greedy search (``tfs2s translate --model --strategy greedy``);
* ``translate_options``: the same plus per-request ``beam_width`` (clipped to ``[1, max_beam_width]``),
  ``n_best`` (clipped to ``beam_width``) and ``max_length`` (``<= 0``: ratio of the source length);
* ``translate_ids``: ``encoder_token_ids [B, S]`` -> ``tokens``, ``length``, ``scores`` (and ``alignment``
  with attention, so that such clients can replace ``<unk>`` and plot alignments) for clients that tokenize
  themselves; ``translate_ids_greedy`` likewise with greedy search;
* ``translate_text``: ``text [B]`` -> ``translation [B]``, ``score [B]``, beam search (the graph converted to
  text-in/text-out ONNX; it expects valid UTF-8, already lowercased when the model lowercases, as recorded in
  the metadata's ``text_graph_input``: onnxruntime's lowercasing op needs a locale many systems lack);
* ``sample``: ``text [B]``, ``temperature`` (float), ``top_k`` (0: whole vocabulary), ``seed`` -> ``text``,
  ``tokens``, ``length``, ``scores``: sampled replies (conversational models), seeded and repeatable;
* ``encode`` and ``decode_step``: the model split for runtimes that drive their own decoding loop;
* ``logits``: ``encoder_token_ids``, ``decoder_token_ids`` -> teacher-forced ``logits [B, T, V]``.

With copy attention (``model.copy``) logits have ``V + S`` entries, log-probabilities, and ids ``V + s`` in
``tokens`` copy the source word at encoder position ``s`` (text outputs show that word).
* ``decode_encoded`` / ``decode_encoded_greedy``: the encoder outputs (as ``decode_step`` takes them) ->
  ``tokens``, ``length``, ``scores`` (and ``alignment``); the ONNX ids graphs are these joined to ``tfs2s.export.onnx.encoder``'s
  encoder.
"""

from __future__ import annotations

import tensorflow as tf

from tfs2s.core import decoding
from tfs2s.core import features as F
from tfs2s.core import text_data as data
from tfs2s.core.decoding import ALIGNMENT
from tfs2s.export.savedmodel import ServingModule
from tfs2s.tasks.text.predictor import Translator


def _ids_outputs(result: dict) -> dict:
    out = {"tokens": result["tokens"], "length": result["lengths"], "scores": result["scores"]}
    if ALIGNMENT in result:
        out[ALIGNMENT] = result[ALIGNMENT]
    return out


class TextServingModule(ServingModule):
    """The ``tf.Module`` saved as the SavedModel: tokenizers, encoder, decoder and decoding signatures.

    Args:
        translator: A translator over the trained models.
        max_beam_width: Largest beam width a request may ask for.
    """

    SIGNATURES = ("serve", "translate_greedy", "translate_options", "translate_ids", "sample", "translate_ids_greedy",
                  "translate_text", "encode", "logits", "decode_step", "decode_encoded", "decode_encoded_greedy")

    def __init__(self, translator: Translator, max_beam_width: int = 16):
        super().__init__("tfs2s_serving", translator.models)
        self.translator = translator
        self.max_beam_width = max_beam_width
        models = translator.models
        self.state_names = list(models.state_names)
        self.has_attention = models.has_attention
        # Text outputs replace <unk> by the attended source word (decoding.replace_unknown, where it applies).
        self.replaces_unknown = translator.replaces_unknown
        self.beam = translator.options("beam")
        self.greedy = translator.options("greedy")
        self.step_keys = [k for k in sorted(models.encoder.output) if k != "mask"] + ["mask"]
        self._trace_signatures(models)

    def _trace_signatures(self, models) -> None:
        text = tf.TensorSpec([None], tf.string, name=F.SOURCE_TEXT)
        ids = tf.TensorSpec([None, None], tf.int32, name=F.ENCODER_TOKEN_IDS)
        scalar = lambda name: tf.TensorSpec([], tf.int32, name=name)  # noqa: E731
        self.serve = tf.function(self._serve, input_signature=[text])
        self.translate_greedy = tf.function(
            lambda t: self._outputs(self.translator.translate_tensor(t, self.greedy)), input_signature=[text])
        self.translate_options = tf.function(
            self._translate_options, input_signature=[text, scalar("beam_width"), scalar("n_best"), scalar("max_length")])
        self.translate_ids = tf.function(lambda x: self._translate_ids(x, self.beam), input_signature=[ids])
        self.sample = tf.function(self._sample, input_signature=[
            text, tf.TensorSpec([], tf.float32, name="temperature"), scalar("top_k"), scalar("seed")])
        self.translate_ids_greedy = tf.function(lambda x: self._translate_ids(x, self.greedy), input_signature=[ids])
        self.translate_text = tf.function(self._translate_text, input_signature=[text])
        self.encode = tf.function(self._encode, input_signature=[ids])
        self.logits = tf.function(self._logits, input_signature=[
            ids, tf.TensorSpec([None, None], tf.int32, name=F.DECODER_TOKEN_IDS)])
        encoder_spec = models.encoder.output
        step_specs = [tf.TensorSpec([None], tf.int32, name=F.DECODER_TOKEN_IDS)]
        for key in self.step_keys:
            shape = list(encoder_spec[key].shape)
            step_specs.append(tf.TensorSpec([None] + shape[1:], tf.bool if key == "mask" else tf.float32, name=key))
        self.decode_step = tf.function(self._decode_step, input_signature=step_specs)
        # Decoding from the encoder's outputs: the ONNX export joins these to an encoder written with ONNX's
        # recurrent operators (tfs2s.export.onnx.encoder), far faster than the converted Keras recurrences.
        self.decode_encoded = tf.function(lambda *s: self._decode_encoded(s, self.beam), input_signature=step_specs[1:])
        self.decode_encoded_greedy = tf.function(lambda *s: self._decode_encoded(s, self.greedy),
                                                 input_signature=step_specs[1:])

    def _outputs(self, result: dict) -> dict:
        out = {"text": result["text"][:, 0], "translations": result["text"], **_ids_outputs(result)}
        if self.has_attention:
            out[ALIGNMENT] = result[ALIGNMENT]
        return out

    def _serve(self, text):
        return self._outputs(self.translator.translate_tensor(text, self.beam))

    def _translate_options(self, text, beam_width, n_best, max_length):
        width = tf.clip_by_value(beam_width, 1, self.max_beam_width)
        options = self.beam.replace(beam_width=width, n_best=tf.clip_by_value(n_best, 1, width))
        tr = self.translator
        source_ids = tr.encode(text)
        limit = tf.where(max_length > 0, max_length, tr.max_length(source_ids))
        result = decoding.decode(tr.models.step, tr.models.initial_state(source_ids), limit, options)
        copies = tr.models.copies  # copied ids become source words: the text is needed
        return self._outputs(tr.finish(result, source_ids, text if self.replaces_unknown or copies else None,
                                       replace_unknown=self.replaces_unknown))

    def _sample(self, text, temperature, top_k, seed):
        options = self.translator.options("sample").replace(
            temperature=tf.maximum(temperature, 1e-3),  # 0 would divide by zero; tiny means nearly greedy
            top_k=tf.maximum(top_k, 0), seed=seed)
        result = self.translator.translate_tensor(text, options, alignment=False)  # alignment if replacing <unk>
        return {"text": result["text"][:, 0], **_ids_outputs(result)}

    def _translate_ids(self, ids, options):
        return _ids_outputs(self.translator.decode_ids(ids, options, alignment=self.has_attention))

    def _decode_encoded(self, state_values, options):
        state = dict(zip(self.step_keys, state_values))
        if self.has_attention:  # the decoders collect the alignment when the state holds one
            state[ALIGNMENT] = tf.zeros_like(tf.cast(state["mask"], tf.float32))
        lengths = tf.reduce_sum(tf.cast(state["mask"], tf.int32), axis=1)
        result = decoding.decode(self.translator.models.step, state, self.translator.length_limits(lengths), options)
        return _ids_outputs(result)

    def _translate_text(self, text):
        # Converted to ONNX, which has no UTF-8 repair op and a locale-dependent lowercasing op: the ONNX runtime
        # repairs and lowercases the input on the host. It collects the alignment only to replace <unk>.
        result = self.translator.translate_tensor(text, self.beam, portable=True, alignment=False)
        return {"translation": result["text"][:, 0], "score": result["scores"][:, 0]}

    def _logits(self, ids, decoder_ids):
        inputs = {F.ENCODER_TOKEN_IDS: data.at_least_one_column(ids), F.DECODER_TOKEN_IDS: decoder_ids}
        return {"logits": self.translator.models.teacher_forced(inputs, training=False)}

    def _encode(self, ids):
        return dict(self.translator.models.encoder(data.at_least_one_column(ids), training=False))

    def _decode_step(self, ids, *state_values):
        state = dict(zip(self.step_keys, state_values))
        if self.has_attention:
            state[ALIGNMENT] = tf.zeros_like(tf.cast(state["mask"], tf.float32))
        logits, new_state = self.translator.models.step(ids, state)
        out = {"logits": logits}
        out.update({f"next_{name}": new_state[name] for name in self.state_names})
        if self.has_attention:
            out[ALIGNMENT] = new_state[ALIGNMENT]
        return out
