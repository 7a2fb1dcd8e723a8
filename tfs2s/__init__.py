"""tfs2s: RNN sequence-to-sequence models for TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"
