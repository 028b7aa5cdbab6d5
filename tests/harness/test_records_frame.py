"""A sweep folder read as one table: one row per record with the documented columns, older and minimal records
included; a folder without records names the sweep folders near it and how to make one; a failed cell's record
says at which stage it failed and why, and is itself a sound record."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from odebench.bench.harness.spec.sweep import Cell
from odebench.bench.harness.store.record_schema import record_problem
from odebench.bench.harness.store.records import (
    NoRecords,
    RecordStore,
    failed_record,
    is_finished,
    records_frame,
    sweep_folders,
)

TRAIN = {"steps": 30, "batch_size": 64, "lr": 2e-3}
NET = {"name": "mlp", "hidden": 16, "depth": 1}
EVAL = {"n_samples": 96, "metrics": ["w2"]}
#: a cell off the defaults everywhere the frame derives a column: a coupled source, a non-uniform time grid
#: and a method hparam that differs from its default
COUPLED = Cell(sweep="frame", method={"name": "rf", "k": 2}, target="moons", source="8gaussians", solver="heun",
               nfe=8, tol=None, seed=3, data_seed=0, train=TRAIN, net=NET, eval=EVAL, grid="cosine")
#: the plainest cell: Gaussian source, uniform grid, an adaptive budget
PLAIN = Cell(sweep="frame", method={"name": "fm_ot"}, target="moons", source="gaussian", solver="dopri5",
             nfe=None, tol=1e-3, seed=0, data_seed=0, train=TRAIN, net=NET, eval=EVAL)


def full_record() -> dict:
    return {"schema_version": 1, "cell_id": COUPLED.id, "config_hash": COUPLED.id, "config": COUPLED.config(),
            "status": "failed", "reason": "evaluation: RuntimeError: boom", "nfe": 9,
            "timings": {"train_seconds": 1.5, "sample_seconds": 0.25}, "metrics": {"w2": 0.5}}


def minimal_record() -> dict:
    """The least a sound record holds: no reason, nfe, timings or metrics, and a config from before time grids."""
    config = PLAIN.config()
    del config["grid"]
    return {"schema_version": 1, "cell_id": PLAIN.id, "config": config, "status": "ok"}


FULL_ROW = {"cell_id": COUPLED.id, "sweep": "frame", "method": "rf(k=2)", "method_name": "rf", "target": "moons",
            "source": "8gaussians", "dataset": "8gaussians->moons", "solver": "heun/cosine", "nfe_requested": 8,
            "tol": None, "seed": 3, "status": "failed", "reason": "evaluation: RuntimeError: boom", "nfe": 9,
            "time_train_seconds": 1.5, "time_sample_seconds": 0.25, "w2": 0.5}
MINIMAL_ROW = {"cell_id": PLAIN.id, "sweep": "frame", "method": "fm_ot", "method_name": "fm_ot", "target": "moons",
               "source": "gaussian", "dataset": "moons", "solver": "dopri5", "nfe_requested": None, "tol": 1e-3,
               "seed": 0, "status": "ok", "reason": None, "nfe": None}


def test_the_fixture_records_are_sound():
    assert record_problem(full_record(), COUPLED.id) is None
    assert record_problem(minimal_record(), PLAIN.id) is None


@pytest.mark.parametrize("record,row", [(full_record(), FULL_ROW), (minimal_record(), MINIMAL_ROW)],
                         ids=["full", "minimal"])
def test_each_record_is_one_row_of_config_status_timings_and_metrics(record, row):
    """The dataset column reads ``source->target`` unless the source is the Gaussian; the solver column names a
    non-uniform grid after a slash; timings become ``time_*`` columns and each metric a column of its own."""
    frame = records_frame([record])
    assert frame.to_dict("records") == [row]
    assert list(frame.columns) == list(row)


def test_rows_follow_the_records_in_order():
    frame = records_frame([full_record(), minimal_record()])
    assert list(frame["cell_id"]) == [COUPLED.id, PLAIN.id]
    assert list(frame["dataset"]) == ["8gaussians->moons", "moons"]


def _write(store: RecordStore, record: dict) -> None:
    store.cells.mkdir(parents=True, exist_ok=True)
    store.path(record["cell_id"]).write_text(json.dumps(record))


def test_a_store_frames_its_sound_records(tmp_path):
    store = RecordStore(tmp_path / "frame")
    for record in (full_record(), minimal_record()):
        _write(store, record)
    rows = sorted(store.frame().to_dict("records"), key=lambda r: r["cell_id"])
    assert [r["cell_id"] for r in rows] == sorted([COUPLED.id, PLAIN.id])
    assert {r["cell_id"]: r["dataset"] for r in rows} == {COUPLED.id: "8gaussians->moons", PLAIN.id: "moons"}


def _sweep(root: Path, name: str) -> Path:
    store = RecordStore(root / name)
    _write(store, minimal_record())
    return store.dir


def test_sweep_folders_are_the_folders_holding_cell_records(tmp_path):
    a, b = _sweep(tmp_path, "a"), _sweep(tmp_path, "b")
    (tmp_path / "no-cells").mkdir()  # a folder, but not a sweep
    (tmp_path / "stale" / "cells").mkdir(parents=True)
    (tmp_path / "stale" / "cells" / "x.json.corrupt").write_text("{}")  # only a record moved aside
    (tmp_path / "notes.json").write_text("{}")  # a file
    assert sweep_folders(tmp_path) == [a, b]
    assert sweep_folders(tmp_path / "missing") == []
    assert sweep_folders(a) == []  # a sweep folder holds no sweeps


def test_the_results_root_given_for_a_sweep_names_the_sweeps_under_it(tmp_path):
    a, b = _sweep(tmp_path, "a"), _sweep(tmp_path, "b")
    with pytest.raises(NoRecords) as info:
        RecordStore(tmp_path).frame()
    message = str(info.value)
    assert message.startswith(f"{tmp_path} holds no records ({tmp_path / 'cells'}/*.json);")
    assert f"sweep folders found: {a}, {b}; give one of them, e.g. RecordStore({str(a)!r})" in message


def test_a_misspelt_sweep_names_its_siblings(tmp_path):
    a, b = _sweep(tmp_path, "a"), _sweep(tmp_path, "b")
    with pytest.raises(NoRecords) as info:
        RecordStore(tmp_path / "aa").frame()
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'aa'} does not exist;")
    assert f"sweep folders found: {a}, {b};" in message


def test_a_sweep_whose_records_are_all_corrupt_names_the_other_sweeps_not_itself(tmp_path):
    b = _sweep(tmp_path, "b")
    broken = RecordStore(tmp_path / "a")
    _write(broken, {**minimal_record(), "status": "done"})  # fails the schema: read as no record
    with pytest.raises(NoRecords) as info:
        broken.frame()
    message = str(info.value)
    assert f"holds no records ({broken.cells}/*.json)" in message
    assert f"sweep folders found: {b}; give one of them, e.g. RecordStore({str(b)!r})" in message


def test_no_sweep_anywhere_says_to_run_one_first(tmp_path):
    where = tmp_path / "empty" / "x"
    with pytest.raises(NoRecords) as info:
        RecordStore(where).frame()
    assert str(info.value) == (f"{where} does not exist; no sweep folder (one holding cells/*.json) under {where} "
                               f"or {where.parent} either; run `odebench run --out DIR` first")


def test_a_failed_cell_record_names_its_stage_and_reason_and_is_sound():
    cell = dataclasses.replace(PLAIN, nfe=4, tol=None, solver="euler")
    record = failed_record(cell, "cpu", "DivergenceError: loss became nan", "training")
    assert record_problem(record, cell.id) is None
    assert record["status"] == "failed" and not is_finished(record)  # the next run evaluates it again
    assert record["reason"] == "training: DivergenceError: loss became nan"
    assert record["metrics"] == {} and record["timings"] == {}
    assert record["cell_id"] == cell.id and record["config"] == cell.config()
    assert record["environment"]["device"] == "cpu"
