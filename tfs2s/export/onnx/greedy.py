"""Greedy decoding as an ONNX graph written with ONNX operators, the loop included.

tf2onnx turns the one-step decoder and the ``tf.while_loop`` of ``decoding.greedy_search`` into a ``Loop``
whose body runs some 150 small nodes per token (Keras' ``Dense`` on 3-D inputs becomes a ``Tensordot`` of
shape arithmetic, boolean selects become casts and products). At batch 1 that bookkeeping costs as much as
the matrix products. This module writes the same computation from the trained weights with about 60 nodes per
step: the GRU/LSTM cells as ONNX ``GRU`` / ``LSTM`` nodes of one time step, the attention, the output layer
(with the ``<pad>`` / ``<s>`` ban folded into its bias) and the greedy bookkeeping.

The graph takes the encoder's outputs (``memory``, ``mask``, ``keys`` or ``context``, ``state_*``), as the
``decode_encoded_greedy`` signature does, and returns ``tokens [B, 1, L]``, ``length [B, 1]``, ``scores [B, 1]``
(and, with attention, ``alignment [B, 1, L, S]``: each step's attention weights, zero once a row is done) with that
signature's semantics (per-input length limits ``ceil(ratio * source length) + offset``,
``min_length``); joined to ``tfs2s.export.onnx.encoder``'s encoder it is ``translate_ids_greedy.onnx``. Parity with
TensorFlow's greedy search is checked by the tests for each supported configuration.
"""

from __future__ import annotations

from types import SimpleNamespace

import keras
import numpy as np

from tfs2s.core import features as F
from tfs2s.core.decoding import IMPOSSIBLE_SCORE
from tfs2s.core.layers.attention import MASKED_SCORE
from tfs2s.core.layers.projection import VocabularyProjection
from tfs2s.core.models import (ATTENTION, ATTENTIONAL_HIDDEN, CONTEXT, DECODER_RNN, KEYS, MASK, MEMORY,
                               OUTPUT_PROJECTION, RNN_CELL, banned_token_bias, output_layer, target_embedding_layer)
from tfs2s.export.onnx.cells import cell_step
from tfs2s.export.onnx.graph import GraphBuilder, make_model, weight_array
from tfs2s.export.onnx.quantize import check_quantize

PREFIX = "tfs2s_greedy/"
OUTPUTS = ["tokens", "length", "scores", "alignment"]
LOOP_STATE = ["ids", "finished", "lengths", "log_probs", "tokens"]  # carried by the Loop, before the RNN states
ALIGNMENT_STATE = "alignment"  # carried after LOOP_STATE by attention models: clients replace <unk>, plot heatmaps


def loop_state(models) -> list[str]:
    """The Loop's carried values before the RNN states: ``LOOP_STATE``, then the alignment with attention."""
    return LOOP_STATE + ([ALIGNMENT_STATE] if models.has_attention else [])


class UnsupportedDecoder(ValueError):
    """The model's decoder is not one this module writes (it is then converted by tf2onnx)."""


def i64(value) -> np.ndarray:
    """``value`` as an int64 array (shapes, axes, ONNX's loop counter)."""
    return np.array(value, np.int64)


def i32(value) -> np.ndarray:
    """``value`` as an int32 array (token ids, lengths)."""
    return np.array(value, np.int32)


def f32(value) -> np.ndarray:
    """``value`` as a float32 array."""
    return np.array(value, np.float32)


