"""What the ONNX graphs written by hand share: the opset, a graph builder, and Keras weights in ONNX's layouts.

``tfs2s.export.onnx.encoder`` and ``tfs2s.export.onnx.greedy`` write their graphs from the trained weights with
``GraphBuilder``; the graphs converted by tf2onnx (``tfs2s.export.onnx.convert``) use the same ``ONNX_OPSET``, so
the two kinds join into one model. Every ``.onnx`` file an export writes goes through ``save_model``, which gives it
the lowest IR version its opsets need and one opset import per domain (``portable``), so runtimes older than the
``onnx`` package that wrote it load it. The ``onnx`` package is imported only where a graph is written: it comes
with the optional onnx extra, and importing this module must not need it.
"""

from __future__ import annotations

import numpy as np

from tfs2s.export.onnx.quantize import check_quantize, int8_matmul

ONNX_OPSET = 17  # every ONNX graph tfs2s writes or converts
# IR version for opset 17 is 8 (onnx.helper.VERSION_TABLE); ``portable`` computes it from the opsets actually imported.
# onnx's make_model otherwise stamps its own newest IR version (14 in onnx 1.23), which onnxruntime 1.30 refuses.


def weight_array(variable) -> np.ndarray:
    """A Keras variable (or array) as a float32 numpy array."""
    return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable, np.float32)


def gru_weights(layer, unsupported: type[ValueError] = ValueError) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keras GRU (``reset_after``) -> ONNX ``W [3H, D]``, ``R [3H, H]``, ``B [6H]``; both use gate order z, r, h.

    Raises:
        unsupported: A GRU with ``reset_after=False``.
    """
    cell = layer.cell
    if not getattr(cell, "reset_after", False):
        raise unsupported("only GRUs with reset_after=True (the Keras default) are written to ONNX")
    kernel, recurrent = weight_array(cell.kernel), weight_array(cell.recurrent_kernel)
    bias = weight_array(cell.bias) if cell.use_bias else np.zeros((2, kernel.shape[1]), np.float32)
    return kernel.T, recurrent.T, bias.reshape(-1)


def lstm_weights(layer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keras LSTM (gates i, f, c, o) -> ONNX ``W [4H, D]``, ``R [4H, H]``, ``B [8H]`` (gates i, o, f, c)."""
    cell = layer.cell
    kernel, recurrent = weight_array(cell.kernel), weight_array(cell.recurrent_kernel)
    bias = weight_array(cell.bias) if cell.use_bias else np.zeros(kernel.shape[1], np.float32)

    def reorder(w):
        i, f, c, o = np.split(w, 4, axis=-1)
        return np.concatenate([i, o, f, c], axis=-1)

    return reorder(kernel).T, reorder(recurrent).T, np.concatenate([reorder(bias), np.zeros_like(bias)])


def check_activations(layer, unsupported: type[ValueError] = ValueError) -> None:
    """Raises ``unsupported`` unless the recurrent layer uses the activations ONNX's cells assume."""
    cell = layer.cell
    names = (getattr(cell.activation, "__name__", ""), getattr(cell.recurrent_activation, "__name__", ""))
    if names != ("tanh", "sigmoid"):
        raise unsupported(f"{layer.name}: activations {names} are not written to ONNX (tanh, sigmoid only)")


def make_model(graph) -> "onnx.ModelProto":  # noqa: F821
    """The checked ONNX model of ``graph``, at ``ONNX_OPSET`` and the IR version it needs (``portable``)."""
    from onnx import helper

    return portable(helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                                      producer_name="tfs2s"))


def merged_opsets(*opset_lists) -> dict[str, int]:
    """``{domain: version}`` over opset import lists, the highest version per domain (``""`` is ``ai.onnx``)."""
    versions: dict[str, int] = {}
    for opsets in opset_lists:
        for opset in opsets:
            domain = "" if opset.domain == "ai.onnx" else opset.domain
            versions[domain] = max(versions.get(domain, 0), opset.version)
    return versions


def min_ir_version(versions: dict[str, int]) -> int:
    """The lowest ONNX IR version that ``{domain: opset version}`` needs (8 for the default opset 17).

    Domains onnx does not know (``ai.onnx.contrib``, onnxruntime-extensions' string ops) put no bound on it.
    """
    from onnx import helper

    return helper.find_min_ir_version_for([helper.make_opsetid(d, v) for d, v in versions.items()],
                                          ignore_unknown=True)


