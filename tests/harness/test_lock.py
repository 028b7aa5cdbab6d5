"""A results folder is owned by one run: a second run on the same --out is refused, at once and cleanly,
while the first holds it; a killed holder leaves no stale lock behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness_tiny import tiny_spec, to_toml

from odebench.bench.cli import main
from odebench.bench.harness.store import lock as lock_mod
from odebench.bench.harness.store.lock import LOCK_NAME, FolderLocked, acquire

ROOT = Path(__file__).resolve().parents[2]
HOLD = ("import sys, time; from odebench.bench.harness.store.lock import acquire; l = acquire(sys.argv[1]); "
        "print('held', flush=True); time.sleep(60)")


def hold_in_child(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_on_a_held_folder_is_refused_and_does_no_work(tmp_path, capsys):
    out = tmp_path / "out"
    holder = hold_in_child(out)
    try:
        spec = tmp_path / "s.toml"
        spec.write_text(to_toml(tiny_spec(name="locked", solvers=[{"name": "euler", "nfe": [1]}])))
        assert main(["run", "--spec", str(spec), "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and "in use by another odebench run" in err
        assert f"pid {holder.pid} on host {socket.gethostname()}" in err and "another --out" in err
        assert not (out / "locked").exists() and not (out / ".cache").exists()  # nothing read, trained, written
        # a dry run only reads: it still works while the folder is held
        assert main(["run", "--spec", str(spec), "--out", str(out), "--dry-run"]) == 0
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "out"
    holder = hold_in_child(out)
    with pytest.raises(FolderLocked):
        acquire(out)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with acquire(out) as held:  # the kernel released the dead process's lock
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
        with pytest.raises(FolderLocked, match=f"pid {os.getpid()}"):
            acquire(out)  # even from the same process, a second holder is refused
    assert held.fd is None
    acquire(out).release()  # released on leaving the block


def test_without_flock_a_dead_holder_on_this_host_is_a_stale_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_mod, "fcntl", None)
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": 0}))
    held = acquire(out)
    assert any(f"stale lock of pid {dead.pid}" in n for n in held.notes)
    with pytest.raises(FolderLocked, match=f"pid {os.getpid()}"):
        acquire(out)  # a live holder (this process) is respected
    held.release()
    assert not (out / LOCK_NAME).exists()
    # a holder on another host cannot be checked: refused, with the holder named
    (out / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": time.time()}))
    with pytest.raises(FolderLocked, match="host elsewhere"):
        acquire(out)
