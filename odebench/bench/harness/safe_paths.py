"""Where the harness may write: inside the folder the user named (``--out``), nowhere else.

A sweep's ``name`` becomes a folder under ``--out``, so it must be one safe path component: 1 to
``NAME_MAX`` characters from ``[A-Za-z0-9_.-]``, starting with a letter or digit (so never ``.``, ``..``,
``.cache`` or a hidden name), and not a name some file systems reserve (``CON``, ``NUL``, ``COM1``, ...).
``name_problem`` says what is wrong with a name and how to fix it; the spec checks call it.

Every file the harness writes (records, models, sample sheets, the report, figures, the lock) goes through
:func:`inside`, which resolves the path (symlinks included) and refuses it unless it lies strictly under the
resolved root. A symlink under ``--out`` that points elsewhere is refused too: the rule is about where the
bytes land, not how the path is spelled.
"""

from __future__ import annotations

import re
from pathlib import Path

from odebench.bench.harness.errors import RunRefused

NAME_MAX = 64
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
#: names Windows reserves in every folder (with any extension); refused everywhere so results stay portable
RESERVED = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))})
NAME_RULE = (f"1 to {NAME_MAX} characters from A-Z a-z 0-9 _ . -, starting with a letter or digit, e.g. "
             f"name = \"my_sweep\"")


class UnsafePath(RunRefused):
    """A write would land outside the folder the user named."""


def suggest_name(name: str) -> str:
    """A safe name close to ``name`` (for messages): unsafe characters become '_', trimmed to NAME_MAX."""
    fixed = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).lstrip("._-")[:NAME_MAX].rstrip(".")
    if not fixed or fixed.split(".")[0].lower() in RESERVED:
        fixed = ("sweep_" + fixed)[:NAME_MAX]
    return fixed


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a sweep (folder) name, with the fix; None when it can."""
    if not isinstance(name, str) or not name:
        return f"required, a non-empty string (the results folder is named after it): {NAME_RULE}"
    shown = repr(name) if len(name) <= 80 else repr(name[:77]) + "..."
    if len(name) > NAME_MAX or not NAME_RE.fullmatch(name):
        return (f"{shown} is not a safe folder name: use {NAME_RULE} (for instance "
                f"name = \"{suggest_name(name)}\")")
    if name.split(".")[0].lower() in RESERVED:
        return (f"{shown} is a device name some file systems reserve; choose another, e.g. "
                f"name = \"{suggest_name(name)}\"")
    if name.endswith("."):
        return f"{shown} ends with '.', which some file systems drop; e.g. name = \"{suggest_name(name)}\""
    return None


def inside(root: str | Path, path: str | Path) -> Path:
    """``path`` (relative paths are taken under ``root``), resolved, once checked to lie under ``root``.

    Raises UnsafePath naming both folders when the resolved path is ``root`` itself or lies outside it.
    """
    try:
        base = Path(root).resolve()
        target = (base / path).resolve()  # an absolute ``path`` replaces ``base`` here, and is then checked
    except (OSError, ValueError) as exc:  # a NUL byte, a symlink loop
        raise UnsafePath(f"refusing to write {str(path)!r}: {exc}") from exc
    if target == base or not target.is_relative_to(base):
        raise UnsafePath(f"refusing to write {target}: it is not inside the results folder {base} (every "
                         f"file odebench writes stays under the folder given with --out)")
    return target


def sweep_dir(out_root: str | Path, name: str) -> Path:
    """``<out_root>/<name>`` for a valid sweep name, checked to lie inside ``out_root``."""
    problem = name_problem(name)
    if problem is not None:
        raise UnsafePath(f"sweep name: {problem}")
    return inside(out_root, name)
