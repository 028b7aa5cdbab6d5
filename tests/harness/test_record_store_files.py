"""What a sweep folder's record files do on disk: a skipped cell's record has the same keys as any other
(empty metrics and timings, no NFE); a folder holding only a pack is read from it (migrated, bad lines listed),
while a folder with ``cells/`` is read from there; a corrupt record is moved aside with the reason, and a sound
or vanished one is left as it is; migration never overwrites a current key with an old one."""

from __future__ import annotations

import gzip
import json

from harness_tiny import tiny_spec

from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.packed import PACKED, pack_bytes, write_packed
from odebench.bench.harness.store.records import RecordStore, migrate, skipped_record

CELLS = parse_spec(tiny_spec(name="rsf", solvers=[{"name": "euler", "nfe": [1, 2]}])).cells
CELL = CELLS[0]


def sound(cell=CELL, **extra) -> dict:
    return {
        "schema_version": 1,
        "cell_id": cell.id,
        "config_hash": cell.id,
        "config": cell.config(),
        "status": "ok",
        "reason": None,
        "metrics": {"w2": 0.5},
        "nfe": 2,
        "timings": {},
        "environment": {},
        **extra,
    }


def test_a_skipped_record_carries_empty_results_under_the_usual_keys(tmp_path):
    record = skipped_record(CELL, "cpu", "solver needs a score")
    assert record["status"] == "skipped" and record["reason"] == "solver needs a score"
    assert record["metrics"] == {} and record["timings"] == {} and record["nfe"] is None
    store = RecordStore(tmp_path / "rsf")
    store.write(record)
    assert store.read(CELL.id) == json.loads(json.dumps(record, default=str)) and store.finished(CELL.id)
    assert store.frame().loc[0, "status"] == "skipped"


def test_a_folder_with_only_a_pack_is_read_from_the_pack(tmp_path):
    folder = tmp_path / "rsf"
    folder.mkdir()
    old = sound(CELLS[1], sample_grid="old.png")  # an image key under its old name
    lines = pack_bytes([sound(), old])
    text = gzip.decompress(lines).decode() + json.dumps({"cell_id": "zz", "status": "ok"}) + "\n"
    (folder / PACKED).write_bytes(gzip.compress(text.encode()))
    store = RecordStore(folder)
    records = sorted(store.records(), key=lambda r: r["cell_id"] != CELL.id)
    assert [r["cell_id"] for r in records] == [CELL.id, CELLS[1].id]
    assert records[1]["sample_sheet"] == "old.png" and "sample_grid" not in records[1]  # migrated
    assert list(store.corrupt) == [folder / f"{PACKED}:3"]  # the forged line, named by its line number


def test_cells_win_over_a_pack_and_an_empty_folder_reads_as_no_records(tmp_path):
    folder = tmp_path / "rsf"
    store = RecordStore(folder)
    assert store.records() == [] and store.corrupt == {}  # no folder at all: nothing read, nothing corrupt
    folder.mkdir()
    assert store.records() == [] and store.corrupt == {}
    write_packed([sound()], folder, tmp_path)
    store.write(sound(CELLS[1]))  # cells/ exists now: it holds the sweep, the pack is not read
    assert [r["cell_id"] for r in store.records()] == [CELLS[1].id] and store.corrupt == {}


def test_a_corrupt_record_is_moved_aside_with_its_reason(tmp_path):
    store = RecordStore(tmp_path / "rsf")
    store.cells.mkdir(parents=True)
    path = store.path(CELL.id)
    path.write_bytes(b"{ truncated")
    note = store.quarantine(CELL.id)
    assert note is not None and "is corrupt (unreadable (JSONDecodeError" in note and "runs again" in note
    assert f"{CELL.id}.json.corrupt" in note
    assert not path.exists() and path.with_name(f"{CELL.id}.json.corrupt").read_bytes() == b"{ truncated"
    assert store.corrupt == {} and store.read(CELL.id) is None


def test_a_record_of_another_cell_is_corrupt_too_and_only_its_own_file_moves(tmp_path):
    store = RecordStore(tmp_path / "rsf")
    store.write(sound(CELLS[1]))
    store.path(CELL.id).write_text(json.dumps(sound(CELLS[1])))  # the other cell's record under this cell's name
    note = store.quarantine(CELL.id)
    assert "does not match its file name" in note
    assert sorted(p.name for p in store.cells.iterdir()) == sorted([f"{CELL.id}.json.corrupt", f"{CELLS[1].id}.json"])
    assert store.quarantine(CELLS[1].id) is None


def test_a_sound_or_missing_record_is_left_alone(tmp_path):
    store = RecordStore(tmp_path / "rsf")
    assert store.quarantine(CELL.id) is None  # nothing there
    store.write(sound())
    before = store.path(CELL.id).read_bytes()
    assert store.quarantine(CELL.id) is None
    assert store.path(CELL.id).read_bytes() == before and store.read(CELL.id)["status"] == "ok"
    store.path(CELL.id).write_bytes(b"null")
    assert store.read(CELL.id) is None and store.path(CELL.id) in store.corrupt
    store.path(CELL.id).unlink()  # removed by hand after it was read as corrupt
    assert store.quarantine(CELL.id) is None
    assert list(store.cells.iterdir()) == []


def test_migration_keeps_a_current_key_over_its_old_name():
    record = {"cell_id": "a", "status": "ok", "sample_sheet": "new.png", "sample_grid": "old.png"}
    assert migrate(dict(record))["sample_sheet"] == "new.png"
