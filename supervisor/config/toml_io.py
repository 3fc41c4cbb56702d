"""The model as TOML: ``pykeepalived --dump-toml`` and the configuration generations handed to roles.

Written with tomli-w, read with the standard library's tomllib. The mapping is generic over the model's
dataclasses and their type hints: a field is a key, a nested dataclass a table, a list of dataclasses
an array of tables, None is simply absent. Reading checks every key and type, so a hand-edited TOML
file gets the same FILE:LINE-style answer as keepalived.conf (TOML has no line numbers once parsed:
problems name the file and the key path).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from functools import cache
from typing import Any, TypeVar, cast, get_args, get_origin, get_type_hints

import tomli_w

from supervisor.config.diag import Diagnostics, Where
from supervisor.config.model.config import MODEL_VERSION, Config

T = TypeVar("T")


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if value is None:
                continue
            out[f.name] = to_dict(value)
        return out
    if isinstance(obj, list):
        return [to_dict(item) for item in obj]
    return obj


def to_toml(config: Config) -> str:
    return tomli_w.dumps(to_dict(config))


@cache
def _hints(cls: Any) -> dict[str, Any]:
    return get_type_hints(cls)


class _Bad(Exception):
    pass


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in get_args(tp) if a is not type(None)]
        return _convert(inner[0], value, path)
    if origin is list:
        if not isinstance(value, list):
            raise _Bad(f"{path}: expected a list")
        (item_tp,) = get_args(tp)
        return [_convert(item_tp, item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _Bad(f"{path}: expected a table")
        return _build(tp, value, path)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Bad(f"{path}: expected a number")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad(f"{path}: expected an integer")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _Bad(f"{path}: expected true or false")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise _Bad(f"{path}: expected a string")
        return value
    raise _Bad(f"{path}: unsupported type {tp!r}")


def _build(cls: type[T], data: dict[str, Any], path: str) -> T:
    hints = _hints(cast(Any, cls))
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise _Bad(f"{path or '<top>'}: unknown key {unknown[0]!r}")
    kwargs = {key: _convert(hints[key], value, f"{path}.{key}" if path else key) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise _Bad(f"{path or '<top>'}: {exc}") from None


def from_toml(text: str, diag: Diagnostics, name: str = "<toml>") -> Config | None:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's TOMLDecodeError only carries the position in its text
        found = re.search(r"at line (\d+)", str(exc))
        line = int(found.group(1)) if found else 0
        diag.error(Where(name, line), f"invalid TOML: {exc}")
        return None
    version = data.get("model_version", MODEL_VERSION)
    if version != MODEL_VERSION:
        diag.error(Where(name, 0), f"model_version {version} is not supported (this is {MODEL_VERSION})")
        return None
    try:
        return _build(Config, data, "")
    except _Bad as exc:
        diag.error(Where(name, 0), str(exc))
        return None


def load_toml_file(path: str, diag: Diagnostics) -> Config | None:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        diag.fatal(Where(path, 0), f"Unable to read configuration file {path}: {exc.strerror}")
        return None
    return from_toml(text, diag, path)