def build_greedy_decoder(models, decoding, quantize: str | None = None,
                         fused_cells: bool | None = None) -> "onnx.ModelProto":  # noqa: F821
    """Greedy decoding of ``models`` (a ``Seq2SeqModels``) as an ONNX model over the encoder's outputs.

    Args:
        models: Token-to-token models (softmax head; a ``Dense`` output layer or the sampled-softmax models'
            ``VocabularyProjection``).
        decoding: The ``DecodingConfig`` whose ``max_length_ratio``, ``max_length_offset`` and ``min_length``
            the exported greedy signature uses.
        quantize: ``None`` (float32) or ``"int8"``: the decoder's recurrent products, attentional hidden layer and
            output layer inside the loop get int8 weights (per output column) and dynamically quantised
            activations (``tfs2s.export.onnx.quantize``); attention, softmax and bookkeeping stay float32.
        fused_cells: Whether the recurrent layers are ONNX ``GRU`` / ``LSTM`` nodes (float weights only) or written
            out as products and gates (``tfs2s.export.onnx.cells``). Default: fused unless quantised; an int8
            graph always writes them out.

    Raises:
        ValueError: ``quantize`` is not one of ``None``, ``"int8"``.
        UnsupportedDecoder: Repeat blocking, regression or image models, or recurrent layers configured unlike
            tfs2s' defaults.
    """
    check_quantize(quantize)
    fused_cells = quantize is None if fused_cells is None else fused_cells and quantize is None
    projection = _written_projection(models, decoding)
    state_names = list(models.state_names)
    inputs = [MEMORY, MASK] + ([KEYS] if models.has_attention else [CONTEXT]) + state_names
    g = GraphBuilder(PREFIX, public=inputs + OUTPUTS, unsupported=UnsupportedDecoder)
    outer = _before_loop(g, models, decoding)
    body = _loop_body(models, decoding, projection, outer, quantize, fused_cells)
    carried = loop_state(models)
    final = g.node("Loop", [outer["trips"], outer["go"], *(outer[f"{k}0"] for k in carried), *state_names],
                   [f"final_{k}" for k in carried + state_names], body=body)
    final = dict(zip(carried, final))
    outputs = [("tokens", "tokens"), ("lengths", "length"), ("log_probs", "scores")]
    outputs += [(ALIGNMENT_STATE, "alignment")] if models.has_attention else []
    for value, name in outputs:
        g.node("Unsqueeze", [final[value], g.const(f"axis1_out_{name}", i64([1]))], [name])
    return _decoder_model(g, models, inputs)


def _written_projection(models, decoding):
    """The output layer of ``models``, once checked that this module writes their greedy decoding.

    Raises:
        UnsupportedDecoder: Models or decoding options this module does not write.
    """
    cfg = models.config
    if cfg.output_head != "softmax" or cfg.input_encoder != "tokens":
        raise UnsupportedDecoder("only token-to-token models are written to ONNX by hand")
    if decoding.no_repeat_ngram_size:
        raise UnsupportedDecoder("repeat blocking is converted by tf2onnx, not written here")
    if getattr(cfg, "copy", False):
        raise UnsupportedDecoder("copy attention (a distribution over V + S ids) is converted by tf2onnx")
    projection = output_layer(models.decoder_step)
    if not isinstance(projection, (keras.layers.Dense, VocabularyProjection)):
        raise UnsupportedDecoder(f"output layer {type(projection).__name__} is converted by tf2onnx")
    return projection


def _before_loop(g: GraphBuilder, models, decoding) -> dict:
    """What the loop reads from outside: length limits, trip count, initial loop state, the attention's mask.

    Returns:
        Names of ``limits`` ``[B]``, ``positions`` ``[L]``, ``trips``, ``go``, the initial loop state ``ids0``,
        ``finished0``, ``lengths0``, ``log_probs0``, ``tokens0``, and ``keep`` / ``mask_bias`` / ``keys_t``
        (attention).
    """
    from onnx import TensorProto, helper  # the onnx extra is optional: needed only when a graph is written

    c, n = g.const, g.node
    batch = n("Slice", [n("Shape", [MASK]), c("zero_1", i64([0])), c("one_1", i64([1]))])  # [1] int64
    lengths = n("ReduceSum", [n("Cast", [MASK], to=TensorProto.INT32), c("axis_1", i64([1]))], keepdims=0)
    # As Translator.length_limits: ceil(ratio * length) + offset, in float32 then int32.
    limits = n("Add", [n("Cast", [n("Ceil", [n("Mul", [n("Cast", [lengths], to=TensorProto.FLOAT),
                                                       c("ratio", f32(decoding.max_length_ratio))])])],
                         to=TensorProto.INT32), c("offset", i32(decoding.max_length_offset))])
    max_length = n("ReduceMax", [n("Concat", [c("zero_i32_1", i32([0])), limits], axis=0)], keepdims=0)
    positions = n("Range", [c("zero_i32", i32(0)), max_length, c("one_i32", i32(1))])  # [L]
    trips = n("Cast", [max_length], to=TensorProto.INT64)
    go = n("Greater", [max_length, c("zero_i32_b", i32(0))])

    def filled(value, dtype_value, shape):
        return n("ConstantOfShape", [shape], value=helper.make_tensor("v", dtype_value, [1], [value]))

    width = n("Concat", [batch, n("Reshape", [trips, c("shape_1", i64([1]))])], axis=0)
    outer = dict(limits=limits, positions=positions, trips=trips, go=go,
                 ids0=filled(F.BOS_ID, TensorProto.INT32, batch), finished0=filled(False, TensorProto.BOOL, batch),
                 lengths0=filled(0, TensorProto.INT32, batch), log_probs0=filled(0.0, TensorProto.FLOAT, batch),
                 tokens0=filled(0, TensorProto.INT32, width))
    outer["keep"] = n("Cast", [MASK], to=TensorProto.FLOAT)
    outer["mask_bias"] = n("Mul", [n("Sub", [c("one_f", f32(1.0)), outer["keep"]]),
                                   c("neg", f32(MASKED_SCORE))])  # as masked_softmax
    outer["keys_t"] = n("Transpose", [KEYS], perm=[0, 2, 1]) if models.config.attention == "luong" else None
    if models.has_attention:  # [B, L, S] zeros: each step writes its attention weights at its position
        source = n("Slice", [n("Shape", [MASK]), c("one_1b", i64([1])), c("two_1", i64([2]))])
        outer[f"{ALIGNMENT_STATE}0"] = filled(0.0, TensorProto.FLOAT, n("Concat", [width, source], axis=0))
    return outer


