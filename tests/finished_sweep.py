"""A finished tiny sweep with its report, made once per test module and copied into each test's own folder: the
tests of where files land (relative paths, symlinks, I/O errors) start from a real results folder."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from pathlib import Path

import pytest
from harness_tiny import tiny_spec, to_toml

from odebench.bench.cli import main

SWEEP = "quick"
SPEC = tiny_spec(name=SWEEP, solvers=[{"name": "euler", "nfe": [2, 4]}])
#: the run of the project, from its folder, into the default relative --out
RUN = ["run", "--spec", "spec.toml", "--out", "results", "--jobs", "1", "--threads", "1", "--no-progress"]


def has_tensorboard() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def make_project(base: Path, *extra: str) -> Path:
    """``base`` as a project folder: ``spec.toml`` and ``results/`` after ``odebench run --spec spec.toml`` run
    from ``base`` with the default (relative) ``--out``, and ``extra`` options."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "spec.toml").write_text(to_toml(SPEC))
    cwd = os.getcwd()
    os.chdir(base)
    try:
        assert main(["run", "--spec", "spec.toml", "--jobs", "1", "--threads", "1", "--no-progress", *extra]) == 0
    finally:
        os.chdir(cwd)
    return base


def copy_project(project: Path, dest: Path) -> Path:
    """A copy of a project folder (symlinks kept as links), for one test to change."""
    shutil.copytree(project, dest, symlinks=True)
    return dest


def snapshot(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` (symlinks not followed): relative path -> bytes."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            p = Path(folder) / name
            if not p.is_symlink():
                out[str(p.relative_to(root))] = p.read_bytes()
    return out


def linked_figures(sweep: Path) -> list[str]:
    """The figure files ``<sweep>/index.html`` links to (relative to the sweep folder)."""
    page = (sweep / "index.html").read_text()
    return sorted(set(re.findall(r'(?:src|href)="(figures/[^"]+)"', page)))


def figures_of(sweep: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((sweep / "figures").glob("*")) if p.is_file()}


class Patched:
    """``module`` with some attributes replaced, for one module's view of it (``monkeypatch.setattr(artifacts,
    "os", Patched(os, replace=...))``): the rest of the process keeps the real one."""

    def __init__(self, module, **replaced):
        self._module = module
        self.__dict__.update(replaced)

    def __getattr__(self, name):
        return getattr(self._module, name)


def one_error_line(err: str) -> str:
    """The one ``error:`` line of a command's stderr (the last line; notes may come before it), no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in err, err
    return errors[0]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project folder after ``odebench run --spec spec.toml`` with the default relative ``--out results``; a
    module that needs another first run defines its own ``project``."""
    return make_project(tmp_path_factory.mktemp("finished") / "project")


@pytest.fixture
def work(project, tmp_path, monkeypatch) -> Path:
    """This test's copy of the project, as its working folder."""
    here = copy_project(project, tmp_path / "project")
    monkeypatch.chdir(here)
    return here
