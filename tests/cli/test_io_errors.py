"""I/O errors end with one ``error:`` line naming the path and the cause, exit code 2 (a cause the user can fix:
a full disk, a read-only or immutable folder) and no finished data lost: while writing the lock, a record or
the report, ``odebench claims`` on a read-only sweep, and an ``index.html`` that is a symlink out of the sweep
folder after the sweep finished. The errors are raised in-process by patching one module's view of ``os`` or
``tempfile`` (chmod does not stop root, and a full disk cannot be made in a test)."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import pytest
from finished_sweep import RUN, SWEEP, Patched, one_error_line, snapshot

from odebench.bench.cli import main
from odebench.bench.harness.store import artifacts, lock

CAUSES = {errno.ENOSPC: "No space left on device", errno.EROFS: "Read-only file system",
          errno.EPERM: "Operation not permitted"}




def failing(err: int, when=lambda *args: True):
    """A function that raises OSError(err) (as the system does, without a file name) when ``when(*args)``, and
    otherwise calls the real one it replaces (given later with ``.real``)."""

    def fn(*args, **kwargs):
        if when(*args):
            raise OSError(err, os.strerror(err))
        return fn.real(*args, **kwargs)

    return fn


def test_a_full_disk_while_writing_the_lock(work, monkeypatch, capsys):
    write = failing(errno.ENOSPC, lambda fd, data: data.startswith(b'{"pid"'))
    write.real = os.write
    monkeypatch.setattr(lock, "os", Patched(os, write=write))
    before = snapshot(work / "results" / SWEEP)
    assert main(RUN) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(work / "results" / ".odebench.lock") in line and CAUSES[errno.ENOSPC] in line
    assert "free some space" in line
    assert snapshot(work / "results" / SWEEP) == before
    monkeypatch.setattr(lock, "os", os)  # space again (the working folder stays this test's)
    assert main(RUN) == 0  # the lock was given back: the next run goes ahead


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EPERM, errno.EROFS])
def test_an_error_while_writing_a_record(work, monkeypatch, capsys, err):
    cells = work / "results" / SWEEP / "cells"
    records = sorted(cells.iterdir())
    records[0].unlink()  # its cell runs again, and its record cannot be written
    kept = {p: p.read_bytes() for p in records[1:]}
    replace = failing(err, lambda src, dst: Path(dst).parent == cells)
    replace.real = os.replace
    monkeypatch.setattr(artifacts, "os", Patched(os, replace=replace))
    assert main(RUN) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(records[0]) in line and CAUSES[err] in line
    assert {p: p.read_bytes() for p in records[1:]} == kept and sorted(cells.iterdir()) == records[1:]  # no temp


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EPERM])
def test_an_error_while_writing_the_report_leaves_the_previous_one_whole(work, monkeypatch, capsys, err):
    sweep = work / "results" / SWEEP
    before = snapshot(sweep)
    mkstemp = failing(err)
    monkeypatch.setattr(artifacts, "tempfile", Patched(tempfile, mkstemp=mkstemp))
    assert main(["report", f"results/{SWEEP}"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"cannot write the report in {sweep}" in line and CAUSES[err] in line
    assert "the previous report is unchanged" in line
    assert snapshot(sweep) == before and not [p for p in sweep.iterdir() if p.name.startswith(".report.")]


def test_an_immutable_sweep_folder(work, monkeypatch, capsys):
    sweep = work / "results" / SWEEP
    before = snapshot(sweep)
    monkeypatch.setattr(tempfile, "mkdtemp", failing(errno.EPERM))  # nothing can be created in it
    monkeypatch.setattr(tempfile, "mkstemp", failing(errno.EPERM))
    assert main(["report", f"results/{SWEEP}"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(sweep) in line and CAUSES[errno.EPERM] in line and snapshot(sweep) == before


def test_claims_on_a_read_only_sweep(work, monkeypatch, capsys):
    sweep = work / "results" / SWEEP
    before = snapshot(sweep)
    monkeypatch.setattr(artifacts, "tempfile", Patched(tempfile, mkstemp=failing(errno.EROFS)))
    assert main(["claims", f"results/{SWEEP}"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(sweep) in line and CAUSES[errno.EROFS] in line and "--no-write" in line
    assert snapshot(sweep) == before
    assert main(["claims", f"results/{SWEEP}", "--no-write"]) == 0  # reading only works on a read-only folder


def test_an_index_html_that_links_out_after_the_sweep_finished(work, tmp_path, capsys):
    sweep = work / "results" / SWEEP
    outside = tmp_path / "elsewhere.html"
    outside.write_text("the user's own page")
    (sweep / "index.html").unlink()
    (sweep / "index.html").symlink_to(outside)
    records = sorted((sweep / "cells").iterdir())
    records[0].unlink()  # the run has work to do before it reaches the report
    assert main(RUN) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "the sweep finished and its records are kept" in line and str(sweep / "index.html") in line
    assert f"is a symlink to {outside}" in line
    assert outside.read_text() == "the user's own page" and sorted((sweep / "cells").iterdir()) == records
    assert main(["claims", f"results/{SWEEP}"]) == 2  # claims splice the page: refused the same way
    assert str(sweep / "index.html") in one_error_line(capsys.readouterr().err)
    assert outside.read_text() == "the user's own page"
