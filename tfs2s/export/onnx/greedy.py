"""Greedy decoding as an ONNX graph written with ONNX operators, the loop included.

tf2onnx turns the one-step decoder and the ``tf.while_loop`` of ``decoding.greedy_search`` into a ``Loop``
whose body runs some 150 small nodes per token (Keras' ``Dense`` on 3-D inputs becomes a ``Tensordot`` of
shape arithmetic, boolean selects become casts and products). At batch 1 that bookkeeping costs as much as
the matrix products. This module writes the same computation from the trained weights with about 60 nodes per
step: the GRU/LSTM cells as ONNX ``GRU`` / ``LSTM`` nodes of one time step, the attention, the output layer
(with the ``<pad>`` / ``<s>`` ban folded into its bias) and the greedy bookkeeping.

The graph takes the encoder's outputs (``memory``, ``mask``, ``keys`` or ``context``, ``state_*``), as the
``decode_encoded_greedy`` signature does, and returns ``tokens [B, 1, L]``, ``length [B, 1]``, ``scores [B, 1]``
with that signature's semantics (per-input length limits ``ceil(ratio * source length) + offset``,
``min_length``); joined to ``tfs2s.onnx_encoder``'s encoder it is ``translate_ids_greedy.onnx``. Parity with
TensorFlow's greedy search is checked by the tests for each supported configuration.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from tfs2s.core import features as F
from tfs2s.core.decoding import IMPOSSIBLE_SCORE
from tfs2s.core.layers.attention import MASKED_SCORE
from tfs2s.core.layers.projection import VocabularyProjection
from tfs2s.core.models import banned_token_bias, output_layer, target_embedding_layer
from tfs2s.export.onnx.encoder import (GraphBuilder, UnsupportedEncoder, check_activations, gru_weights, lstm_weights,
                                weight_array)

PREFIX = "tfs2s_greedy/"


class UnsupportedDecoder(ValueError):
    """The model's decoder is not one this module writes (it is then converted by tf2onnx)."""


