"""The example plugin package installs on its own and joins odebench through the entry point group.

It is installed into a temporary folder (never into the shared environment) and used by subprocesses
whose PYTHONPATH puts that folder and this checkout first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugin_method"

SPEC = """
name = "plugin_sweep"
seeds = [0]
[train]
steps = 30
batch_size = 64
[net]
name = "mlp"
hidden = 16
depth = 1
[eval]
n_samples = 64
metrics = ["w2"]
[[methods]]
name = "fm_trig"
[[datasets]]
target = "moons"
[[solvers]]
name = "euler"
nfe = [4]
"""


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    work = tmp_path_factory.mktemp("plugin")
    src = work / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info"))  # keep the repo clean
    target = work / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet"]
    subprocess.run([*pip, "--target", str(target), str(src)], check=True, capture_output=True, text=True,
                   timeout=300)
    return {**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{ROOT}"}


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "odebench", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_plugin_is_listed_and_runs_in_a_sweep(plugin_env, shadowing_folder):
    """From a folder of the user's own with a metrics.py and a methods/ package (they come first on sys.path)."""
    tmp_path = shadowing_folder
    listed = run_cli(["list"], plugin_env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    methods = listed.stdout.split("methods (")[1].split("\n\n")[0]  # one line per method, with its description
    assert any(line.split()[:1] == ["fm_trig"] for line in methods.splitlines()[1:])
    assert "failed to load" not in listed.stderr

    spec = tmp_path / "plugin.toml"
    spec.write_text(SPEC)
    out = tmp_path / "results"
    run = run_cli(["run", "--spec", str(spec), "--out", str(out), "--no-progress"], plugin_env, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    (record,) = [json.loads(p.read_text()) for p in (out / "plugin_sweep" / "cells").glob("*.json")]
    assert record["status"] == "ok" and record["config"]["method"] == {"name": "fm_trig"}
    assert record["nfe"] == 4 and record["metrics"]["w2"] > 0
