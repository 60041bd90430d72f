"""Frozen-dataclass configs from YAML recipes and ``key=value`` overrides.

A recipe is a small YAML mapping of overrides on the dataclass defaults. It may name a ``base:`` recipe (path
relative to itself) whose overrides apply first. Command-line overrides use dotted keys (``model.n_layers=4``)
and YAML values (``optim.lr=3e-4``, ``data.dev=null``). Unknown keys raise ValueError naming them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert a YAML value to the annotated type (a small, strict subset of typing)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(f"{where}: {value!r} does not match {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin in (tuple, list, Sequence):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value))
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return apply_overrides(tp(), value, prefix=f"{where}.")
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def apply_overrides(config: T, overrides: Mapping[str, Any], *, prefix: str = "") -> T:
    """Return a copy of the frozen dataclass ``config`` with nested ``overrides`` applied."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"{type(config).__name__} is not a dataclass")
    types_ = _field_types(type(config))
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in types_:
            known = ", ".join(sorted(types_))
            raise ValueError(f"unknown config key {prefix + key!r}; known keys here: {known}")
        tp = types_[key]
        current = getattr(config, key)
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            changes[key] = apply_overrides(current, value, prefix=f"{prefix}{key}.")
        else:
            changes[key] = _coerce(value, tp, f"{prefix}{key}")
    try:
        return dataclasses.replace(config, **changes)
    except ValueError as exc:  # a dataclass's own validation: say which section it belongs to
        section = prefix.rstrip(".")
        if not section or str(exc).startswith(prefix):
            raise
        raise ValueError(f"{section}: {exc}") from exc


def parse_cli_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value (e.g. optim.lr=3e-4)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ValueError(f"override {item!r}: the value is not valid YAML ({_yaml_problem(exc)})") from None
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r} conflicts with another override of {p!r}")
        node[parts[-1]] = value
    return out


def _merge(a: dict, b: Mapping) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, Mapping) else v
    return out


def load_recipe(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML recipe (following ``base:`` links) into one nested override mapping."""
    path = Path(path).resolve()
    if path in _seen:
        raise ValueError(f"recipe base cycle: {' -> '.join(str(p) for p in (*_seen, path))}")
    if not path.is_file():
        raise ValueError(f"recipe {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"recipe {path}: YAML syntax error {_yaml_problem(exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"recipe {path} cannot be read as text: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"recipe {path} must be a YAML mapping, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    return _merge(load_recipe(path.parent / base, (*_seen, path)), data)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what: 'at line 3, column 13: mapping values are not allowed here' (1-based, as editors count)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return problem
    return f"at line {mark.line + 1}, column {mark.column + 1}: {problem}"


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
