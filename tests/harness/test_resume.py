"""Kill a real `odebench run` with SIGKILL mid-sweep, run it again, and lose or redo nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness_tiny import tiny_spec, to_toml

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("moons", "8gaussians", "checkerboard")


def start(spec_path: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "odebench.bench.cli", "run", "--spec", str(spec_path), "--out", str(out),
            "--no-progress"]
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.glob("*.json")}


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume_loses_and_repeats_nothing(tmp_path):
    spec = tiny_spec(name="resume", targets=TARGETS, solvers=[{"name": "euler", "nfe": [1, 2, 4]}],
                     train={"steps": 120, "batch_size": 64, "lr": 2e-3})
    spec_path = tmp_path / "resume.toml"
    spec_path.write_text(to_toml(spec))
    out = tmp_path / "out"
    cells, models = out / "resume" / "cells", out / ".cache" / "models"

    proc = start(spec_path, out)
    deadline = time.monotonic() + 300  # generous: a busy machine can be slow to import torch
    while not list(cells.glob("*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up, as with a crash or a pre-empted node
    proc.communicate()
    before = snapshot(cells)
    assert 0 < len(before) < 9, "the run should have been killed mid-way"
    records = [json.loads(b) for _, b in before.values()]  # every record on disk is whole
    assert all(r["status"] == "ok" and r["metrics"] for r in records)
    models_before = len(list(models.glob("*.json")))  # a model counts once its meta (written last) exists

    rerun = start(spec_path, out)
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert f"9 cells, {len(before)} already done" in stdout
    n_needed, n_trained, n_loaded = map(int, re.search(r"models: (\d+) needed, (\d+) trained, (\d+) loaded",
                                                        stdout).groups())
    assert n_trained == len(TARGETS) - models_before  # models finished before the kill are not trained again
    assert n_needed == n_trained + n_loaded

    after = snapshot(cells)
    assert len(after) == 9
    # finished cells untouched: the same bytes and the same modification time
    assert all(after[name] == before[name] for name in before)
    assert all(json.loads(b)["status"] == "ok" for _, b in after.values())
