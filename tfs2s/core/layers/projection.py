"""Output layer stored vocabulary-major, so a sampled softmax reads (and updates) only the rows it samples."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfs2s")
class VocabularyProjection(keras.layers.Layer):
    """``logits = inputs @ kernel^T + bias`` with ``kernel`` of shape ``[vocab_size, input_dim]``.

    A ``Dense`` layer stores ``[input_dim, vocab_size]``: picking the weights of a few sampled words from it
    is a gather along axis 1, whose gradient is a dense ``[input_dim, vocab_size]`` tensor, so every step would
    update the whole output layer. Stored word-major, the gather is along axis 0 and its gradient is a sparse
    ``IndexedSlices`` over the sampled words (which ``LazyAdam`` applies row by row).

    Args:
        vocab_size: Output vocabulary size.
    """

    def __init__(self, vocab_size: int, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(self.vocab_size, input_shape[-1]),
                                      initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.vocab_size,), initializer="zeros")

    def call(self, inputs):
        flat = tf.reshape(inputs, [-1, tf.shape(inputs)[-1]])
        # An explicit transpose rather than matmul(transpose_b=True): inside beam search's while loop (which holds
        # a tf.cond) tf2onnx dropped the transpose_b and wrote a MatMul onnxruntime refuses to load.
        logits = tf.matmul(flat, tf.transpose(self.kernel)) + self.bias
        return tf.reshape(logits, tf.concat([tf.shape(inputs)[:-1], [self.vocab_size]], 0))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.vocab_size)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size}


@keras.saving.register_keras_serializable(package="tfs2s")
class TiedEmbedding(VocabularyProjection):
    """A target embedding that is also the output layer (Press & Wolf 2017; Inan et al. 2017).

    One ``[vocab_size, dim]`` matrix embeds the decoder's input words (``mode="embed"``) and, with a bias of
    its own, scores the output words (``mode="logits"``, the default, so the layer stands wherever a
    ``VocabularyProjection`` does: sampled softmax, the hand-written ONNX decoder). Sharing the matrix halves
    the vocabulary-sized parameters and trains each word's row from both sides, which regularises the rare
    words of small corpora.

    Args:
        vocab_size: Target vocabulary size.
        dim: Embedding size, which is also the size of the hidden vectors it scores.
    """

    def __init__(self, vocab_size: int, dim: int, **kwargs):
        super().__init__(vocab_size, **kwargs)
        self.dim = dim

    def build(self, input_shape=None):
        # Built from the constructor's sizes: the first call may be either mode, so the input shape says nothing.
        self.kernel = self.add_weight(name="embeddings", shape=(self.vocab_size, self.dim),
                                      initializer=keras.initializers.RandomUniform(-0.05, 0.05))
        self.bias = self.add_weight(name="bias", shape=(self.vocab_size,), initializer="zeros")

    @property
    def embeddings(self):
        """The shared matrix, under the name a ``keras.layers.Embedding`` gives it."""
        return self.kernel

    def call(self, inputs, mode: str = "logits"):
        if mode == "embed":
            return tf.gather(self.kernel, tf.cast(inputs, "int32"))
        if mode != "logits":
            raise ValueError(f"mode must be 'embed' or 'logits', got {mode!r}")
        return super().call(inputs)

    def compute_output_spec(self, inputs, mode: str = "logits"):
        shape = (*inputs.shape, self.dim) if mode == "embed" else (*inputs.shape[:-1], self.vocab_size)
        return keras.KerasTensor(shape, dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}