def _loop_body(models, decoding, projection, outer: dict, quantize: str | None, fused_cells: bool):
    """The Loop's body graph: one greedy step over the loop state (and the outer scope's ``outer`` tensors)."""
    from onnx import TensorProto  # the onnx extra is optional: needed only when a graph is written

    step = models.decoder_step
    # The Loop body: its nodes and weights (int8 products where quantised).
    b = GraphBuilder(PREFIX + "body/", unsupported=UnsupportedDecoder, quantize=quantize)
    names = ["iter", "cond"] + loop_state(models) + list(models.state_names)
    body_in = {name: PREFIX + "body/in_" + name for name in names}
    t = b.node("Cast", [body_in["iter"]], to=TensorProto.INT32)
    x = b.node("Gather", [b.const("target_embedding", weight_array(target_embedding_layer(step).embeddings)),
                          body_in["ids"]])
    if not models.has_attention:
        x = b.node("Concat", [x, CONTEXT], axis=1)
    x, new_states = _body_recurrent(b, models, x, body_in, fused_cells)
    context, weights = _body_attention(b, models, x, outer) if models.has_attention else (CONTEXT, None)
    hidden = b.dense(b.node("Concat", [x, context], axis=1), step.get_layer(ATTENTIONAL_HIDDEN), ATTENTIONAL_HIDDEN)
    logits = _body_logits(b, projection, hidden, t, int(decoding.min_length))
    go_on, carried = _body_choice(b, logits, t, body_in, outer, weights)
    return _body_graph(b, body_in, names, [go_on, *carried, *new_states])


def _body_recurrent(b: GraphBuilder, models, x: str, body_in: dict, fused: bool) -> tuple[str, list]:
    """The decoder's recurrent layers, one time step each (ONNX GRU / LSTM of length 1 where ``fused``, else
    ``cells.cell_step``); returns the top layer's output and the new states."""
    cfg, step, state_names = models.config, models.decoder_step, list(models.state_names)
    per_layer = 2 if cfg.cell == "lstm" else 1
    new_states = []
    for i in range(cfg.layers):
        name = DECODER_RNN.format(i=i)
        # The step model holds the recurrent layers' cells; the weight converters read ``layer.cell``.
        layer = SimpleNamespace(name=name, cell=step.get_layer(RNN_CELL.format(rnn=name)))
        if not fused:
            layer_states = cell_step(b, layer, cfg.cell, x,
                                     [body_in[state_names[i * per_layer + j]] for j in range(per_layer)], f"rnn_{i}")
            new_states.extend(layer_states)
            x = layer_states[0]
            continue
        w, r, bias = b.rnn_weights(layer, cfg.cell)
        weights = [b.const(f"rnn_{i}/{k}", v[None]) for k, v in (("W", w), ("R", r), ("B", bias))]
        x_seq = b.node("Unsqueeze", [x, b.const(f"axis0_{i}", i64([0]))])
        initial = [b.node("Unsqueeze", [body_in[state_names[i * per_layer + j]], b.const(f"axis0_s{i}_{j}", i64([0]))])
                   for j in range(per_layer)]
        if cfg.cell == "lstm":
            _, h, cell = b.node("LSTM", [x_seq, *weights, "", *initial], ["", f"rnn_{i}_h", f"rnn_{i}_c"],
                                hidden_size=cfg.hidden)
            layer_states = [h, cell]
        else:
            _, h = b.node("GRU", [x_seq, *weights, "", *initial], ["", f"rnn_{i}_h"], hidden_size=cfg.hidden,
                          linear_before_reset=1)
            layer_states = [h]
        layer_states = [b.node("Squeeze", [s, b.const(f"axis0_o{i}_{j}", i64([0]))])
                        for j, s in enumerate(layer_states)]
        new_states.extend(layer_states)
        x = layer_states[0]
    return x, new_states


