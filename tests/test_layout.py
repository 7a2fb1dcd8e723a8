"""The package's layers import only downward: cli → apps → tasks → {training, export, data} → core.

Read with ``ast`` (nothing is imported), like ``../shared/tools/house.py``; every import of a tfs2s module counts,
module-level or inside a function.
"""

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tfs2s")

# What each layer may import (besides itself). The three middle layers are siblings: none imports another.
ALLOWED = {
    "core": set(),
    "data": {"core"},
    "training": {"core"},
    "export": {"core"},
    "tasks": {"core", "data", "training", "export"},
    "apps": {"core", "data", "training", "export", "tasks"},
    "cli": {"core", "commands"},  # tfs2s.cli parses arguments, then hands over to tfs2s.commands
    "commands": {"core", "data", "training", "export", "tasks", "apps"},
    "pipeline": {"core", "data", "training", "export", "tasks", "apps", "cli", "commands"},
    "onnx_runtime": {"export"},  # the alias of tfs2s.export.onnx.runtime
}


def _layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def _is_module(dotted: str) -> bool:
    path = os.path.join(os.path.dirname(PACKAGE), *dotted.split("."))
    return os.path.exists(path + ".py") or os.path.isdir(path)


def _imports():
    """``(importing module, imported tfs2s module, line)`` for every import in the package."""
    found = []
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
            module = rel[: -len(".__init__")] if rel.endswith(".__init__") else rel
            for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tfs2s"):
                    # `from tfs2s.core import features` imports tfs2s.core.features
                    targets = [f"{node.module}.{a.name}" if _is_module(f"{node.module}.{a.name}") else node.module
                               for a in node.names]
                elif isinstance(node, ast.Import):
                    targets = [a.name for a in node.names if a.name.startswith("tfs2s")]
                else:
                    continue
                found += [(module, target, node.lineno) for target in targets]
    return found


def test_every_module_belongs_to_a_layer():
    modules = {m for m, _, _ in _imports()}
    assert modules and {_layer(m) for m in modules if m != "tfs2s"} <= set(ALLOWED)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_run_only_downward(layer):
    upward = [f"{module}:{line} imports {target}" for module, target, line in _imports()
              if module != "tfs2s" and _layer(module) == layer and target != "tfs2s"
              and _layer(target) != layer and _layer(target) not in ALLOWED[layer]]
    assert not upward, "\n".join(upward)


def test_onnx_runtime_is_free_of_tensorflow_imports():
    """The TensorFlow-free runtime imports only the TensorFlow-free parts of the package."""
    tf_free = {"tfs2s.core.features", "tfs2s.core.errors", "tfs2s.export.onnx.graph"}
    got = {target for module, target, _ in _imports() if module == "tfs2s.export.onnx.runtime"}
    assert got <= tf_free, got - tf_free
