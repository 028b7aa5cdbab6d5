"""A metric the model's dynamics cannot answer is 'not applicable', not a failure: the cell is finished."""

import json

from harness_tiny import EVAL, tiny_spec

from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import parse_spec


def test_a_path_metric_of_a_distilled_flow_is_not_applicable_and_the_cell_is_done(tmp_path):
    raw = tiny_spec(methods=[{"name": "rf", "distill": True, "n_pairs": 64}],
                    solvers=[{"name": "euler", "nfe": [1]}],
                    eval={**EVAL, "metrics": ["w2", "straightness"]})
    first = run_sweep(parse_spec(raw), tmp_path, progress=False)
    [path] = (first.out_dir / "cells").glob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok" and "w2" in record["metrics"]
    assert record["metric_info"]["straightness"]["status"] == "not applicable"
    assert "one-step map" in record["metric_info"]["straightness"]["reason"]
    assert not record.get("metric_failures")
    again = run_sweep(parse_spec(raw), tmp_path, progress=False)
    assert again.already_done == again.n_cells == 1 and not sum(again.status_counts.values())


def test_a_distilled_flow_s_other_samplers_are_skipped_by_the_plan_with_the_sampling_message():
    """Known from the configuration alone: the dry run counts them as skipped (it counted them as to evaluate,
    and the run skipped them after training: 200 cells of study-toy), with the words sampling would raise."""
    from odebench.bench.harness.execution.plan import skip_reason
    from odebench.methods.rectified_flow import ONE_STEP_ONLY

    raw = tiny_spec(methods=[{"name": "rf", "distill": True, "n_pairs": 64}, {"name": "rf", "k": 2}],
                    solvers=[{"name": "euler", "nfe": [1, 2]}, {"name": "heun", "nfe": [4]},
                             {"name": "dopri5", "tolerances": [1e-3]}])
    reasons = {(c.method.get("distill", False), c.solver, c.nfe): skip_reason(c) for c in parse_spec(raw).cells}
    assert reasons.pop((True, "euler", 1)) is None
    for (distilled, _, _), why in reasons.items():
        assert why == (ONE_STEP_ONLY if distilled else None)
