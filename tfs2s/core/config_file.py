"""Reading configuration into frozen dataclasses: files, dotted overrides, type coercion, unknown keys rejected.

Nothing here knows the sections of ``Config``: the dataclass given to ``build`` and its type hints say which keys
exist and what type each value must have, so defaults live only in the dataclasses (``tfs2s.core.config``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from typing import Any, Mapping, Sequence

import yaml

from tfs2s.core.errors import ConfigError


def build(cls, values: Mapping[str, Any], path: str = ""):
    """An instance of the dataclass ``cls`` from nested mappings (``path``: where ``values`` sit, for messages).

    Raises:
        ConfigError: An unknown key (the message lists the valid ones) or a value of the wrong type.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"{path or 'config'} must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        where = f" in section '{path}'" if path else ""
        raise ConfigError(f"unknown config key {', '.join(repr(k) for k in unknown)}{where}; "
                          f"valid keys: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        hint = hints[key]
        dotted = f"{path}.{key}" if path else key
        if dataclasses.is_dataclass(hint):
            kwargs[key] = build(hint, value or {}, dotted)
        else:
            kwargs[key] = _coerce(value, hint, dotted)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, dotted: str) -> Any:
    """``value`` as the type ``hint`` (``X | None`` included); an int is accepted for a float, nothing else."""
    if typing.get_origin(hint) is tuple:
        # A list of strings (``[train.de, train.en]``) or one string (``train.tsv``).
        items = [value] if isinstance(value, str) else value
        if isinstance(items, (list, tuple)) and all(isinstance(v, str) for v in items):
            return tuple(items)
        raise ConfigError(f"{dotted} must be a file name or a list of file names, got {value!r}")
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    target = next((a for a in args if a is not type(None)), hint) if args else hint
    if target is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{dotted} must be true or false, got {value!r}")
    if target is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if target is float and isinstance(value, str):
        # YAML 1.1 reads exponents without a dot (1e-5, also as json.dumps writes them) as strings.
        try:
            return float(value)
        except ValueError:
            pass
    if target is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if target is str and isinstance(value, str):
        return value
    raise ConfigError(f"{dotted} must be of type {target.__name__}, got {value!r}")


def apply_overrides(values: dict, overrides: Mapping[str, Any]) -> dict:
    """A copy of the nested dict ``values`` with dotted-key ``overrides`` set (``{"model.hidden": 64}``)."""
    values = json.loads(json.dumps(values))  # deep copy
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = values
        for part in parents:
            if part not in node or not isinstance(node[part], dict):
                raise ConfigError(f"unknown config section {part!r} in override {dotted!r}; "
                                  f"valid sections: {', '.join(k for k, v in values.items() if isinstance(v, dict))}")
            node = node[part]
        node[leaf] = value
    return values


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Parses ``key.sub=value`` strings; values are read as YAML scalars (``256``, ``true``, ``0.1``, ``gru``)."""
    overrides = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        overrides[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return overrides


def read_mapping(path: str | os.PathLike) -> dict:
    """The mapping of sections in a YAML (or JSON: YAML reads it too) file.

    Raises:
        ConfigError: The file is not valid YAML or does not hold a mapping.
        FileNotFoundError: ``path`` does not exist.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            values = yaml.safe_load(f) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a mapping of sections")
    return values


def deep_merge(base: dict, values: dict, path: str = "") -> dict:
    """``base`` (a full nested dict of defaults) updated with ``values``, rejecting keys ``base`` lacks."""
    out = dict(base)
    for key, value in values.items():
        if key not in base:
            where = f" in section '{path}'" if path else ""
            raise ConfigError(f"unknown config key {key!r}{where}; valid keys: {', '.join(base)}")
        if isinstance(base[key], dict) and isinstance(value, dict):
            out[key] = deep_merge(base[key], value, f"{path}.{key}" if path else key)
        else:
            out[key] = value
    return out
