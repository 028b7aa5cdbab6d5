"""TOML text of a parsed spec (the writer ``tomllib`` lacks), for the effective spec a run leaves in its folder.

``dumps(raw)`` gives text that ``tomllib.loads`` reads back equal to ``raw`` for any table a validated spec can
hold (strings with any characters, nested tables, arrays of tables inside arrays of tables, empty tables and
lists). Tables become ``[a.b]`` blocks, lists of tables ``[[a]]`` blocks, and a table inside a plain list an
inline table.
"""

from __future__ import annotations

import json
import re
from typing import Any

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _key(k: str) -> str:
    return k if _BARE.fullmatch(k) else _string(k)


def _string(s: str) -> str:
    # JSON's escapes are TOML's, but JSON leaves DEL (U+007F) bare, which TOML refuses in a basic string
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007F")


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)  # a validated spec holds no nan or inf
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"a spec holds no {type(v).__name__} value ({v!r})")


def _tables(v: Any) -> bool:
    """A non-empty list of tables: written as [[...]] blocks."""
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _block(lines: list[str], path: list[str], table: dict[str, Any]) -> None:
    for k, v in table.items():  # plain values first: they belong to this table's header
        if not isinstance(v, dict) and not _tables(v):
            lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in table.items():
        if isinstance(v, dict):
            lines += ["", f"[{'.'.join(_key(p) for p in [*path, k])}]"]
            _block(lines, [*path, k], v)
    for k, v in table.items():
        if _tables(v):
            for entry in v:
                lines += ["", f"[[{'.'.join(_key(p) for p in [*path, k])}]]"]
                _block(lines, [*path, k], entry)


def dumps(raw: dict[str, Any], header: str = "") -> str:
    """``raw`` as TOML text, after ``header`` (each of its lines becomes a comment)."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    _block(lines, [], raw)
    return "\n".join(lines).strip("\n") + "\n"
