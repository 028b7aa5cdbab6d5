"""Records are validated on read: a file that is not a record of its cell is corrupt, moved aside with a note,
and its cell evaluated again; nothing a record file holds crashes a run, its dry run, or the report."""

from __future__ import annotations

import json

import pytest
from harness_tiny import tiny_spec, to_toml

import odebench.bench.harness.execution.run
from odebench.bench.cli import main
from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.record_schema import record_problem
from odebench.bench.harness.store.records import RecordStore

SPEC = tiny_spec(name="rs", solvers=[{"name": "euler", "nfe": [2]}])
CELL = parse_spec(SPEC).cells[0]


def good_record() -> dict:
    return {"schema_version": 1, "cell_id": CELL.id, "config_hash": CELL.id, "config": CELL.config(),
            "status": "ok", "reason": None, "metrics": {"w2": 0.5}, "nfe": 2, "timings": {}, "environment": {}}


def forged(**change) -> dict:
    rec = good_record()
    for k, v in change.items():
        if v is None:
            rec.pop(k)
        else:
            rec[k] = v
    return rec


BAD = {
    "null": b"null",
    "list": b"[1, 2]",
    "truncated": json.dumps(good_record()).encode()[:40],
    "not utf-8": b"\xff\xfe{}",
    "newer schema": json.dumps(forged(schema_version=99)).encode(),
    "forged ok": json.dumps({"status": "ok", "cell_id": CELL.id}).encode(),
    "no config": json.dumps(forged(config=None)).encode(),
    "other cell's config": json.dumps(forged(config={**CELL.config(), "seed": 7})).encode(),
    "bad status": json.dumps(forged(status="done")).encode(),
    "metrics not numbers": json.dumps(forged(metrics={"w2": "low"})).encode(),
    "metric named status": json.dumps(forged(metrics={"status": 1.0})).encode(),
    "timings a list": json.dumps(forged(timings=[1])).encode(),
    "deep": b"[" * 100_000 + b"]" * 100_000,
}


def test_a_sound_record_passes():
    assert record_problem(good_record(), CELL.id) is None


@pytest.mark.parametrize("what", list(BAD))
def test_every_broken_record_is_named_corrupt_and_read_as_missing(tmp_path, what):
    store = RecordStore(tmp_path / "rs")
    store.cells.mkdir(parents=True)
    store.path(CELL.id).write_bytes(BAD[what])
    assert store.read(CELL.id) is None and store.records() == []
    assert store.path(CELL.id) in store.corrupt
    assert store.path(CELL.id).exists()  # reading never moves or deletes anything


@pytest.mark.parametrize("what", ["null", "newer schema", "forged ok", "truncated"])
def test_a_run_moves_a_corrupt_record_aside_and_evaluates_its_cell_again(tmp_path, capsys, what):
    out = tmp_path / "out"
    store = RecordStore(out / "rs")
    store.cells.mkdir(parents=True)
    store.path(CELL.id).write_bytes(BAD[what])
    spec = tmp_path / "rs.toml"
    spec.write_text(to_toml(SPEC))
    assert main(["run", "--spec", str(spec), "--out", str(out), "--dry-run"]) == 0  # the dry run copes too
    assert "already done: 0 cells" in capsys.readouterr().out
    odebench.bench.harness.execution.run._MODELS.clear()
    summary = run_sweep(parse_spec(SPEC), out, progress=False)
    assert summary.status_counts == {"ok": 1}
    assert any("is corrupt" in n and "runs again" in n for n in summary.notes), summary.notes
    assert store.path(CELL.id).with_name(f"{CELL.id}.json.corrupt").read_bytes() == BAD[what]  # kept aside
    assert store.read(CELL.id)["status"] == "ok"


def test_a_truncated_record_is_listed_by_odebench_report(tmp_path, capsys):
    out = tmp_path / "out"
    odebench.bench.harness.execution.run._MODELS.clear()
    run_sweep(parse_spec(tiny_spec(name="rs", solvers=[{"name": "euler", "nfe": [1, 2]}])), out, progress=False)
    [victim, _] = sorted((out / "rs" / "cells").glob("*.json"))
    victim.write_bytes(victim.read_bytes()[:50])
    capsys.readouterr()
    assert main(["report", str(out / "rs"), "--no-figures"]) == 0
    err = capsys.readouterr().err
    assert f"record {victim.name} is corrupt" in err
    md = (out / "rs" / "leaderboard.md").read_text()
    assert "corrupt 1" in md and victim.name in md
