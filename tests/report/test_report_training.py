"""The report shows each model's training cost and convergence, draws the held-out loss curves, and marks in the
leaderboards every method whose model was still improving."""

from __future__ import annotations

from harness_tiny import tiny_spec
from threads import torch_threads

from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.report.build import write_report
from odebench.bench.report.training import STILL_IMPROVING


def test_unconverged_models_are_marked_and_their_training_reported(tmp_path):
    spec = tiny_spec(name="conv", methods=[{"name": "fm_ot"}],
                     train={"steps": 30, "batch_size": 64, "lr": 1e-4})  # far from done
    with torch_threads(1):
        run_sweep(parse_spec(spec), tmp_path, progress=False)
        report = write_report(tmp_path / "conv", figures=True)
    md = (tmp_path / "conv" / "leaderboard.md").read_text()
    assert f"fm_ot{STILL_IMPROVING}" in md
    assert "Training: cost and convergence" in md and "0/1 converged" in md and "fwd-eq / step" in md
    assert (tmp_path / "conv" / "figures" / "heldout_loss_moons.png").stat().st_size > 0
    html = (tmp_path / "conv" / "index.html").read_text()
    assert "held-out loss during training" in html and STILL_IMPROVING.strip() in html
    assert report.sections
