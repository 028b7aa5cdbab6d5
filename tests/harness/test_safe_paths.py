"""Nothing is written outside --out: a sweep name is one safe path component, and every write is checked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from harness_tiny import tiny_spec, to_toml

from odebench.bench.cli import main
from odebench.bench.harness.guards.safe_paths import UnsafePath, inside, name_problem, sweep_dir
from odebench.bench.harness.spec.sweep import SpecError, parse_spec
from odebench.bench.harness.store.artifacts import atomic_write_bytes
from odebench.bench.harness.store.records import RecordStore

BAD_NAMES = ["../../escape", "..", ".", ".cache", "a/b", "a\\b", "/tmp/abs_escape", "x" * 300, "nul\0byte",
             "CON", "lpt1.txt", "", "-dash", "trailing.", "sp ace"]


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", BAD_NAMES)
def test_unsafe_names_are_refused_with_a_safe_suggestion(name):
    with pytest.raises(SpecError) as info:
        parse_spec(tiny_spec(name=name))
    [problem] = [p for p in info.value.problems if p.startswith("name:")]
    assert any(w in problem for w in ("A-Z a-z 0-9 _ . -", "reserve", "drop", "NUL")), problem
    if "NUL" not in problem and name.strip("./\\"):
        suggested = problem.rsplit('name = "', 1)[1].split('"')[0]
        assert name_problem(suggested) is None, (name, suggested)


@pytest.mark.parametrize("name", ["quick", "my_sweep-2", "a" * 64, "v1.2"])
def test_safe_names_pass(name):
    assert name_problem(name) is None
    assert parse_spec(tiny_spec(name=name)).name == name


@pytest.mark.parametrize("name", ["../../escape", "../escape", ".cache"])
def test_run_with_an_escaping_name_writes_nothing_anywhere(tmp_path, capsys, name):
    sandbox = tmp_path / "box"
    out = sandbox / "a" / "b" / "out"
    out.mkdir(parents=True)
    spec = tmp_path / "s.toml"
    spec.write_text(to_toml(tiny_spec(name=name, solvers=[{"name": "euler", "nfe": [1]}])))
    assert main(["run", "--spec", str(spec), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "name:" in err and "Traceback" not in err
    assert files_under(sandbox) == set()  # nothing trained, nothing written: not even inside --out


def test_inside_refuses_paths_that_resolve_outside_the_root(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    assert inside(root, root / "sweep/cells/x.json") == (root / "sweep/cells/x.json").resolve()
    for bad in (root / "../x", "/etc/passwd", root, root / "." , root / "a/../../x", "nul\0"):
        with pytest.raises(UnsafePath):
            inside(root, bad)
    (root / "link").symlink_to(tmp_path)  # a symlink under --out that leads out of it
    with pytest.raises(UnsafePath, match="not inside the results folder") as info:
        inside(root, root / "link/x.json")
    assert f"{root / 'link'} is a symlink to {tmp_path}" in str(info.value)  # the message names the link


def test_a_relative_path_is_where_the_system_puts_it_never_under_the_root_twice(tmp_path, monkeypatch):
    """``odebench report results/quick`` built ``results/quick/figures/x.png`` and the guard joined it under the
    relative root again: the report landed in ``results/quick/results/quick``."""
    monkeypatch.chdir(tmp_path)
    root = Path("results/quick")
    assert inside(root, root / "figures" / "x.png") == tmp_path / "results/quick/figures/x.png"
    written = atomic_write_bytes(root / "index.html", b"page", root=root)
    assert written == tmp_path / "results/quick/index.html" and written.read_bytes() == b"page"
    assert not (tmp_path / "results/quick/results").exists()
    with pytest.raises(UnsafePath):  # a bare name is a file of the current folder, not of the root
        inside(root, "index.html")


def test_every_writer_checks_its_root(tmp_path):
    root = tmp_path / "out"
    with pytest.raises(UnsafePath):
        atomic_write_bytes(root / ".." / "escape.json", b"{}", root=root)
    store = RecordStore(root / "s", root=root)
    with pytest.raises(UnsafePath):  # a record whose cell id is a path
        store.write({"cell_id": "../../../escape"})
    assert not (tmp_path / "escape.json").exists() and files_under(tmp_path) == set()


def test_sweep_dir_refuses_a_programmatic_spec_with_a_bad_name(tmp_path):
    with pytest.raises(UnsafePath):
        sweep_dir(tmp_path, "../x")
    assert sweep_dir(tmp_path, "ok") == (tmp_path / "ok").resolve()


def test_a_run_writes_only_under_out(tmp_path):
    """A valid run, end to end (records, models, report, figures, lock): every file lands under --out."""
    sandbox = tmp_path / "box"
    out = sandbox / "out"
    spec = tmp_path / "s.toml"
    spec.write_text(to_toml(tiny_spec(name="inside", solvers=[{"name": "euler", "nfe": [2]}])))
    cwd = os.getcwd()
    assert main(["run", "--spec", str(spec), "--out", str(out), "--no-progress"]) == 0
    assert os.getcwd() == cwd
    written = files_under(sandbox)
    assert written and all(w.startswith("out" + os.sep) for w in written)
    [record] = [json.loads((sandbox / w).read_text()) for w in written if "/cells/" in w]
    assert record["status"] == "ok"
