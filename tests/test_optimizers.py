import numpy as np
import tensorflow as tf
import keras

from tfs2s.core.optimizers import LazyAdam


def test_dense_gradients_update_as_keras_adam():
    start = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    ours, theirs = keras.Variable(start), keras.Variable(start)
    lazy, adam = LazyAdam(learning_rate=0.1), keras.optimizers.Adam(learning_rate=0.1)
    for step in range(3):
        grad = tf.constant(np.full((4, 3), step + 1.0, "float32"))
        lazy.apply_gradients([(grad, ours)])
        adam.apply_gradients([(grad, theirs)])
    # The fused kernel rounds differently; a wrong bias correction or moment would be off by far more (~1e-3).
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5)


def test_sparse_gradients_touch_only_their_rows_and_match_adam_there():
    start = np.random.default_rng(1).normal(size=(6, 2)).astype("float32")
    ours, theirs = keras.Variable(start), keras.Variable(start)
    lazy, adam = LazyAdam(learning_rate=0.1), keras.optimizers.Adam(learning_rate=0.1)
    # Row 1 twice (summed, as in a dense gradient), row 4 once; rows 0, 2, 3, 5 untouched.
    grad = tf.IndexedSlices(tf.constant([[1.0, 2.0], [0.5, 0.5], [3.0, -1.0]]), tf.constant([1, 4, 1]),
                            dense_shape=tf.constant([6, 2]))
    lazy.apply_gradients([(grad, ours)])
    adam.apply_gradients([(tf.convert_to_tensor(grad), theirs)])
    np.testing.assert_array_equal(ours.numpy()[[0, 2, 3, 5]], start[[0, 2, 3, 5]])
    # On a first step the touched rows move exactly as with Adam (no earlier moments to decay).
    np.testing.assert_allclose(ours.numpy()[[1, 4]], theirs.numpy()[[1, 4]], atol=1e-5)
    # A second sparse step on row 4 only leaves row 1 where it was (Adam would keep moving it on its momentum).
    before = ours.numpy().copy()
    lazy.apply_gradients([(tf.IndexedSlices(tf.constant([[1.0, 1.0]]), tf.constant([4]), tf.constant([6, 2])), ours)])
    np.testing.assert_array_equal(ours.numpy()[1], before[1])
    assert not np.allclose(ours.numpy()[4], before[4])