def _body_attention(b: GraphBuilder, models, x: str, outer: dict) -> tuple[str, str]:
    """The attention's context ``[N, D]`` and weights ``[N, S]`` for the query ``x`` (Bahdanau or Luong scores,
    masked softmax)."""
    bc, bn = b.const, b.node
    layer = models.decoder_step.get_layer(ATTENTION)
    if models.config.attention == "bahdanau":
        q = bn("Add", [bn("MatMul", [x, bc("query_kernel", weight_array(layer.query_dense.kernel))]),
                       bc("attention_bias", weight_array(layer.bias))])
        energies = bn("Tanh", [bn("Add", [bn("Unsqueeze", [q, bc("axis1", i64([1]))]), KEYS])])
        scores = bn("Squeeze", [bn("MatMul", [energies, bc("v", weight_array(layer.v)[:, None])]),
                                bc("axis2", i64([2]))])
    else:
        scores = bn("Mul", [bn("Squeeze", [bn("MatMul", [bn("Unsqueeze", [x, bc("axis1", i64([1]))]),
                                                         outer["keys_t"]]),
                                           bc("axis1_s", i64([1]))]), bc("scale", f32(layer.scale))])
    weights = bn("Mul", [bn("Softmax", [bn("Add", [scores, outer["mask_bias"]])], axis=-1), outer["keep"]])
    weights = bn("Div", [weights, bn("Max", [bn("ReduceSum", [weights, bc("axis_m1", i64([-1]))], keepdims=1),
                                             bc("tiny", f32(1e-9))])])
    context = bn("Squeeze", [bn("MatMul", [bn("Unsqueeze", [weights, bc("axis1_w", i64([1]))]), MEMORY]),
                             bc("axis1_c", i64([1]))])
    return context, weights


def _body_logits(b: GraphBuilder, projection, hidden: str, t: str, min_length: int) -> str:
    """The output layer's logits, ``<pad>`` / ``<s>`` banned and ``</s>`` ruled out before ``min_length``."""
    vocab = int(projection.vocab_size if isinstance(projection, VocabularyProjection) else projection.units)
    banned = banned_token_bias(vocab)  # as Seq2SeqModels.step adds it, folded into the output layer's bias
    if isinstance(projection, VocabularyProjection):  # sampled softmax / tied: stored [V, H], transposed once here
        kernel = weight_array(projection.kernel).T.copy()
        logits = b.node("Add", [b.matmul(hidden, kernel, OUTPUT_PROJECTION),
                                b.const(f"{OUTPUT_PROJECTION}/bias", weight_array(projection.bias) + banned)])
    else:
        logits = b.dense(hidden, projection, OUTPUT_PROJECTION, extra_bias=banned)
    if min_length:
        early = b.node("And", [b.node("Less", [t, b.const("min_length", i32(min_length))]),
                               b.const("eos", np.arange(vocab) == F.EOS_ID)])
        logits = b.node("Where", [early, b.const("neg", f32(IMPOSSIBLE_SCORE)), logits])
    return logits


