"""What an image export serves: the ``tf.Module`` saved as the SavedModel of an image-to-text model."""

from __future__ import annotations

import tensorflow as tf

from tfs2s.core import features as F
from tfs2s.export.savedmodel import ServingModule
from tfs2s.tasks.image.predictor import Captioner


class CaptionServingModule(ServingModule):
    """What an image export saves: the captioner and its signatures.

    * ``serving_default``: ``image_bytes [B]`` (PNG/JPEG of any size, resized in-graph to the model's as in
      training; TF Serving REST takes ``{"b64": ...}``) -> ``text [B]``,
      ``captions [B, N]``, ``tokens [B, N, L]``, ``length [B, N]``, ``scores [B, N]``, ``alignment [B, N, L, P]``
      (attention over the ``P`` image columns), by beam search;
    * ``caption_image``: the same from ``encoder_image [B, H, W, C]`` floats in ``[0, 1]``, already at the
      model's size (``tfs2s.data.images.decode_images`` makes them from image bytes);
    * ``caption_image_greedy`` / ``caption_image_beam``: ``encoder_image`` -> ``tokens``, ``length``, ``scores``
      (the graphs converted to ONNX; the vocabulary is ``assets/target_vocab.txt``).
    """

    SIGNATURES = ("serve", "caption_image", "caption_image_greedy", "caption_image_beam")

    def __init__(self, captioner: Captioner):
        super().__init__("tfs2s_caption_serving", captioner.models)
        self.captioner = captioner
        self.beam, self.greedy = captioner.options("beam"), captioner.options("greedy")
        pixels = tf.TensorSpec([None, *captioner.image_shape], tf.float32, name=F.ENCODER_IMAGE)
        self.serve = tf.function(self._serve, input_signature=[tf.TensorSpec([None], tf.string, name=F.IMAGE_BYTES)])
        self.caption_image = tf.function(self._caption_image, input_signature=[pixels])
        self.caption_image_greedy = tf.function(lambda x: self._ids(x, self.greedy), input_signature=[pixels])
        self.caption_image_beam = tf.function(lambda x: self._ids(x, self.beam), input_signature=[pixels])

    def _outputs(self, result: dict) -> dict:
        return {"text": result["text"][:, 0], "captions": result["text"], "tokens": result["tokens"],
                "length": result["lengths"], "scores": result["scores"], "alignment": result["alignment"]}

    def _serve(self, image_bytes):
        return self._caption_image(self.captioner.decode_bytes(image_bytes))

    def _caption_image(self, pixels):
        return self._outputs(self.captioner.caption_tensor(pixels, self.beam))

    def _ids(self, pixels, options):
        result = self.captioner.caption_tensor(pixels, options, alignment=False)
        return {"tokens": result["tokens"], "length": result["lengths"], "scores": result["scores"]}
