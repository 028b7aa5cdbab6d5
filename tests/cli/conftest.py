"""Fixtures of the command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest

#: module names a researcher's own project commonly holds; odebench must never import them
SHADOWS = ("metrics", "methods", "bench", "data", "nets", "report")


@pytest.fixture
def shadowing_folder(tmp_path: Path) -> Path:
    """A working folder holding ``metrics.py``, ``methods/``, ... that raise when imported: a script run from
    here has them first on sys.path, so any import of a generic top-level name by odebench would fail."""
    for name in SHADOWS:
        body = f'raise RuntimeError("the user\'s own {name} was imported instead of odebench\'s")\n'
        if name in ("methods", "bench"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "__init__.py").write_text(body)
        else:
            (tmp_path / f"{name}.py").write_text(body)
    return tmp_path
