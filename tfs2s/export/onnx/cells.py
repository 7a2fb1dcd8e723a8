"""One time step of a Keras GRU / LSTM cell written out as matrix products and gates.

ONNX's ``GRU`` / ``LSTM`` operators take float weights only. Written out, a cell's two matrix products (input and
recurrent) go through ``GraphBuilder.matmul``, so an int8 ``GraphBuilder`` quantises them
(``tfs2s.export.onnx.quantize``); in float32 the step equals the fused operator (checked by
tests/test_onnx_int8.py). Weights are read in Keras' own layouts and gate orders, so no reordering is needed:

- GRU (``reset_after=True``, ONNX's ``linear_before_reset=1``), gates z, r, n::

      [xz xr xn] = x K + b_input      [hz hr hn] = h R + b_recurrent
      z = σ(xz + hz)   r = σ(xr + hr)   n = tanh(xn + r ⊙ hn)   h' = n + z ⊙ (h - n)

- LSTM, gates i, f, c, o::

      [i f g o] = x K + h R + b
      c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g)   h' = σ(o) ⊙ tanh(c')
"""

from __future__ import annotations

import numpy as np

from tfs2s.export.onnx.graph import GraphBuilder, check_activations, weight_array


def cell_step(g: GraphBuilder, layer, cell: str, x: str, states: list[str], name: str) -> list[str]:
    """The new states of one step of ``layer`` (``.name`` and ``.cell``, a Keras GRU/LSTM cell) on ``x [B, D]``.

    Args:
        g: The builder (its ``quantize`` decides the products' weights).
        layer: Anything with the Keras recurrent layer's ``name`` and ``cell``.
        cell: ``gru`` or ``lstm``.
        x: The input ``[B, D]``.
        states: ``[h]`` (GRU) or ``[h, c]`` (LSTM), each ``[B, H]``.
        name: Prefix of the step's initialisers (unique per layer).

    Returns:
        ``[h']`` or ``[h', c']``.

    Raises:
        g.unsupported: Activations other than tanh / sigmoid, or a GRU with ``reset_after=False``.
    """
    check_activations(layer, g.unsupported)
    keras_cell = layer.cell
    if cell == "gru" and not getattr(keras_cell, "reset_after", False):
        raise g.unsupported("only GRUs with reset_after=True (the Keras default) are written to ONNX")
    kernel, recurrent = weight_array(keras_cell.kernel), weight_array(keras_cell.recurrent_kernel)
    hidden = recurrent.shape[0]
    if cell == "lstm":
        bias = weight_array(keras_cell.bias) if keras_cell.use_bias else np.zeros(4 * hidden, np.float32)
        return _lstm_step(g, x, states, kernel, recurrent, bias, hidden, name)
    bias = weight_array(keras_cell.bias) if keras_cell.use_bias else np.zeros((2, 3 * hidden), np.float32)
    return _gru_step(g, x, states[0], kernel, recurrent, bias.reshape(2, 3 * hidden), hidden, name)


def _gru_step(g: GraphBuilder, x: str, h: str, kernel, recurrent, bias, hidden: int, name: str) -> list[str]:
    """GRU gates z, r, n (Keras' ``reset_after``: the reset gate scales the recurrent product, bias included)."""
    n, c = g.node, g.const
    xw = n("Add", [g.matmul(x, kernel, f"{name}/kernel"), c(f"{name}/input_bias", bias[0])])
    hw = n("Add", [g.matmul(h, recurrent, f"{name}/recurrent_kernel"), c(f"{name}/recurrent_bias", bias[1])])
    sizes = c(f"{name}/split_zr_n", np.array([2 * hidden, hidden], np.int64))
    x_zr, x_n = n("Split", [xw, sizes], [f"{name}/x_zr", f"{name}/x_n"], axis=1)
    h_zr, h_n = n("Split", [hw, sizes], [f"{name}/h_zr", f"{name}/h_n"], axis=1)
    z, r = _split_even(g, n("Sigmoid", [n("Add", [x_zr, h_zr])]), 2, hidden, f"{name}/zr")
    candidate = n("Tanh", [n("Add", [x_n, n("Mul", [r, h_n])])])
    return [n("Add", [candidate, n("Mul", [z, n("Sub", [h, candidate])])])]


def _lstm_step(g: GraphBuilder, x: str, states: list[str], kernel, recurrent, bias, hidden: int,
               name: str) -> list[str]:
    """LSTM gates i, f, c, o (Keras' order)."""
    n, c = g.node, g.const
    h, cell = states
    gates = n("Add", [n("Add", [g.matmul(x, kernel, f"{name}/kernel"),
                                g.matmul(h, recurrent, f"{name}/recurrent_kernel")]), c(f"{name}/bias", bias)])
    i, f, candidate, o = _split_even(g, gates, 4, hidden, f"{name}/gates")
    new_cell = n("Add", [n("Mul", [n("Sigmoid", [f]), cell]),
                         n("Mul", [n("Sigmoid", [i]), n("Tanh", [candidate])])])
    return [n("Mul", [n("Sigmoid", [o]), n("Tanh", [new_cell])]), new_cell]


def _split_even(g: GraphBuilder, x: str, parts: int, hidden: int, name: str) -> list[str]:
    """``x [B, parts * hidden]`` cut into ``parts`` tensors ``[B, hidden]`` (opset 17's Split takes the sizes)."""
    sizes = g.const(f"{name}/split", np.full(parts, hidden, np.int64))
    return g.node("Split", [x, sizes], [f"{name}/part_{k}" for k in range(parts)], axis=1)