def build_greedy_decoder(models, decoding) -> "onnx.ModelProto":  # noqa: F821
    """Greedy decoding of ``models`` (a ``Seq2SeqModels``) as an ONNX model over the encoder's outputs.

    Args:
        models: Token-to-token models (softmax head; a ``Dense`` output layer or the sampled-softmax models'
            ``VocabularyProjection``).
        decoding: The ``DecodingConfig`` whose ``max_length_ratio``, ``max_length_offset`` and ``min_length``
            the exported greedy signature uses.

    Raises:
        UnsupportedDecoder: Repeat blocking, regression or image models, or recurrent layers configured unlike
            tfs2s' defaults.
    """
    import keras
    import onnx
    from onnx import TensorProto, helper

    from tfs2s.export.savedmodel import ONNX_OPSET

    cfg = models.config
    step = models.decoder_step
    if cfg.output_head != "softmax" or cfg.input_encoder != "tokens":
        raise UnsupportedDecoder("only token-to-token models are written to ONNX by hand")
    if decoding.no_repeat_ngram_size:
        raise UnsupportedDecoder("repeat blocking is converted by tf2onnx, not written here")
    projection = output_layer(step)
    if not isinstance(projection, (keras.layers.Dense, VocabularyProjection)):
        raise UnsupportedDecoder(f"output layer {type(projection).__name__} is converted by tf2onnx")
    attention = cfg.attention if cfg.attention in ("bahdanau", "luong") else None
    state_names = list(models.state_names)
    per_layer = 2 if cfg.cell == "lstm" else 1
    vocab = int(projection.vocab_size if isinstance(projection, VocabularyProjection) else projection.units)

    inputs = ["memory", "mask"] + (["keys"] if attention else ["context"]) + state_names
    outputs = ["tokens", "length", "scores"]
    g = GraphBuilder(PREFIX, public=inputs + outputs, unsupported=UnsupportedDecoder)
    b = GraphBuilder(PREFIX + "body/", unsupported=UnsupportedDecoder)  # the Loop body: its nodes and weights
    c, n = g.const, g.node
    i64 = lambda v: np.array(v, np.int64)  # noqa: E731
    i32 = lambda v: np.array(v, np.int32)  # noqa: E731
    f32 = lambda v: np.array(v, np.float32)  # noqa: E731

    # ---------------------------------------------------------------- before the loop
    batch = n("Slice", [n("Shape", ["mask"]), c("zero_1", i64([0])), c("one_1", i64([1]))])  # [1] int64
    lengths = n("ReduceSum", [n("Cast", ["mask"], to=TensorProto.INT32), c("axis_1", i64([1]))], keepdims=0)
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
    ids0 = filled(F.BOS_ID, TensorProto.INT32, batch)
    finished0 = filled(False, TensorProto.BOOL, batch)
    lengths0 = filled(0, TensorProto.INT32, batch)
    log_probs0 = filled(0.0, TensorProto.FLOAT, batch)
    tokens0 = filled(0, TensorProto.INT32, width)
    keep = n("Cast", ["mask"], to=TensorProto.FLOAT)
    mask_bias = n("Mul", [n("Sub", [c("one_f", f32(1.0)), keep]), c("neg", f32(MASKED_SCORE))])  # as masked_softmax
    keys_t = n("Transpose", ["keys"], perm=[0, 2, 1]) if attention == "luong" else None

    # ---------------------------------------------------------------- the loop body
    bc, bn = b.const, b.node
    names = ["iter", "cond", "ids", "finished", "lengths", "log_probs", "tokens"] + state_names
    body_in = {name: PREFIX + "body/in_" + name for name in names}
    t = bn("Cast", [body_in["iter"]], to=TensorProto.INT32)
    embeddings = weight_array(target_embedding_layer(step).embeddings)
    x = bn("Gather", [bc("target_embedding", embeddings), body_in["ids"]])
    if attention is None:
        x = bn("Concat", [x, "context"], axis=1)
    new_states = []
    for i in range(cfg.layers):
        # The step model holds the recurrent layers' cells; the weight converters read ``layer.cell``.
        layer = SimpleNamespace(name=f"decoder_rnn_{i}", cell=step.get_layer(f"decoder_rnn_{i}_cell"))
        try:
            check_activations(layer)
            w, r, bias = lstm_weights(layer) if cfg.cell == "lstm" else gru_weights(layer)
        except UnsupportedEncoder as error:
            raise UnsupportedDecoder(str(error)) from None
        weights = [bc(f"rnn_{i}/{k}", v[None]) for k, v in (("W", w), ("R", r), ("B", bias))]
        x_seq = bn("Unsqueeze", [x, bc(f"axis0_{i}", i64([0]))])
        initial = [bn("Unsqueeze", [body_in[state_names[i * per_layer + j]], bc(f"axis0_s{i}_{j}", i64([0]))])
                   for j in range(per_layer)]
        if cfg.cell == "lstm":
            _, h, cell = bn("LSTM", [x_seq, *weights, "", *initial], ["", f"rnn_{i}_h", f"rnn_{i}_c"],
                            hidden_size=cfg.hidden)
            layer_states = [h, cell]
        else:
            _, h = bn("GRU", [x_seq, *weights, "", *initial], ["", f"rnn_{i}_h"], hidden_size=cfg.hidden,
                      linear_before_reset=1)
            layer_states = [h]
        layer_states = [bn("Squeeze", [s, bc(f"axis0_o{i}_{j}", i64([0]))]) for j, s in enumerate(layer_states)]
        new_states.extend(layer_states)
        x = layer_states[0]

    if attention:
        layer = step.get_layer("attention")
        if attention == "bahdanau":
            q = bn("Add", [bn("MatMul", [x, bc("query_kernel", weight_array(layer.query_dense.kernel))]),
                           bc("attention_bias", weight_array(layer.bias))])
            energies = bn("Tanh", [bn("Add", [bn("Unsqueeze", [q, bc("axis1", i64([1]))]), "keys"])])
            scores = bn("Squeeze", [bn("MatMul", [energies, bc("v", weight_array(layer.v)[:, None])]),
                                    bc("axis2", i64([2]))])
        else:
            scores = bn("Mul", [bn("Squeeze", [bn("MatMul", [bn("Unsqueeze", [x, bc("axis1", i64([1]))]), keys_t]),
                                               bc("axis1_s", i64([1]))]), bc("scale", f32(layer.scale))])
        weights = bn("Mul", [bn("Softmax", [bn("Add", [scores, mask_bias])], axis=-1), keep])
        weights = bn("Div", [weights, bn("Max", [bn("ReduceSum", [weights, bc("axis_m1", i64([-1]))], keepdims=1),
                                                 bc("tiny", f32(1e-9))])])
        context = bn("Squeeze", [bn("MatMul", [bn("Unsqueeze", [weights, bc("axis1_w", i64([1]))]), "memory"]),
                                 bc("axis1_c", i64([1]))])
    else:
        context = "context"
    hidden = b.dense(bn("Concat", [x, context], axis=1), step.get_layer("attentional_hidden"), "attentional_hidden")
    banned = banned_token_bias(vocab)  # as Seq2SeqModels.step adds it, folded into the output layer's bias
    if isinstance(projection, VocabularyProjection):  # sampled softmax / tied: stored [V, H], transposed once here
        kernel = weight_array(projection.kernel).T.copy()
        logits = bn("Add", [bn("MatMul", [hidden, bc("output_projection/kernel", kernel)]),
                            bc("output_projection/bias", weight_array(projection.bias) + banned)])
    else:
        logits = b.dense(hidden, projection, "output_projection", extra_bias=banned)
    min_length = int(decoding.min_length)
    if min_length:
        early = bn("And", [bn("Less", [t, bc("min_length", i32(min_length))]),
                           bc("eos", np.arange(vocab) == F.EOS_ID)])
        logits = bn("Where", [early, bc("neg", f32(IMPOSSIBLE_SCORE)), logits])
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
    here = bn("Unsqueeze", [bn("Equal", [positions, t]), bc("axis0_p", i64([0]))])  # [1, L]
    tokens = bn("Where", [here, bn("Unsqueeze", [ids, bc("axis1_t", i64([1]))]), body_in["tokens"]])
    done = bn("Or", [finished, bn("GreaterOrEqual", [bn("Add", [t, bc("one", i32(1))]), limits])])
    go_on = bn("Not", [bn("Cast", [bn("ReduceMin", [bn("Cast", [done], to=TensorProto.INT32)], keepdims=0)],
                              to=TensorProto.BOOL)])

    def info(name, dtype, rank):
        return helper.make_tensor_value_info(name, dtype, [None] * rank)

    kinds = dict(ids=(TensorProto.INT32, 1), finished=(TensorProto.BOOL, 1), lengths=(TensorProto.INT32, 1),
                 log_probs=(TensorProto.FLOAT, 1), tokens=(TensorProto.INT32, 2),
                 **{s: (TensorProto.FLOAT, 2) for s in state_names})
    body_outputs = [go_on, ids, finished, lengths_out, log_probs_out, tokens, *new_states]
    body = helper.make_graph(
        b.nodes, "greedy_step",
        [helper.make_tensor_value_info(body_in["iter"], TensorProto.INT64, []),
         helper.make_tensor_value_info(body_in["cond"], TensorProto.BOOL, [])]
        + [info(body_in[k], *kinds[k]) for k in names[2:]],
        [helper.make_tensor_value_info(go_on, TensorProto.BOOL, [])]
        + [info(o, *kinds[k]) for o, k in zip(body_outputs[1:], names[2:])],
        b.inits)

    # ---------------------------------------------------------------- the loop and the outputs
    final = n("Loop", [trips, go, ids0, finished0, lengths0, log_probs0, tokens0, *state_names],
              [f"final_{k}" for k in names[2:]], body=body)
    n("Unsqueeze", [final[4], c("axis1_out_t", i64([1]))], ["tokens"])
    n("Unsqueeze", [final[2], c("axis1_out_l", i64([1]))], ["length"])
    n("Unsqueeze", [final[3], c("axis1_out_s", i64([1]))], ["scores"])

    encoder_outputs = models.encoder.output
    graph_inputs = [helper.make_tensor_value_info(name, TensorProto.BOOL if name == "mask" else TensorProto.FLOAT,
                                                  [None] * len(encoder_outputs[name].shape)) for name in inputs]
    graph_outputs = [info("tokens", TensorProto.INT32, 3), info("length", TensorProto.INT32, 2),
                     info("scores", TensorProto.FLOAT, 2)]
    graph = helper.make_graph(g.nodes, "tfs2s_greedy", graph_inputs, graph_outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], producer_name="tfs2s")
    onnx.checker.check_model(model)
    return model
