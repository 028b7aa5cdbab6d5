"""Atomic writes observed from outside: a failure between write and rename leaves the old file and no temp
file; the final path only ever shows whole contents. (An in-place write once passed every test.) Then the
model store (round trip, meta file, hash checks) and the record store (files, reading, migration, labels)."""

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from odebench.bench.harness.store import artifacts
from odebench.bench.harness.store.artifacts import ArtifactStore, atomic_write_bytes
from odebench.bench.harness.store.records import SCHEMA_VERSION, RecordStore, is_finished, method_label, migrate


def test_a_failed_replace_leaves_the_old_file_and_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "record.json"
    target.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError("disk pulled out between write and rename")

    monkeypatch.setattr(artifacts.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk pulled"):
        atomic_write_bytes(target, b"new content", root=tmp_path)
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
    atomic_write_bytes(target, b"new content", root=tmp_path)
    assert seen_at_fsync == [b"old"]
    assert renames == [(b"new content", target)]
    assert target.read_bytes() == b"new content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]




# ------------------------------------------------------------------------------------------ the model store
#: model keys are 16 hex digits (a config hash); the store names files after them
KEY, KEY1 = "0123456789abcdef", "fedcba9876543210"


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(3, 2)


def test_sha256_file_is_the_hash_of_the_whole_file(tmp_path):
    """The hash covers every byte of a file spanning several read chunks."""
    data = bytes(range(256)) * (5 * 4096 + 7)  # ~5 MiB, not a multiple of the chunk size
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert artifacts.sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_a_saved_model_loads_back_with_its_meta_in_a_stable_json_file(tmp_path):
    """save/load round trip: same weights, the meta plus key and sha256 of the weights file, written as
    indented JSON with sorted keys (values JSON cannot hold, such as paths, as their text)."""
    store = ArtifactStore(tmp_path)
    store.save(KEY1, _net(0), {"zeta": 1, "alpha": tmp_path / "x"})
    weights, meta_path = store.paths(KEY1)
    full = {"alpha": str(tmp_path / "x"), "key": KEY1, "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
            "weights": weights.name, "zeta": 1}
    assert meta_path.read_text() == json.dumps(full, indent=2, sort_keys=True)
    fresh = _net(1)
    assert store.load(KEY1, fresh) == full  # default device: the CPU
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), _net(0).state_dict().values(),
                                                  strict=True))


def test_a_meta_without_its_weights_is_not_cached(tmp_path):
    """A meta whose weights file is gone does not count as stored (weights published without their meta do:
    they carry their meta and their hash name, see test_publish_and_cleanup.py)."""
    store = ArtifactStore(tmp_path)
    store.save(KEY, _net(0), {})
    weights, meta_path = store.paths(KEY)
    assert store.has(KEY) and weights.name.startswith(KEY + ".") and weights.name != KEY + ".pt"
    weights.unlink()
    assert not store.has(KEY)


_UNPICKLED = []


def _record_unpickling():
    _UNPICKLED.append(1)
    return {}


class _Payload:
    def __reduce__(self):
        return _record_unpickling, ()


def test_a_checkpoint_with_code_in_it_is_never_unpickled(tmp_path):
    """A weights file holding an arbitrary pickle, with a meta whose hash matches, is refused unexecuted."""
    store = ArtifactStore(tmp_path)
    store.save(KEY, _net(0), {})
    weights, meta_path = store.paths(KEY)
    torch.save(_Payload(), weights)
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "sha256": artifacts.sha256_file(weights)}))
    with pytest.raises(artifacts.CorruptArtifact, match="cannot load model file"):
        store.load(KEY, _net(0))
    assert _UNPICKLED == []


# ------------------------------------------------------------------------------------------ the record store
def _record(cell_id: str, status: str = "ok", **extra) -> dict:
    return {"schema_version": 1, "cell_id": cell_id, "status": status, **extra}


@pytest.mark.parametrize("record, finished", [(None, False), (_record("a", "ok"), True),
                                              (_record("a", "skipped"), True), (_record("a", "failed"), False),
                                              ({"cell_id": "a"}, False)])
