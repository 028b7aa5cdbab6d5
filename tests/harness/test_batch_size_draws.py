"""``eval.batch_size`` is a memory setting: it changes no metric value. The metrics' draws (sliced W2's
directions) and the SDE noise are seeded by the cell as it would be at the default batch size
(``Cell.draws_id``), so a cell at the default draws what it always drew, and any other batch size draws the same;
only an SDE cell whose batch size splits its samples draws its noise per chunk."""

from __future__ import annotations

import pytest
from harness_tiny import tiny_spec
from threads import torch_threads

import odebench.bench.harness.execution.run
from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.checks import EVAL_BATCH_DEFAULT
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.records import RecordStore


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    with torch_threads(1):
        yield


def _metrics(tmp_path, solver: dict, batch_size: int | None, method: str = "fm_ot") -> dict:
    raw = tiny_spec(name="batch", methods=[{"name": method}], solvers=[solver])
    if batch_size is not None:
        raw["eval"] = {**raw["eval"], "batch_size": batch_size}
    spec = parse_spec(raw)
    odebench.bench.harness.execution.run._MODELS.clear()
    run_sweep(spec, tmp_path, progress=False)  # one --out: the model is trained once, then loaded
    [cell] = spec.cells
    rec = RecordStore(tmp_path / "batch").read(cell.id)
    assert rec["status"] == "ok", rec
    return rec["metrics"]


def test_the_batch_size_changes_no_metric_value_of_an_ode_cell(tmp_path):
    default = _metrics(tmp_path, {"name": "euler", "nfe": [4]}, None)
    for batch in (32, 96, 500):  # 96 samples: chunks of 32, one chunk, one chunk larger than the samples
        assert _metrics(tmp_path, {"name": "euler", "nfe": [4]}, batch) == default, batch
    assert set(default) == {"w2", "sliced_w"}


def test_an_sde_cell_draws_the_default_noise_at_any_batch_size_that_holds_its_samples(tmp_path):
    solver = {"name": "euler_maruyama", "nfe": [4]}
    raw = tiny_spec(methods=[{"name": "ddpm"}], solvers=[solver])
    assert parse_spec(raw).cells[0].eval["batch_size"] == EVAL_BATCH_DEFAULT
    default = _metrics(tmp_path, solver, None, "ddpm")
    assert _metrics(tmp_path, solver, 96, "ddpm") == _metrics(tmp_path, solver, 5000, "ddpm") == default


def test_a_cell_at_the_default_batch_size_keeps_its_seed():
    """The committed results were drawn with the cell id at the default: their values must not move."""
    [cell] = parse_spec(tiny_spec(solvers=[{"name": "euler", "nfe": [4]}])).cells
    assert cell.draws_id == cell.id
    [other] = parse_spec(tiny_spec(solvers=[{"name": "euler", "nfe": [4]}],
                                   eval={**tiny_spec()["eval"], "batch_size": 7})).cells
    assert other.id != cell.id and other.draws_id == cell.id
