"""int8 matrix products for the ONNX graphs tfs2s writes: per-column symmetric weights, dynamic uint8 activations.

At batch 1 a decoding step is bound by reading the weights of its matrix products (the output layer alone is
``hidden × vocabulary`` floats per token). ``int8_matmul`` stores a product's weights as int8, one scale per output
column (symmetric: zero point 0), and quantises the activations row-block by row-block as the graph runs
(``DynamicQuantizeLinear``: uint8 with a scale and zero point from the tensor's own range), so a quarter of the
bytes are read per step. Only standard ONNX operators are used (``DynamicQuantizeLinear``, ``MatMulInteger``,
``Cast``, ``Mul``): the graphs load in every onnxruntime, onnxruntime-node and -web included.

The result is ``(x_q - x_zero) @ w_q`` in int32, times ``x_scale * w_scale[column]``. The error per product is
about ``|x| |w| / 127`` per term (7-bit weights, below); argmaxes whose logits are that close may change (the tests
bound how often).
The weights keep 7 bits ([-63, 63], onnxruntime's own ``reduce_range``): on x86 CPUs without VNNI (AVX2 only, as
many laptops and servers are) onnxruntime's uint8 × int8 kernels add products in pairs into 16 bits with saturation
(``vpmaddubsw``), and the activations' zero point puts them mid-range (a tanh state near 0 quantises to about 128),
so with 8-bit weights ``255 * 127 * 2`` overflows and a product can be off by far more than its rounding (measured on
an AVX2 machine: one GRU step's output off by 0.7 on a scale of 1). ``255 * 63 * 2`` fits, on every CPU.

This module needs numpy only; the onnx package is imported where a node is written.
"""

from __future__ import annotations

import numpy as np

QUANTIZE_CHOICES = (None, "int8")  # what build_greedy_decoder / export_onnx take as ``quantize``
INT8_LEVELS = 63  # symmetric, 7 bits (see above): -w quantises to -q and no zero point is needed


def check_quantize(quantize) -> None:
    """Raises ``ValueError`` (a user's mistake) unless ``quantize`` is one of ``QUANTIZE_CHOICES``."""
    if quantize not in QUANTIZE_CHOICES:
        raise ValueError(f"quantize must be one of {QUANTIZE_CHOICES}, not {quantize!r}")


def quantize_columns(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``kernel [K, N]`` float -> int8 ``[K, N]`` and float32 scales ``[N]`` with ``kernel ≈ q * scale``.

    Each output column gets its own scale (its largest magnitude maps to ``INT8_LEVELS``), so a column of small weights keeps
    its precision beside columns of large ones. An all-zero column gets scale 1 (its int8 weights are 0).
    """
    kernel = np.asarray(kernel, np.float32)
    largest = np.abs(kernel).max(axis=0)
    scale = np.where(largest > 0, largest / INT8_LEVELS, 1.0).astype(np.float32)
    q = np.clip(np.rint(kernel / scale), -INT8_LEVELS, INT8_LEVELS).astype(np.int8)
    return q, scale


def int8_matmul(g, x: str, kernel: np.ndarray, name: str) -> str:
    """``x @ kernel`` (``x [..., K]`` float32) with int8 weights and dynamically quantised activations.

    Args:
        g: The ``GraphBuilder`` that gets the nodes and initialisers.
        x: The float32 activations' name.
        kernel: The float weights ``[K, N]``; stored quantised (``quantize_columns``).
        name: Prefix of the initialisers' names (unique per product).

    Returns:
        The name of the float32 product ``[..., N]``.
    """
    q, scale = quantize_columns(kernel)
    return int8_product(g, x, g.const(f"{name}/kernel_int8", q), g.const(f"{name}/kernel_scale", scale), name)


def int8_product(g, x: str, kernel_int8: str, kernel_scale: str, name: str, output: str | None = None) -> str:
    """The nodes of ``int8_matmul`` on weights already stored: int8 ``[K, N]`` and float32 scales ``[N]``
    (``name``: prefix of the activations' quantised names).

    ``tfs2s.export.onnx.int8_pass`` calls it directly so that a weight read by several products is stored once.
    """
    from onnx import TensorProto  # the onnx extra is optional: needed only when a graph is written

    x_q, x_scale, x_zero = g.node("DynamicQuantizeLinear", [x],
                                  [f"{name}/x_q", f"{name}/x_scale", f"{name}/x_zero"])
    product = g.node("MatMulInteger", [x_q, kernel_int8, x_zero])
    scales = g.node("Mul", [x_scale, kernel_scale])  # [N]: one multiply per column
    return g.node("Mul", [g.node("Cast", [product], to=TensorProto.FLOAT), scales], [output] if output else None)
