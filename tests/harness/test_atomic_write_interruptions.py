"""Atomic writes when the process dies or is interrupted, and the umask they read.

A process killed between the write and the rename leaves its temp file behind: it must be hidden, hold the
whole new content, and carry the name the next run's cleanup (stale_files) recognises and removes; the target
keeps its old bytes. An interrupt arriving just after the rename reaches the caller as itself, with the new
file in place. The final mode follows the umask, which is read without ever changing it where /proc says it,
and read correctly (and left as it was) where it does not.
"""

from __future__ import annotations

import io
import os
import time

import pytest

from odebench.bench.harness.store import artifacts
from odebench.bench.harness.store.artifacts import atomic_write_bytes, current_umask
from odebench.bench.harness.store.stale_files import remove_stale_temps


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to kill a writer mid-write")
def test_a_writer_killed_before_its_rename_leaves_only_a_hidden_temp_file_that_cleanup_removes(tmp_path):
    models = tmp_path / ".cache" / "models"  # the cleanup looks only in the folders odebench owns
    models.mkdir(parents=True)
    target = models / "model.safetensors"
    target.write_bytes(b"old")
    pid = os.fork()
    if pid == 0:  # the writer: dies (no cleanup, no atexit) at the moment it would rename
        try:
            artifacts.os.replace = lambda src, dst: os._exit(0)
            atomic_write_bytes(target, b"new content", root=tmp_path)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # it did reach the rename
    assert target.read_bytes() == b"old"
    left = [p for p in models.iterdir() if p != target]
    assert len(left) == 1 and left[0].name.startswith(".model.safetensors.odebench-")
    assert left[0].read_bytes() == b"new content"
    assert remove_stale_temps(tmp_path, older_than=time.time() + 1) == left
    assert sorted(p.name for p in models.iterdir()) == ["model.safetensors"]


def test_an_interrupt_just_after_the_rename_reaches_the_caller_as_itself(tmp_path, monkeypatch):
    """Ctrl-C between the rename and the end of the write: the caller sees KeyboardInterrupt (not an error about
    the temp file, which the rename already consumed), and the new content is in place."""
    target = tmp_path / "record.json"
    target.write_bytes(b"old")
    real_replace = os.replace

    def replace_then_interrupt(src, dst):
        real_replace(src, dst)
        raise KeyboardInterrupt

    monkeypatch.setattr(artifacts.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new content", root=tmp_path)
    assert target.read_bytes() == b"new content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


@pytest.fixture
def umask_027():
    before = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(before)


def _proc_gives_umask() -> bool:
    try:
        with open("/proc/self/status") as fh:
            return any(line.startswith("Umask:") for line in fh)
    except OSError:
        return False


@pytest.mark.skipif(not _proc_gives_umask(), reason="needs /proc/self/status with a Umask line (Linux >= 4.7)")
def test_the_umask_is_read_from_proc_without_ever_being_changed(umask_027, monkeypatch):
    """Setting the umask, even to restore it at once, would change the mode of files another thread creates in
    between; where /proc says it, it is only read."""
    calls = []
    real_umask = os.umask
    monkeypatch.setattr(artifacts.os, "umask", lambda mask: calls.append(mask) or real_umask(mask))
    assert current_umask() == umask_027
    assert calls == []


def _no_proc(*args, **kwargs):
    raise FileNotFoundError("/proc/self/status")


def _status_without_umask(*args, **kwargs):
    return io.StringIO("Name:\tpython\nState:\tR (running)\nPid:\t1\n")  # kernels before 4.7 have no Umask line


@pytest.mark.parametrize("fake_open", [_no_proc, _status_without_umask], ids=["no-proc", "no-umask-line"])
def test_without_proc_the_umask_is_still_read_right_and_left_as_it_was(umask_027, monkeypatch, fake_open, tmp_path):
    monkeypatch.setattr(artifacts, "open", fake_open, raising=False)
    assert current_umask() == umask_027
    assert os.umask(umask_027) == umask_027  # unchanged
    atomic_write_bytes(tmp_path / "record.json", b"{}", root=tmp_path)
    assert (tmp_path / "record.json").stat().st_mode & 0o777 == 0o640
