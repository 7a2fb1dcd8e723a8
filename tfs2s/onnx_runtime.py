"""Alias of ``tfs2s.export.onnx.runtime`` kept for one release (the README and users import it from here).

Imports no TensorFlow, like the module it stands for.
"""

from tfs2s.export.onnx.runtime import *  # noqa: F401,F403
from tfs2s.export.onnx.runtime import OnnxCaptioner, OnnxForecaster, OnnxTranslator  # noqa: F401
