"""Optimizers: Keras' Adam, and a lazy Adam whose sparse (embedding) updates touch only the rows in the batch."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfs2s")
class LazyAdam(keras.optimizers.Adam):
    """Adam that applies sparse gradients (``tf.IndexedSlices``) to the rows they name only.

    Keras' Adam densifies the gradient of an embedding or of a sampled output layer, so each step decays the
    moments of, and moves, every row of a 30k-word matrix although a batch touches a few hundred. Here the
    moments and weights of the other rows stay as they are until their word occurs (TensorFlow Addons'
    ``LazyAdam`` semantics). Dense gradients follow ``keras.optimizers.Adam``'s formula in TensorFlow's fused
    ``ResourceApplyAdam`` kernel (one pass over the weights instead of one per elementwise op; ``amsgrad``
    falls back to Keras' implementation).
    """

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            if self.amsgrad:
                return super().update_step(gradient, variable, learning_rate)
            return self._fused_dense_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        # Repeated indices (a word twice in a batch) are summed first, as a dense gradient would have them.
        rows, position = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(tf.cast(gradient.values, dtype), position, tf.size(rows))
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        m_rows = tf.gather(m, rows) * beta_1 + values * (1 - beta_1)
        v_rows = tf.gather(v, rows) * beta_2 + tf.square(values) * (1 - beta_2)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        self.assign_sub(variable, tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))

    def _fused_dense_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        handle = lambda v: (v.value if isinstance(v, keras.Variable) else v).handle  # noqa: E731
        tf.raw_ops.ResourceApplyAdam(
            var=handle(variable), m=handle(self._momentums[index]), v=handle(self._velocities[index]),
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype),
            beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))
