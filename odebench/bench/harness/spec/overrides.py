"""``odebench run --set KEY=VALUE``: change one value of a spec from the command line, without copying it.

Syntax (several ``--set`` apply in order, each to the spec as the previous ones left it):

- ``KEY`` is a dotted path of table keys: ``train.steps``, ``eval.metric_options.w2.max_points``, ``seeds``.
  Missing tables on the way are created (``--set eval.metric_options.mmd.max_points=500``).
- An entry of an array of tables is selected in brackets, by its name (``[[methods]]`` and ``[[solvers]]``
  by ``name``, ``[[datasets]]`` by ``target``) or by its position from 0: ``methods[rf].k``,
  ``solvers[euler].nfe``, ``datasets[moons].train.steps``, ``methods[1].k``. A name that two entries share
  needs the position. ``--set`` changes entries; it does not add one (edit the spec for that).
- ``VALUE`` is a TOML value: ``500``, ``1e-3``, ``true``, ``[1, 2]``, ``"text"``, ``{points = ["w2"]}``. A
  plain word that is not TOML (``cuda``, ``my_sweep``) is taken as a string; anything else must be valid TOML
  (quote strings with spaces or brackets: ``--set 'description="a b"'``).

The result is validated as the spec itself is (every problem with its key path), and a run writes it to
``<out>/<sweep>/effective_spec.toml`` (odebench.bench.harness.store.effective_spec), so the folder says what ran and
``odebench run --spec <out>/<sweep>/effective_spec.toml`` runs it again.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from odebench.bench.harness.spec.text import text_problems, tomllib

#: the key that names an entry of each array of tables, for ``methods[rf]``
ENTRY_KEYS = {"methods": "name", "solvers": "name", "datasets": "target"}
_SEGMENT = re.compile(r"([A-Za-z0-9_-]+)(?:\[([^\[\]]+)\])?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/+-]*")
_INDEX = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit() also takes "²", which int() refuses
#: the longest ``--set``; a longer value belongs in the spec file
MAX_OVERRIDE = 10_000
SYNTAX = "--set KEY=VALUE, e.g. --set train.steps=500 or --set \"methods[rf].k=[1, 2]\""


class OverrideError(ValueError):
    """A ``--set`` that cannot be applied; the message names the override and the fix."""


def parse_value(text: str, where: str) -> Any:
    """A TOML value; a plain word that is not TOML is a string."""
    problems = text_problems(text, "the value")
    if problems:  # bounded before parsing, as a spec file is (odebench.bench.harness.spec.text)
        raise OverrideError(f"--set {where if len(where) < 80 else where[:60] + '...'}: {'; '.join(problems)}")
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except ValueError as exc:  # TOMLDecodeError, or an integer past Python's digit limit
        if not isinstance(exc, tomllib.TOMLDecodeError):
            raise OverrideError(f"--set {where}: cannot convert the value ({exc})") from None
        if _WORD.fullmatch(text):
            return text
        raise OverrideError(f"--set {where}: cannot read {text!r} as a TOML value ({exc}); give a number, "
                            f"true/false, a list such as [1, 2], or a string in quotes, e.g. "
                            f"--set '{where.split('=')[0]}=\"text\"'") from None
    except RecursionError:
        raise OverrideError(f"--set {where}: the value is nested too deep") from None


def split(override: str) -> tuple[list[tuple[str, str | None]], Any]:
    """``"methods[rf].k=[1, 2]"`` -> ([("methods", "rf"), ("k", None)], [1, 2])."""
    if len(override) > MAX_OVERRIDE:
        raise OverrideError(f"--set {override[:40]!r}...: {len(override):,} characters; a --set is at most "
                            f"{MAX_OVERRIDE:,}: put a long value in the spec file")
    key, eq, text = override.partition("=")
    key = key.strip()
    if not eq or not key:
        raise OverrideError(f"--set {override!r}: expected {SYNTAX}")
    segments = []
    for part in key.split("."):
        m = _SEGMENT.fullmatch(part)
        if m is None:
            raise OverrideError(f"--set {override!r}: {part!r} is not a key (letters, digits, _ and -, with an "
                                f"optional [name] or [index] on arrays of tables); expected {SYNTAX}")
        segments.append((m.group(1), m.group(2)))
    return segments, parse_value(text.strip(), override)


def _entry(array: Any, key: str, selector: str, path: str, override: str) -> dict[str, Any]:
    """The table of ``array`` that ``selector`` (a position or a name) picks."""
    if not isinstance(array, list) or not all(isinstance(e, dict) for e in array):
        raise OverrideError(f"--set {override}: {path} is not an array of tables ([[{key}]]), so [{selector}] "
                            f"selects nothing; drop the brackets")
    if selector.isdigit() and not selector.isascii():
        raise OverrideError(f"--set {override}: [{selector}] is not a position; positions are written in ASCII "
                            f"digits, from 0 to {len(array) - 1}, e.g. {path}[0]")
    if selector.isdigit():
        if not _INDEX.fullmatch(selector) or int(selector) >= len(array):
            raise OverrideError(f"--set {override}: {path}[{selector}] does not exist; the spec has "
                                f"{len(array)} [[{key}]] entries ({path}[0] to {path}[{len(array) - 1}])")
        return array[int(selector)]
    by = ENTRY_KEYS.get(key, "name")
    found = [i for i, e in enumerate(array) if e.get(by) == selector]
    listed = ", ".join(f"{path}[{i}] ({by} = {e.get(by)!r})" for i, e in enumerate(array))
    if not found:
        raise OverrideError(f"--set {override}: no [[{key}]] entry has {by} = {selector!r}; entries: {listed}. "
                            f"--set changes entries, it does not add them: edit the spec to add one")
    if len(found) > 1:
        raise OverrideError(f"--set {override}: {len(found)} [[{key}]] entries have {by} = {selector!r}; select "
                            f"one by position: {listed}")
    return array[found[0]]


def apply_one(raw: dict[str, Any], override: str) -> None:
    """Apply one ``KEY=VALUE`` to ``raw`` in place."""
    segments, value = split(override)
    table, path = raw, ""
    for i, (key, selector) in enumerate(segments):
        path = f"{path}.{key}" if path else key
        last = i == len(segments) - 1
        if selector is not None:
            table = _entry(table.get(key), key, selector, path, override)
            path = f"{path}[{selector}]"
            if last:
                raise OverrideError(f"--set {override}: name a key of the entry, e.g. {path}.KEY=VALUE; a whole "
                                    f"entry cannot be replaced with --set")
            continue
        if last:
            table[key] = value
            return
        nxt = table.setdefault(key, {})
        if not isinstance(nxt, dict):
            kind = (f"an array of tables: select an entry, e.g. {path}[0]" if isinstance(nxt, list)
                    and nxt and all(isinstance(e, dict) for e in nxt) else f"{nxt!r}, not a table")
            raise OverrideError(f"--set {override}: {path} is {kind}")
        table = nxt


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """A copy of the parsed spec ``raw`` with every override applied in order."""
    out = copy.deepcopy(raw)
    for override in overrides:
        apply_one(out, override)
    return out
