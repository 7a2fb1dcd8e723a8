"""Custom Keras layers of tfs2s (all registered for ``.keras`` serialisation under the ``tfs2s`` package)."""

from tfs2s.core.layers.attention import BahdanauAttention, LuongAttention
from tfs2s.core.layers.copy import CopyGenerator, ExtendedIdsToUnk
from tfs2s.core.layers.projection import TiedEmbedding, VocabularyProjection
from tfs2s.core.layers.regularisation import (DropConnectGRUCell, DropConnectLSTMCell, DropConnectRNN, LockedDropout,
                                              WordDropout)
from tfs2s.core.layers.sequence import BroadcastOverTime, FullMask, LastStep, LevelShift, PaddingMask, WindowLinear

__all__ = ["BahdanauAttention", "LuongAttention", "BroadcastOverTime", "FullMask", "LastStep", "LevelShift",
           "PaddingMask", "WindowLinear", "VocabularyProjection", "TiedEmbedding", "LockedDropout", "WordDropout",
           "DropConnectGRUCell", "DropConnectLSTMCell", "DropConnectRNN", "CopyGenerator", "ExtendedIdsToUnk"]
