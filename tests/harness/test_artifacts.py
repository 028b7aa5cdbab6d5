"""Atomic writes observed from outside: a failure between write and rename leaves the old file and no temp
file; the final path only ever shows whole contents. (An in-place write once passed every test.)"""

import os
from pathlib import Path

import pytest

from odebench.bench.harness import artifacts
from odebench.bench.harness.artifacts import atomic_write_bytes


def test_a_failed_replace_leaves_the_old_file_and_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "record.json"
    target.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError("disk pulled out between write and rename")

    monkeypatch.setattr(artifacts.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk pulled"):
        atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]  # no temp file left behind


def test_the_final_path_shows_only_whole_contents(tmp_path, monkeypatch):
    """Observed from outside at the moment the data is flushed: the final path still holds the old bytes,
    and the new bytes reach it only by one rename of a synced file."""
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    seen_at_fsync, renames = [], []
    real_fsync, real_replace = os.fsync, os.replace

    def spying_fsync(fd):
        seen_at_fsync.append(target.read_bytes())
        return real_fsync(fd)

    def spying_replace(src, dst):
        renames.append((Path(src).read_bytes(), Path(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(artifacts.os, "fsync", spying_fsync)
    monkeypatch.setattr(artifacts.os, "replace", spying_replace)
    atomic_write_bytes(target, b"new content")
    assert seen_at_fsync == [b"old"]
    assert renames == [(b"new content", target)]
    assert target.read_bytes() == b"new content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]




@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_written_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    """A temp file is created 0o600; the final file must be as shareable as an ordinary write would make it."""
    before = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "record.json", b"{}")
    finally:
        os.umask(before)
    assert (tmp_path / "record.json").stat().st_mode & 0o777 == mode