def _body_choice(b: GraphBuilder, logits: str, t: str, body_in: dict, outer: dict,
                 weights: str | None) -> tuple[str, list]:
    """The greedy bookkeeping of one step: the chosen ids, finished rows, lengths, scores and tokens so far (and
    the attention ``weights`` of active rows written into the alignment, as ``decoding.greedy_search`` does).

    Returns:
        The loop condition and the new loop state (``loop_state``'s order).
    """
    from onnx import TensorProto  # the onnx extra is optional: needed only when a graph is written

    bc, bn = b.const, b.node
    limits = outer["limits"]
    log_probs = bn("LogSoftmax", [logits], axis=1)
    choice = bn("Cast", [bn("ArgMax", [logits], axis=1, keepdims=0)], to=TensorProto.INT32)
    active = bn("And", [bn("Not", [body_in["finished"]]), bn("Less", [t, limits])])
    ids = bn("Where", [active, choice, bc("pad", i32(F.PAD_ID))], ["ids_out"])
    step_log_prob = bn("Squeeze", [bn("GatherElements", [log_probs, bn("Unsqueeze", [
        bn("Cast", [ids], to=TensorProto.INT64), bc("axis1_i", i64([1]))])], axis=1), bc("axis1_g", i64([1]))])
    is_eos = bn("Equal", [ids, bc("eos_id", i32(F.EOS_ID))])
    finished = bn("Or", [body_in["finished"], bn("And", [active, is_eos])])
    lengths_out = bn("Add", [body_in["lengths"], bn("Cast", [bn("And", [active, bn("Not", [is_eos])])],
                                                    to=TensorProto.INT32)])
    log_probs_out = bn("Add", [body_in["log_probs"], bn("Where", [active, step_log_prob, bc("zero_f", f32(0.0))])])
    here = bn("Unsqueeze", [bn("Equal", [outer["positions"], t]), bc("axis0_p", i64([0]))])  # [1, L]
    tokens = bn("Where", [here, bn("Unsqueeze", [ids, bc("axis1_t", i64([1]))]), body_in["tokens"]])
    done = bn("Or", [finished, bn("GreaterOrEqual", [bn("Add", [t, bc("one", i32(1))]), limits])])
    go_on = bn("Not", [bn("Cast", [bn("ReduceMin", [bn("Cast", [done], to=TensorProto.INT32)], keepdims=0)],
                              to=TensorProto.BOOL)])
    carried = [ids, finished, lengths_out, log_probs_out, tokens]
    if weights is not None:
        step = bn("Mul", [weights, bn("Unsqueeze", [bn("Cast", [active], to=TensorProto.FLOAT), bc("axis1_a", i64([1]))])])
        at = bn("Unsqueeze", [here, bc("axis2_p", i64([2]))])  # [1, L, 1]
        carried.append(bn("Where", [at, bn("Unsqueeze", [step, bc("axis1_step", i64([1]))]), body_in[ALIGNMENT_STATE]]))
    return go_on, carried


def _info(name: str, dtype, rank: int):
    """A value info of unknown dimensions."""
    from onnx import helper  # the onnx extra is optional: needed only when a graph is written

    return helper.make_tensor_value_info(name, dtype, [None] * rank)


def _body_graph(b: GraphBuilder, body_in: dict, names: list[str], body_outputs: list[str]):
    """The body's graph: inputs ``iter``, ``cond`` and the loop state; outputs the condition and the new state."""
    from onnx import TensorProto, helper  # the onnx extra is optional: needed only when a graph is written

    kinds = dict(ids=(TensorProto.INT32, 1), finished=(TensorProto.BOOL, 1), lengths=(TensorProto.INT32, 1),
                 log_probs=(TensorProto.FLOAT, 1), tokens=(TensorProto.INT32, 2), alignment=(TensorProto.FLOAT, 3),
                 **{s: (TensorProto.FLOAT, 2) for s in names[2:] if s not in LOOP_STATE + [ALIGNMENT_STATE]})
    return helper.make_graph(
        b.nodes, "greedy_step",
        [helper.make_tensor_value_info(body_in["iter"], TensorProto.INT64, []),
         helper.make_tensor_value_info(body_in["cond"], TensorProto.BOOL, [])]
        + [_info(body_in[k], *kinds[k]) for k in names[2:]],
        [helper.make_tensor_value_info(body_outputs[0], TensorProto.BOOL, [])]
        + [_info(o, *kinds[k]) for o, k in zip(body_outputs[1:], names[2:])],
        b.inits)


def _decoder_model(g: GraphBuilder, models, inputs: list[str]) -> "onnx.ModelProto":  # noqa: F821
    """The model of ``g``'s nodes: the encoder's outputs ``inputs`` in, ``tokens``, ``length``, ``scores`` (and
    ``alignment``) out."""
    from onnx import TensorProto, helper  # the onnx extra is optional: needed only when a graph is written

    encoder_outputs = models.encoder.output
    graph_inputs = [helper.make_tensor_value_info(name, TensorProto.BOOL if name == MASK else TensorProto.FLOAT,
                                                  [None] * len(encoder_outputs[name].shape)) for name in inputs]
    graph_outputs = [_info("tokens", TensorProto.INT32, 3), _info("length", TensorProto.INT32, 2),
                     _info("scores", TensorProto.FLOAT, 2)]
    if models.has_attention:
        graph_outputs.append(_info("alignment", TensorProto.FLOAT, 4))
    graph = helper.make_graph(g.nodes, "tfs2s_greedy", graph_inputs, graph_outputs, g.inits)
    return make_model(graph)
