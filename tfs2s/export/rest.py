"""TF Serving's REST ``predict`` API in-process: request bodies built from arrays, answers formatted as TF Serving
formats them, and the ``models.config`` that serves an export folder.

``tensorflow_model_server`` is not installable everywhere (it is not on PyPI), so this module reproduces its JSON
mapping (``tensorflow_serving/util/json_tensor.cc``) over a SavedModel's signatures: a client, a test or the
documentation can be checked against an export's real signatures without a server. The rules it follows:

* row form: ``{"signature_name": S, "instances": [...]}``; each instance is an object keyed by input name, or, for
  a signature with one input, that input's value. Every input shares the batch (0th) dimension. The answer is
  ``{"predictions": [...]}``: one object per instance keyed by output name, or the bare values when the signature
  has one output.
* columnar form: ``{"signature_name": S, "inputs": {name: value}}`` (or the bare value for one input); inputs need
  not share a batch dimension (scalars such as ``beam_width`` go here). The answer is ``{"outputs": {name:
  value}}`` (bare for one output).
* a string input may be sent as ``{"b64": "<base64>"}`` (binary data such as image bytes must be); a string
  output whose name ends in ``_bytes`` is answered that way, other strings as JSON strings.

What this does not reproduce: the server's float formatting (numbers here are the shortest decimal that gives the
same float32), its error messages (errors here are ``InputError`` naming the problem), and its handling of
invalid UTF-8 in string outputs (decoded here with U+FFFD).
"""

from __future__ import annotations

import base64
import os
from typing import Any, Mapping

import numpy as np
import tensorflow as tf

from tfs2s.core.errors import InputError

DEFAULT_SIGNATURE = "serving_default"
BYTES_SUFFIX = "_bytes"


def _is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def to_json(value, name: str = "") -> Any:
    """A tensor (or array, or scalar) as TF Serving's REST API writes it: nested lists; strings decoded, or
    ``{"b64": ...}`` when ``name`` ends in ``_bytes``; floats as the shortest decimal of their float32 value."""
    if isinstance(value, bytes):  # not through numpy, whose fixed-width strings drop trailing NUL bytes
        if name.endswith(BYTES_SUFFIX):
            return {"b64": base64.b64encode(value).decode("ascii")}
        return value.decode("utf-8", errors="replace")
    array = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
    if array.ndim:
        return [to_json(item, name) for item in array]  # a string tensor's items are Python bytes
    if array.dtype == np.float32:
        return float(str(array))  # what the server writes: the float32's digits, no float64 noise
    return to_json(array.item(), name) if isinstance(array.item(), bytes) else array.item()


def _request_value(value, name: str) -> Any:
    """An input array as a request writes it: strings that are not UTF-8, or whose input is ``*_bytes``, in b64."""
    if isinstance(value, (list, tuple)):
        return [_request_value(item, name) for item in value]
    if not isinstance(value, (bytes, str)):  # bytes not through numpy, whose fixed-width strings drop trailing NULs
        array = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
        if array.ndim:
            return [_request_value(item, name) for item in array]
        if not isinstance(array.item(), (bytes, str)):
            return to_json(array)
        value = array.item()
    data = value.encode("utf-8") if isinstance(value, str) else value
    if not name.endswith(BYTES_SUFFIX):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return {"b64": base64.b64encode(data).decode("ascii")}


def row_request(inputs: Mapping[str, Any], signature_name: str | None = None) -> dict:
    """The row-form (``instances``) body for a batch of ``inputs`` (name -> array with the batch first).

    Raises:
        InputError: The inputs do not share their batch dimension, or one is a scalar.
    """
    columns = {name: _request_value(value, name) for name, value in inputs.items()}
    if any(not isinstance(v, list) for v in columns.values()) or len({len(v) for v in columns.values()}) > 1:
        raise InputError("the row (instances) form needs inputs that share their batch dimension; "
                         "use the columnar (inputs) form")
    if len(columns) == 1:
        instances = next(iter(columns.values()))
    else:
        size = len(next(iter(columns.values())))
        instances = [{name: column[i] for name, column in columns.items()} for i in range(size)]
    return _with_signature({"instances": instances}, signature_name)


def columnar_request(inputs: Mapping[str, Any], signature_name: str | None = None) -> dict:
    """The columnar (``inputs``) body for ``inputs`` (name -> array or scalar)."""
    return _with_signature({"inputs": {name: _request_value(v, name) for name, v in inputs.items()}},
                           signature_name)


def _with_signature(body: dict, signature_name: str | None) -> dict:
    return body if signature_name in (None, DEFAULT_SIGNATURE) else {"signature_name": signature_name, **body}


def _decode(value) -> Any:
    """A request's JSON value with b64 objects and strings turned into bytes (what a DT_STRING tensor holds)."""
    if _is_b64(value):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError:
            raise InputError(f"{value['b64'][:40]!r} is not base64") from None
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value.encode("utf-8") if isinstance(value, str) else value


def _tensor(value, spec: tf.TensorSpec, name: str) -> tf.Tensor:
    decoded = _decode(value)
    if isinstance(decoded, dict):
        raise InputError(f"input {name!r}: a JSON object is neither a value nor a b64 string")
    try:
        tensor = tf.constant(decoded, dtype=spec.dtype)
    except (TypeError, ValueError) as error:
        raise InputError(f"input {name!r}: not a {spec.dtype.name} tensor ({error})") from None
    if not spec.shape.is_compatible_with(tensor.shape):
        raise InputError(f"input {name!r}: shape {tensor.shape.as_list()} where the signature takes "
                         f"{spec.shape.as_list()} (None: any size)")
    return tensor