def test_only_ok_and_skipped_records_finish_a_cell(record, finished):
    """ok and skipped cells are done; failed cells and cells with no record run again."""
    assert is_finished(record) is finished


def _sound_records(n: int) -> list[dict]:
    """Records of ``n`` real cells of a tiny spec (their configs hash to their ids, as the schema asks)."""
    from harness_tiny import tiny_spec

    from odebench.bench.harness.spec.sweep import parse_spec
    from odebench.bench.harness.store.records import base_record

    cells = parse_spec(tiny_spec(solvers=[{"name": "euler", "nfe": list(range(1, n + 1))}])).cells
    return [{**base_record(c, "cpu"), "status": "ok", "reason": None, "metrics": {"w2": 0.5}, "timings": {},
             "nfe": c.nfe} for c in cells]


def test_records_are_written_as_stable_json_and_read_back(tmp_path):
    """A record file is indented JSON with sorted keys (paths as text); read() returns it, finished() uses it."""
    store = RecordStore(tmp_path)
    rec = {**_sound_records(1)[0], "sample_sheet": tmp_path / "s.png"}
    cell_id = rec["cell_id"]
    path = store.write(rec)
    assert path == tmp_path / "cells" / f"{cell_id}.json"
    as_text = {**rec, "sample_sheet": str(tmp_path / "s.png")}
    assert path.read_text() == json.dumps(as_text, indent=2, sort_keys=True, default=str)
    assert store.read(cell_id) == json.loads(path.read_text())
    assert store.finished(cell_id) and store.read("missing") is None and not store.finished("missing")


def test_an_unreadable_record_file_hides_no_other_record(tmp_path):
    """records() skips a corrupt file and still returns every readable record after it."""
    store = RecordStore(tmp_path)
    records = _sound_records(2)
    for rec in records:
        store.write(rec)
    (tmp_path / "cells" / "0000.json").write_text("{ not json")
    assert sorted(r["cell_id"] for r in store.records()) == sorted(r["cell_id"] for r in records)


def test_migrate_reads_unversioned_records_and_refuses_newer_ones():
    """A record without schema_version is version 1; one from a newer schema is refused; old keys are renamed."""
    old = {"cell_id": "a", "status": "ok", "sample_grid": "s.png"}
    assert migrate(dict(old)) == {"cell_id": "a", "status": "ok", "sample_sheet": "s.png"}
    with pytest.raises(ValueError, match="newer"):
        migrate({"schema_version": SCHEMA_VERSION + 1, "cell_id": "a"})


@pytest.mark.parametrize("method, label", [({"name": "rf", "k": 2}, "rf(k=2)"), ({"name": "rf", "k": 1}, "rf"),
                                           ({"name": "fm_ot"}, "fm_ot"),
                                           ({"name": "not_registered", "a": 1, "b": None},
                                            "not_registered(a=1, b=None)")])
def test_method_label_shows_the_hparams_that_differ_from_the_defaults(method, label):
    """The report's method label: the name, plus only non-default hparams (all of them for unknown methods)."""
    assert method_label(method) == label


def test_the_temporary_file_lives_beside_the_target(tmp_path, monkeypatch):
    """The rename is within one folder (so one filesystem, so atomic): the temp file is created next to the
    target, never in the system temp folder."""
    renames, real_replace = [], os.replace

    def spying_replace(src, dst):
        renames.append((Path(src).parent, Path(dst).parent))
        return real_replace(src, dst)

    monkeypatch.setattr(artifacts.os, "replace", spying_replace)
    atomic_write_bytes(tmp_path / "sub" / "r.json", b"{}", root=tmp_path)
    assert renames == [(tmp_path / "sub", tmp_path / "sub")]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_written_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    """A temp file is created 0o600; the final file must be as shareable as an ordinary write would make it."""
    before = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "record.json", b"{}", root=tmp_path)
    finally:
        os.umask(before)
    assert (tmp_path / "record.json").stat().st_mode & 0o777 == mode
