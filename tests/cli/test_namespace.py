"""One import namespace: the wheel installs only ``odebench``, and the CLI works from a folder whose own
``metrics.py`` / ``methods/`` would shadow generic top-level names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_wheel_installs_odebench_as_its_only_top_level_package(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path)], check=True, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    (wheel,) = tmp_path.glob("odebench-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert zf.read(top_level).decode().split() == ["odebench"]
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"odebench"}
    assert "odebench/bench/harness/spec/builtin/quick.toml" in names  # package data travels
    assert "odebench/metrics/weights/digits_cnn.pt" in names


def _cli(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "odebench", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_list_and_a_smoke_run_work_beside_a_users_own_metrics_and_methods(shadowing_folder):
    listed = _cli(["list"], shadowing_folder)
    assert listed.returncode == 0, listed.stderr
    assert "fm_ot" in listed.stdout and "w2" in listed.stdout
    out = shadowing_folder / "results"
    run = _cli(["run", "--spec", "smoke", "--out", str(out), "--no-progress"], shadowing_folder)
    assert run.returncode == 0, run.stdout + run.stderr
    records = [json.loads(p.read_text()) for p in (out / "smoke" / "cells").glob("*.json")]
    assert records and all(r["status"] in ("ok", "skipped") for r in records)
