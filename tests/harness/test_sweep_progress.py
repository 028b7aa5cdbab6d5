"""The progress line of a sweep: it counts the models and training steps of the run, not only its cells (in this
process and from the pool's worker processes), and shows an ETA only once one model has trained and three cells
have been evaluated, weighing steps and cells by their measured seconds."""

from __future__ import annotations

import re

import pytest
from harness_tiny import tiny_spec

import odebench.bench.harness.execution.run
from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.process import progress
from odebench.bench.harness.process.progress import MIN_CELLS, SweepProgress
from odebench.bench.harness.spec.sweep import parse_spec


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def cell(seconds: float) -> dict:
    return {"status": "ok", "timings": {"sample_seconds": seconds / 2, "metric_seconds": seconds / 2}}


def test_no_eta_before_a_model_has_trained_and_three_cells_are_evaluated_then_one_from_measured_rates():
    clock = Clock()
    p = SweepProgress("quick", {"a": 100, "b": 100}, n_todo=6, skipped={"s"}, enabled=False, clock=clock)
    assert p.text() == ("quick: models 0/2, steps 0/200, cells 0/7 [0:00 elapsed, ETA after the first model and "
                        "3 cells]")
    p.cell_done("s", {"status": "skipped"})  # skipped without training: a cell, but no work measured
    clock.now += 5
    p.steps("a", 50, 100)
    assert p.eta() is None and "models 0/2, steps 50/200, cells 1/7 [0:05 elapsed, ETA after" in p.text()
    clock.now += 5
    p.training_done("a", ok=True, trained=True, seconds=10.0)  # 0.1 s per step
    assert p.eta() is None and "models 1/2, steps 100/200" in p.text()
    for _ in range(MIN_CELLS - 1):
        p.cell_done("c", cell(1.0))
        assert p.eta() is None and "ETA after" in p.text()
    clock.now += 3
    p.cell_done("c", cell(1.0))
    # done: 100 steps x 0.1 s + 3 cells x 1 s = 13 s of work in 13 s; left: 100 steps and 3 cells, the same
    assert p.eta() == pytest.approx(13.0)
    assert p.text() == ("quick:  50%|██████████          | models 1/2, steps 100/200, cells 4/7 "
                        "[0:13 elapsed, ETA 0:13]")


def test_without_trainings_the_eta_waits_for_three_cells_and_scales_with_parallel_work():
    clock = Clock()
    p = SweepProgress("eval_x", {}, n_todo=10, enabled=False, clock=clock)
    assert p.text() == "eval_x: cells 0/10 [0:00 elapsed, ETA after 3 cells]"
    for _ in range(3):
        p.cell_done("c", cell(2.0))
    clock.now += 3  # 6 s of cell work in 3 s of wall time: two workers
    assert p.eta() == pytest.approx(3 * 7 / 3)  # 7 cells x 2 s of work left, done at twice the wall rate
    for _ in range(7):
        p.cell_done("c", cell(2.0))
    assert p.text().endswith("cells 10/10 [0:03 elapsed]")  # finished: no ETA left to give


def test_a_failed_training_drops_its_steps_and_late_or_actual_counts_are_taken_as_they_come():
    p = SweepProgress("s", {"a": 100, "b": 100}, n_todo=2, enabled=False)
    p.steps("a", 30, 100)
    p.training_done("a", ok=False, trained=False, seconds=1.0)
    assert "models 1/2, steps 30/130" in p.text()
    p.steps("a", 40, 100)  # a report that arrived after its training ended
    p.steps("b", 10, 250)  # budgeted by compute: the training says how many steps it runs
    assert "steps 40/280" in p.text()
    p.steps("b", 5, 250)  # never backwards
    assert "steps 40/280" in p.text()
    p.training_done("b", ok=True, trained=True, seconds=5.0)
    assert "models 2/2, steps 280/280" in p.text()


SPEC = tiny_spec(targets=("moons", "8gaussians"), solvers=[{"name": "euler", "nfe": [1, 2, 4, 8]},
                                                             {"name": "heun", "nfe": [1]}])
LINE = re.compile(r"^tiny: .*models (\d+)/2, steps ([\d,]+)/([\d,]+), cells (\d+)/10 \[.*\]$")


def progress_lines(err: str) -> list[tuple[int, int, int, int, bool]]:
    """(models, steps done, steps in all, cells, ETA shown) of every drawing of the sweep's line."""
    out = []
    for text in err.split("\r"):
        text = text.strip().split("\n")[0]
        m = LINE.match(text)
        if m:
            models, done, total, cells = (int(g.replace(",", "")) for g in m.groups())
            out.append((models, done, total, cells, bool(re.search(r"ETA \d", text))))
    return out


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_run_counts_its_training_steps_as_they_are_taken_and_no_eta_before_the_rule(tmp_path, capsys,
                                                                                      monkeypatch, jobs):
    """Two models of 300 steps, 10 cells (2 skipped without training), drawn at every event: the line moves
    during each training (from the worker processes too), and no drawing gives an ETA before a model has trained
    and three cells are evaluated."""
    monkeypatch.setattr(progress, "REFRESH_SECONDS", 0.0)
    spec = {**SPEC, "train": {**SPEC["train"], "steps": 300}}
    odebench.bench.harness.execution.run._MODELS.clear()
    summary = run_sweep(parse_spec(spec), tmp_path, progress=True, jobs=jobs)
    assert summary.status_counts == {"ok": 8, "skipped": 2}
    lines = progress_lines(capsys.readouterr().err)
    assert lines[0] == (0, 0, 600, 0, False)
    assert lines[-1][:4] == (2, 600, 600, 10)
    assert any(0 < done < 600 and models == 0 for models, done, _, _, _ in lines)  # the first training, under way
    assert all(total == 600 for _, _, total, _, _ in lines)
    for models, _, _, cells, eta in lines:
        if eta:
            assert models >= 1 and cells - 2 >= MIN_CELLS
    assert any(eta for *_, eta in lines[:-1])
