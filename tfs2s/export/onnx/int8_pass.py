"""int8 matrix products in a converted ONNX graph (the beam ids graph tf2onnx writes), inside its loops.

tf2onnx turns beam search's ``tf.while_loop`` into a ``Loop`` whose body reads the decoder's weights as
loop-carried values that it passes through unchanged; the SavedModel's variables become main-graph initialisers
fed to the Loop. onnxruntime's ``quantize_dynamic`` does not follow them into the body: it quantises only the
products outside, which run once per sentence (measured: no speed-up). ``quantize_products`` follows them. A
``MatMul`` (or ``Gemm``) whose second input is a 2-D float32 constant — an initialiser or ``Constant`` of its graph
or of an outer one, an ``Identity`` / ``Transpose`` of one, or a Loop-carried value that the body passes through
unchanged and that starts as one — becomes ``tfs2s.export.onnx.quantize``'s int8 product (int8 weights with one
scale per output column, activations quantised by ``DynamicQuantizeLinear`` as the graph runs, ``MatMulInteger``).
The float weights that no node reads any more are then removed, with the Loop-carried values that carried them.

Only standard operators are added, so the result loads where the float graph loads (onnxruntime-node included).
By default only products inside a ``Loop`` are quantised: the encoder's run once per sentence, and stay float32 as
in ``translate_ids_greedy.int8.onnx``. numpy and onnx only.
"""

from __future__ import annotations

import logging

import numpy as np

from tfs2s.export.onnx.graph import GraphBuilder
from tfs2s.export.onnx.quantize import int8_product, quantize_columns

logger = logging.getLogger(__name__)

PREFIX = "tfs2s_int8/"  # names of the nodes and initialisers the pass adds
# Products with fewer weights stay float32: quantising the activations costs about as much as the product saves.
MIN_ELEMENTS = 4096


class _Scope:
    """The constants a graph can read: its own initialisers, ``Constant`` nodes, and ``Identity`` / ``Transpose``
    nodes of constants; its Loop-carried values that pass through the body unchanged (read from the outer graph's
    Loop inputs); then the outer graph's constants (subgraphs read outer names as they are)."""

    def __init__(self, graph, outer: "_Scope | None" = None, carried: dict | None = None):
        from onnx import helper

        self.outer, self.carried, self.arrays, self.sources = outer, carried or {}, {}, {}
        for tensor in graph.initializer:
            self.sources[tensor.name] = ("tensor", tensor)
        for node in graph.node:
            attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "Constant" and "value" in attributes:
                self.sources[node.output[0]] = ("tensor", attributes["value"])
            elif node.op_type == "Identity":
                self.sources[node.output[0]] = ("identity", node.input[0])
            elif node.op_type == "Transpose":
                self.sources[node.output[0]] = ("transpose", node.input[0], attributes.get("perm"))

    def constant(self, name: str) -> np.ndarray | None:
        """The value of ``name`` where it is a constant this graph reads, else None."""
        from onnx import numpy_helper

        if name in self.arrays:
            return self.arrays[name]
        if name in self.carried:
            return self.outer.constant(self.carried[name])
        if name not in self.sources:
            return self.outer.constant(name) if self.outer is not None else None
        kind, *rest = self.sources[name]
        if kind == "tensor":
            value = numpy_helper.to_array(rest[0])
        else:
            value = self.constant(rest[0])
            if value is not None and kind == "transpose":
                value = np.transpose(value, rest[1] or None)
        self.arrays[name] = value
        return value


def _carried_constants(loop, body) -> dict:
    """``{body input: Loop input}`` of the Loop-carried values the body passes through unchanged."""
    return {body.input[i].name: loop.input[i] for i in range(2, min(len(body.input), len(loop.input)))
            if loop.input[i] and body.output[i - 1].name == body.input[i].name}


def _subgraphs(node):
    """The graphs of a node's attributes (a Loop's body, an If's branches)."""
    from onnx import AttributeProto

    for attribute in node.attribute:
        if attribute.type == AttributeProto.GRAPH:
            yield attribute.g
        elif attribute.type == AttributeProto.GRAPHS:
            yield from attribute.graphs