def _inputs(body: dict, specs: Mapping[str, tf.TensorSpec]) -> tuple[dict, bool]:
    """The signature's input tensors from a request body, and whether it was in row form."""
    if ("instances" in body) == ("inputs" in body):
        raise InputError("a predict body needs exactly one of 'instances' (row form) and 'inputs' (columnar form)")
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise InputError("'instances' must be a non-empty list")
        if isinstance(instances[0], dict) and not _is_b64(instances[0]):
            columns = {name: [instance.get(name) for instance in instances] for name in specs}
            missing = [name for name, column in columns.items() if any(v is None for v in column)]
            if missing or any(set(i) - set(specs) for i in instances):
                raise InputError(f"each instance needs the inputs {sorted(specs)} and no others")
        elif len(specs) == 1:
            columns = {next(iter(specs)): instances}
        else:
            raise InputError(f"'instances' is a plain list, but the signature takes several inputs {sorted(specs)}")
        return {name: _tensor(columns[name], specs[name], name) for name in specs}, True
    values = body["inputs"]
    if not isinstance(values, dict) or _is_b64(values):
        if len(specs) != 1:
            raise InputError(f"'inputs' is one value, but the signature takes several inputs {sorted(specs)}")
        values = {next(iter(specs)): values}
    if set(values) != set(specs):
        raise InputError(f"'inputs' has {sorted(values)} where the signature takes {sorted(specs)}")
    return {name: _tensor(values[name], specs[name], name) for name in specs}, False


def predict(export, body: Mapping[str, Any]) -> dict:
    """Answers a REST ``predict`` body as TF Serving would, from a loaded SavedModel or an export folder.

    Args:
        export: The export folder (``saved_models/<name>/<version>``) or the object ``tf.saved_model.load`` gave.
        body: The request, as JSON-decoded (``signature_name`` optional, ``instances`` or ``inputs``).

    Returns:
        ``{"predictions": [...]}`` for a row-form request, ``{"outputs": ...}`` for a columnar one.

    Raises:
        InputError: An unknown signature, or a body the signature does not accept (names what is wrong).
    """
    loaded = tf.saved_model.load(export) if isinstance(export, str) else export
    name = body.get("signature_name") or DEFAULT_SIGNATURE
    if name not in loaded.signatures:
        raise InputError(f"no signature {name!r}; the export has {sorted(loaded.signatures)}")
    signature = loaded.signatures[name]
    tensors, row = _inputs(dict(body), signature.structured_input_signature[1])
    outputs = {key: value.numpy() for key, value in sorted(signature(**tensors).items())}
    if not row:
        if len(outputs) == 1:
            key, value = next(iter(outputs.items()))
            return {"outputs": to_json(value, key)}
        return {"outputs": {key: to_json(value, key) for key, value in outputs.items()}}
    sizes = {value.shape[0] if value.ndim else None for value in outputs.values()}
    if len(sizes) != 1 or None in sizes or 0 in sizes:
        raise InputError(f"the outputs have batch sizes {sorted(map(str, sizes))}: the row form needs one, "
                         "at least 1; use the columnar form")
    rows = [{key: to_json(value[i], key) for key, value in outputs.items()} for i in range(sizes.pop())]
    if len(outputs) == 1:
        return {"predictions": [next(iter(r.values())) for r in rows]}
    return {"predictions": rows}


def models_config(models: Mapping[str, str]) -> str:
    """The TF Serving ``models.config`` (a ``ModelServerConfig`` text proto) serving ``models`` (name -> base
    path: the folder that holds the numeric version folders, ``saved_models/<name>`` as the server sees it)."""
    lines = [f'  config {{ name: "{name}" base_path: "{path}" model_platform: "tensorflow" }}'
             for name, path in models.items()]
    return "model_config_list {\n" + "\n".join(lines) + "\n}\n"


def skeleton(value) -> Any:
    """The shape of a JSON value without its data: objects keep their keys, a list becomes a one-item list of its
    first item's skeleton (``[]`` when empty), strings ``"string"``, numbers ``"number"``, b64 objects ``"b64"``.

    Two bodies with equal skeletons have the same input/output names and nesting."""
    if _is_b64(value):
        return "b64"
    if isinstance(value, dict):
        return {key: skeleton(v) for key, v in value.items()}
    if isinstance(value, list):
        return [skeleton(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "string" if isinstance(value, str) else type(value).__name__


def non_core_ops(export_dir: str) -> list[str]:
    """The ops ``export_dir``'s graphs use that core TensorFlow does not register (tensorflow-text's, for subword
    exports): what a ``tensorflow_model_server`` build must link to serve it. Call it in a process that has not
    imported ``tensorflow_text`` (which registers its ops)."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import op_def_registry

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    ops, functions = set(), set()
    for graph in (meta.graph_def for meta in saved_model.meta_graphs):
        ops |= {node.op for node in graph.node}
        for function in graph.library.function:
            functions.add(function.signature.name)
            ops |= {node.op for node in function.node_def}
    return sorted(op for op in ops - functions if op_def_registry.get(op) is None)
