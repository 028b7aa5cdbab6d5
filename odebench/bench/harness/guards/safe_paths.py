"""Where the harness may write: inside the folder the user named (``--out``), nowhere else.

A sweep's ``name`` becomes a folder under ``--out``, so it must be one safe path component: 1 to
``NAME_MAX`` characters from ``[A-Za-z0-9_.-]``, starting with a letter or digit (so never ``.``, ``..``,
``.cache`` or a hidden name), and not a name some file systems reserve (``CON``, ``NUL``, ``COM1``, ...).
``name_problem`` says what is wrong with a name and how to fix it; the spec checks call it.

Every file the harness writes (records, models, sample sheets, the report, figures, the lock) goes through
:func:`inside`, which resolves the path (symlinks included) and refuses it unless it lies strictly under the
resolved root. A symlink under ``--out`` that points elsewhere is refused too: the rule is about where the
bytes land, not how the path is spelled. A relative path means what it means to ``open()``: relative to the
current folder, never to ``root``; so a path built from a relative root (``results/quick`` /
``figures/x.png``) is checked, and written, exactly where the operating system puts it, and can never land one
level too deep (``results/quick/results/quick/...``). The command line and the API still make every folder
the user names absolute once, at their entry, so that messages name one unambiguous place.

Every file the harness deletes goes through :func:`remove_file` (a regular file, in a folder that resolves
under the root, never a symlink or what one points to), and every folder a tracking sink creates through
:func:`make_dirs` (each level checked as it is made).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from odebench.bench.harness.guards.errors import RunRefused

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


def _base(root: str | Path) -> Path:
    try:
        return Path(root).resolve()
    except (OSError, ValueError) as exc:  # a NUL byte, a symlink loop
        raise UnsafePath(f"refusing the results folder {str(root)!r}: {exc}") from exc


def _escape_note(path: Path) -> str:
    """Which symlink on ``path`` leads elsewhere (for messages), '' if none is found."""
    try:
        probe = Path(path).absolute()
        for p in (probe, *probe.parents):
            if p.is_symlink():
                return f" ({p} is a symlink to {os.readlink(p)}: remove the link, or give a folder without it)"
    except (OSError, ValueError):  # only a message: an unreadable folder says nothing more
        pass
    return ""


def inside(root: str | Path, path: str | Path) -> Path:
    """``path``, resolved, once checked to lie under ``root``.

    A relative ``path`` is relative to the current folder, as for ``open()`` (build paths from the root:
    ``inside(root, root / "cells" / name)``). Raises UnsafePath naming both folders when the resolved path is
    ``root`` itself or lies outside it.
    """
    base = _base(root)
    try:
        target = Path(path).resolve()
    except (OSError, ValueError) as exc:  # a NUL byte, a symlink loop
        raise UnsafePath(f"refusing to write {str(path)!r}: {exc}") from exc
    if target == base or not target.is_relative_to(base):
        raise UnsafePath(f"refusing to write {target}: it is not inside the results folder {base} (every "
                         f"file odebench writes stays under the folder given with --out){_escape_note(path)}")
    return target


def folder_inside(root: str | Path, folder: str | Path) -> Path:
    """``folder`` resolved, once checked to be ``root`` or lie under it (a symlink on the way that leads out of
    ``root`` is refused with UnsafePath); it need not exist."""
    return _folder_inside(_base(root), Path(folder))


def _folder_inside(base: Path, folder: Path) -> Path:
    try:
        real = folder.resolve()
    except (OSError, ValueError) as exc:
        raise UnsafePath(f"refusing {str(folder)!r}: {exc}") from exc
    if real != base and not real.is_relative_to(base):
        raise UnsafePath(f"refusing {folder}: it leads to {real}, outside the results folder {base} (odebench "
                         f"writes and deletes only under the folder given with --out){_escape_note(folder)}")
    return real


def remove_file(root: str | Path, path: str | Path) -> bool:
    """Delete ``path`` if it is a regular file of a folder that resolves under ``root``; returns False when it
    does not exist.

    Raises UnsafePath, deleting nothing, when its folder leads out of ``root`` (a symlinked ``figures/``) or
    ``path`` is not a regular file (a symlink, whose target is never touched; a folder; a FIFO). The file is
    looked at and unlinked through a handle on its folder, so the folder checked is the folder changed.
    """
    base = _base(root)
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise UnsafePath(f"refusing to delete {path}: not a file name")
    folder = _folder_inside(base, path.parent)
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0))
    try:
        at = {"dir_fd": fd} if os.unlink in os.supports_dir_fd and os.stat in os.supports_dir_fd else {}
        where = path.name if at else folder / path.name
        try:
            st = os.stat(where, follow_symlinks=False, **at)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(f"refusing to delete {folder / path.name}: not a regular file (odebench deletes only "
                             f"files it wrote, never a link or what it points to)")
        try:
            os.unlink(where, **at)
        except FileNotFoundError:
            return False
    finally:
        os.close(fd)
    return True


def make_dirs(root: str | Path, path: str | Path) -> Path:
    """Create the folder ``path`` and its missing parents under ``root``, each level checked as it is reached
    (a symlink at any level that leads out of ``root`` is refused); returns it resolved."""
    Path(root).mkdir(parents=True, exist_ok=True)  # the folder the user named: the one folder made unchecked
    base = _base(root)
    target = Path(path).absolute()
    if not target.is_relative_to(base) and not target.resolve().is_relative_to(base):
        raise UnsafePath(f"refusing to create {target}: it is not inside the results folder {base}")
    # walk from the root down the spelled path: every existing level must stay under the root
    rel = target.relative_to(base) if target.is_relative_to(base) else target.resolve().relative_to(base)
    level = base
    for part in rel.parts:
        level = level / part
        try:
            level.mkdir(exist_ok=True)
        except FileExistsError:  # a file, or a symlink to a file: not a folder to write in
            raise UnsafePath(f"refusing to create {level}: something that is not a folder is there") from None
        level = _folder_inside(base, level)
    if level == base:
        raise UnsafePath(f"refusing {target}: it is the results folder itself")
    return level


def sweep_dir(out_root: str | Path, name: str) -> Path:
    """``<out_root>/<name>`` for a valid sweep name, checked to lie inside ``out_root``."""
    problem = name_problem(name)
    if problem is not None:
        raise UnsafePath(f"sweep name: {problem}")
    return inside(out_root, Path(out_root) / name)
