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
