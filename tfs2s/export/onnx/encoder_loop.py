"""The token encoder's recurrent layers written out as one ONNX ``Loop`` per layer, so their products can be int8.

ONNX's fused ``GRU`` / ``LSTM`` nodes (``tfs2s.export.onnx.encoder``) take float32 weights only. At batch 1 the
encoder's recurrence reads its recurrent matrices once per source word and direction, which on the Multi30k model
(c) was about 40 % of an int8 greedy graph's time per sentence. Here each time step is ``cells.cell_step`` (the
products through ``GraphBuilder.matmul``, int8 where the builder quantises) inside a ``Loop`` over the source
positions, with the fused nodes' semantics for right-padded ids:

- a row's states stop changing after its last word (the steps past its length keep them), and its outputs there
  are zero;
- the backward direction of a bidirectional layer steps through each row's words reversed in place
  (``ReverseSequence`` over the row's length), in the same loop as the forward direction, and its outputs are
  reversed back after the loop: both directions see a word at the same step and stop at the same one;
- final states are the states after a row's words (zero for a row of padding only, as ``nonempty`` says).

Written in float32 (``quantize=None``) the result equals the fused nodes' within float rounding; the tests check
that, and the int8 version's agreement with TensorFlow.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from tfs2s.core.models import ENCODER_BIRNN, ENCODER_RNN
from tfs2s.export.onnx.cells import cell_step
from tfs2s.export.onnx.graph import GraphBuilder


def looped_recurrent_layers(g: GraphBuilder, models, x: str, run_lengths: str, nonempty: str) -> tuple[str, list]:
    """The (bi)GRU/LSTM layers over time-major ``x [S, B, D]``, each a ``Loop`` over the ``S`` positions.

    Args:
        g: The encoder's builder (its ``quantize`` decides the products' weights, in the loop bodies too).
        models: The ``Seq2SeqModels``.
        x: Time-major embedded ids ``[S, B, D]``.
        run_lengths: ``[B]`` int32, each row's length (at least 1).
        nonempty: ``[B, 1]`` float, 0 for rows of padding only.

    Returns:
        The memory ``[B, S, dirs * H]`` and, per layer, one ``[B, dirs * H]`` tensor per state (h, then c for
        LSTMs), as ``encoder._recurrent_layers`` returns them.
    """
    from onnx import TensorProto  # the onnx extra is optional: needed only when a graph is written

    cfg, const, node = models.config, g.const, g.node
    per_layer = 2 if cfg.cell == "lstm" else 1
    lengths = node("Cast", [run_lengths], to=TensorProto.INT64)  # ReverseSequence wants int64 lengths
    shape = node("Shape", [x])
    steps = node("Squeeze", [node("Slice", [shape, const("loop_zero", np.array([0], np.int64)),
                                            const("loop_one", np.array([1], np.int64))]),
                             const("loop_axis0", np.array([0], np.int64))])
    zeros = node("ConstantOfShape", [node("Concat", [node("Slice", [shape, const("loop_one_b", np.array([1], np.int64)),
                                                                    const("loop_two", np.array([2], np.int64))]),
                                                     const("loop_hidden", np.array([cfg.hidden], np.int64))], axis=0)])
    final_states = []
    for i in range(cfg.layers):
        directions = _directions(models, i)
        inputs = [x]
        if len(directions) == 2:  # each row's words reversed in place; its padding stays where it is
            inputs.append(node("ReverseSequence", [x, lengths], batch_axis=1, time_axis=0))
        body = _layer_body(g, cfg.cell, directions, inputs, run_lengths, i)
        carried = [f"rnn_{i}_final_{d}_{j}" for d in range(len(directions)) for j in range(per_layer)]
        scanned = [f"rnn_{i}_y_{d}" for d in range(len(directions))]
        outputs = node("Loop", [steps, "", *([zeros] * len(carried))], carried + scanned, body=body)  # >= 2 outputs
        finals, ys = outputs[:len(carried)], outputs[len(carried):]
        if len(directions) == 2:
            ys[1] = node("ReverseSequence", [ys[1], lengths], batch_axis=1, time_axis=0)
        x = node("Concat", ys, axis=2) if len(ys) > 1 else ys[0]  # [S, B, dirs * H], forward then backward
        final_states.append([
            node("Mul", [node("Concat", [finals[d * per_layer + j] for d in range(len(directions))], axis=1)
                         if len(directions) > 1 else finals[j], nonempty])
            for j in range(per_layer)])
    return node("Transpose", [x], perm=[1, 0, 2]), final_states


def _directions(models, i: int) -> list:
    """Layer ``i``'s recurrent layers, forward then backward (anything with the Keras layer's ``name`` and
    ``cell``)."""
    encoder = models.encoder
    if models.config.bidirectional:
        wrapper = encoder.get_layer(ENCODER_BIRNN.format(i=i))
        return [SimpleNamespace(name=f"{wrapper.name}_forward", cell=wrapper.forward_layer.cell),
                SimpleNamespace(name=f"{wrapper.name}_backward", cell=wrapper.backward_layer.cell)]
    layer = encoder.get_layer(ENCODER_RNN.format(i=i))
    return [SimpleNamespace(name=layer.name, cell=layer.cell)]


def _layer_body(g: GraphBuilder, cell: str, directions: list, inputs: list[str], run_lengths: str, i: int):
    """The ``Loop`` body of layer ``i``: one step of every direction on its input at position ``iter``.

    Carried: the states of each direction (``[B, H]``); scanned out: each direction's output, zero past a row's
    length.
    """
    from onnx import TensorProto, helper  # the onnx extra is optional: needed only when a graph is written

    b = GraphBuilder(f"{g.prefix}rnn_{i}_body/", unsupported=g.unsupported, quantize=g.quantize)
    per_layer = 2 if cell == "lstm" else 1
    iteration, condition = b.prefix + "iter", b.prefix + "cond"
    states_in = [f"{b.prefix}state_{d}_{j}" for d in range(len(directions)) for j in range(per_layer)]
    t = b.node("Cast", [iteration], to=TensorProto.INT32)
    valid = b.node("Unsqueeze", [b.node("Less", [t, run_lengths]), b.const("axis_m1", np.array([-1], np.int64))])
    keep = b.node("Cast", [valid], to=TensorProto.FLOAT)  # [B, 1]: 1 while the row has words left
    carried, scanned = [], []
    for d, layer in enumerate(directions):
        x_t = b.node("Gather", [inputs[d], iteration], axis=0)  # [B, D]
        states = states_in[d * per_layer:(d + 1) * per_layer]
        new = cell_step(b, layer, cell, x_t, states, f"dir_{d}")
        carried += [b.node("Where", [valid, n, s]) for n, s in zip(new, states)]
        scanned.append(b.node("Mul", [new[0], keep]))
    condition_out = b.node("Identity", [condition])

    def info(name, dtype, rank):
        return helper.make_tensor_value_info(name, dtype, [None] * rank)

    return helper.make_graph(
        b.nodes, f"encoder_rnn_{i}_step",
        [info(iteration, TensorProto.INT64, 0), info(condition, TensorProto.BOOL, 0)]
        + [info(s, TensorProto.FLOAT, 2) for s in states_in],
        [info(condition_out, TensorProto.BOOL, 0)] + [info(s, TensorProto.FLOAT, 2) for s in carried + scanned],
        b.inits)