class _Pass:
    """One run of ``quantize_products``: the counters and settings its graphs share."""

    def __init__(self, min_elements: int, loops_only: bool):
        self.min_elements, self.loops_only, self.products, self.weights = min_elements, loops_only, 0, 0

    def graph(self, graph, scope: _Scope, in_loop: bool) -> None:
        """Quantises the products of ``graph`` and of its subgraphs, in place."""
        stored = {}  # (weight name, transposed, alpha) -> (int8 weights, scales): a weight is stored once per graph
        nodes = []
        for node in graph.node:
            for sub in _subgraphs(node):
                carried = _carried_constants(node, sub) if node.op_type == "Loop" else None
                self.graph(sub, _Scope(sub, scope, carried), in_loop or node.op_type == "Loop")
            replacement = self.product(node, scope, stored) if in_loop or not self.loops_only else None
            if replacement is None:
                nodes.append(node)
                continue
            nodes.extend(replacement.nodes)
            graph.initializer.extend(replacement.inits)
        del graph.node[:]
        graph.node.extend(nodes)

    def product(self, node, scope: _Scope, stored: dict) -> GraphBuilder | None:
        """The int8 nodes replacing a ``MatMul`` / ``Gemm`` of constant 2-D float32 weights, else None."""
        from onnx import helper

        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type not in ("MatMul", "Gemm") or attributes.get("transA"):
            return None
        x, weights = node.input[:2]
        transposed, alpha = bool(attributes.get("transB")), float(attributes.get("alpha", 1.0))
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        beta = float(attributes.get("beta", 1.0))
        kernel = scope.constant(weights)
        if kernel is None or kernel.dtype != np.float32 or kernel.ndim != 2 or kernel.size < self.min_elements:
            return None
        bias_value = scope.constant(bias) if bias and beta != 1.0 else None
        if bias and beta != 1.0 and bias_value is None:
            return None  # a scaled bias computed at run time: left float32 (tf2onnx writes none)
        g = GraphBuilder(f"{PREFIX}{self.products}/", public={node.output[0]}, unsupported=ValueError)
        key = (weights, transposed, alpha)
        if key not in stored:
            q, scale = quantize_columns(kernel.T if transposed else kernel)
            stored[key] = (g.const("kernel_int8", q), g.const("kernel_scale", (scale * alpha).astype(np.float32)))
            self.weights += 1
        self.products += 1
        y = int8_product(g, x, *stored[key], "x", output=None if bias else node.output[0])
        if bias:
            g.node("Add", [y, bias if bias_value is None else g.const("bias", (beta * bias_value).astype(np.float32))],
                   [node.output[0]])
        return g


def quantize_products(model, min_elements: int = MIN_ELEMENTS, loops_only: bool = True):
    """A copy of ``model`` whose matrix products of constant weights are int8 (see the module's docstring).

    Args:
        model: An ``onnx.ModelProto`` (a tf2onnx conversion, say).
        min_elements: Weights with fewer elements stay float32.
        loops_only: Quantise only products inside a ``Loop`` body (default); False: every graph's.

    Returns:
        The new ``onnx.ModelProto``: the same inputs and outputs, unused float weights removed. Not yet checked:
        ``tfs2s.export.onnx.graph.save_model`` checks it and sets its IR version.
    """
    import onnx

    result = onnx.ModelProto()
    result.CopyFrom(model)
    run = _Pass(min_elements, loops_only)
    run.graph(result.graph, _Scope(result.graph), in_loop=False)
    prune(result.graph)
    logger.info("int8: %d matrix products quantised (%d weight matrices)", run.products, run.weights)
    return result


def _reads(graph) -> set:
    """Every name a node of ``graph`` or of its subgraphs reads, and the graph's outputs."""
    names = {o.name for o in graph.output}
    for node in graph.node:
        names.update(node.input)
        for sub in _subgraphs(node):
            names |= _reads(sub)
    return names


def _drop_carried(loop, body, read_outside: set) -> None:
    """Removes the Loop-carried values that the body passes through unchanged and that nothing reads."""
    read_inside = set()
    for node in body.node:
        read_inside.update(node.input)
        for sub in _subgraphs(node):
            read_inside |= _reads(sub)
    passed = _carried_constants(loop, body)
    drop = [i for i in range(2, len(body.input)) if body.input[i].name in passed
            and body.input[i].name not in read_inside and loop.output[i - 2] not in read_outside]
    for i in reversed(drop):
        del loop.input[i], body.input[i], body.output[i - 1], loop.output[i - 2]


def prune(graph) -> None:
    """Removes what no longer computes an output, in ``graph`` and its subgraphs: Loop-carried values passed
    through unused, nodes whose outputs nothing reads, initialisers nothing reads (graph inputs are kept)."""
    for node in graph.node:
        if node.op_type == "Loop":
            body = next(_subgraphs(node))
            _drop_carried(node, body, _reads(graph))
        for sub in _subgraphs(node):
            prune(sub)
    while True:
        read = _reads(graph)
        live = [n for n in graph.node if any(o and o in read for o in n.output)]
        if len(live) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(live)
    inputs = {i.name for i in graph.input}
    used = [t for t in graph.initializer if t.name in read or t.name in inputs]
    del graph.initializer[:]
    graph.initializer.extend(used)
    named = inputs | {t.name for t in used} | {o for n in graph.node for o in n.output}
    kept = [v for v in graph.value_info if v.name in named]
    del graph.value_info[:]
    graph.value_info.extend(kept)