def portable(model: "onnx.ModelProto") -> "onnx.ModelProto":  # noqa: F821
    """``model`` (changed in place) with one opset import per domain and the lowest IR version they need; checked.

    Why: onnx's ``make_model`` stamps the newest IR version the installed onnx knows (onnxruntime-node 1.30 refuses
    IR 14 from onnx 1.23), and ``onnx.compose.merge_models`` lists the opsets of both models, so a joined graph
    imported the default domain twice. Model-local functions get the same one-per-domain imports.

    Raises:
        onnx.checker.ValidationError: The result is not a valid ONNX model (our bug).
    """
    import onnx
    from onnx import helper

    def one_per_domain(holder) -> dict[str, int]:
        versions = merged_opsets(holder.opset_import)
        del holder.opset_import[:]
        holder.opset_import.extend(helper.make_opsetid(d, v) for d, v in versions.items())
        return versions

    versions = one_per_domain(model)
    for function in model.functions:  # tf2onnx and GraphBuilder write none; kept right should one appear
        for domain, version in one_per_domain(function).items():
            versions[domain] = max(versions.get(domain, 0), version)
    model.ir_version = min_ir_version(versions)
    onnx.checker.check_model(model)
    return model


def save_model(model: "onnx.ModelProto", path: str) -> str:  # noqa: F821
    """Writes ``model`` to ``path`` made ``portable``: every ``.onnx`` file of an export is saved here; returns it."""
    import onnx

    onnx.save(portable(model), path)
    return path


class GraphBuilder:
    """Collects the nodes and initialisers of an ONNX graph written by hand.

    Internal names carry ``prefix``, so the graph merges with a converted one without name clashes; names in
    ``public`` (graph inputs and outputs) are kept as they are. A layer it cannot write raises ``unsupported``.
    With ``quantize="int8"`` the matrix products of ``matmul`` and ``dense`` have int8 weights
    (``tfs2s.export.onnx.quantize``); the default writes float32 ``MatMul`` nodes.
    """

    def __init__(self, prefix: str, public=(), *, unsupported: type[ValueError], quantize: str | None = None):
        check_quantize(quantize)
        self.prefix, self.public, self.unsupported, self.quantize = prefix, set(public), unsupported, quantize
        self.nodes, self.inits = [], []

    def const(self, name: str, value) -> str:
        """An initialiser holding ``value``; returns its name."""
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.asarray(value), self.prefix + name))
        return self.prefix + name

    def node(self, op: str, inputs, outputs=None, **attrs):
        """Adds a node; returns its output name (or the list of them when it has several)."""
        from onnx import helper

        # "" is an optional output left out; it keeps no name.
        outputs = [o if o in self.public or not o else self.prefix + o
                   for o in (outputs or [f"{op.lower()}_{len(self.nodes)}"])]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=f"{self.prefix}{op}_{len(self.nodes)}", **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def matmul(self, x: str, kernel, name: str) -> str:
        """``x @ kernel`` (weights ``[K, N]``): float32 ``MatMul``, or int8 weights with ``quantize="int8"``."""
        if self.quantize == "int8":
            return int8_matmul(self, x, weight_array(kernel), name)
        return self.node("MatMul", [x, self.const(f"{name}/kernel", weight_array(kernel))])

    def dense(self, x: str, layer, name: str, extra_bias=None) -> str:
        """A Keras ``Dense`` layer (linear or tanh) on ``x``; ``extra_bias`` is added to its bias."""
        y = self.matmul(x, layer.kernel, name)
        bias = weight_array(layer.bias) if layer.use_bias else None
        if extra_bias is not None:
            bias = extra_bias if bias is None else bias + extra_bias
        if bias is not None:
            y = self.node("Add", [y, self.const(f"{name}/bias", bias)])
        act = getattr(layer.activation, "__name__", "linear")
        if act == "tanh":
            y = self.node("Tanh", [y])
        elif act != "linear":
            raise self.unsupported(f"{name}: activation {act!r} is not written to ONNX")
        return y

    def rnn_weights(self, layer, cell: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ONNX ``W``, ``R``, ``B`` of a Keras GRU or LSTM layer (``cell``: ``gru`` or ``lstm``).

        Raises:
            unsupported: The layer's activations or GRU variant are not those ONNX's cells compute.
        """
        check_activations(layer, self.unsupported)
        return lstm_weights(layer) if cell == "lstm" else gru_weights(layer, self.unsupported)
