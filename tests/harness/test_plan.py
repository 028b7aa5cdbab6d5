"""The plan decides from declarations alone: an SDE solver on a method that does not offer an SDE is skipped
with the reason, and no network is built or called to find that out."""

from __future__ import annotations

import pytest
import torch
from harness_tiny import tiny_spec

from odebench.bench.core.solvers import SOLVERS
from odebench.bench.harness.execution.plan import make_plan
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.artifacts import ArtifactStore
from odebench.methods import METHODS, Dynamics, Method, get_method, register_method


class _ExplodingNet(torch.nn.Module):
    def forward(self, x, t):
        raise AssertionError("the plan called a network")


@pytest.fixture
def exploding_method():
    """A method whose networks cannot be built (and could not be called either)."""

    @register_method("plan_probe")
    class PlanProbe(Method):
        reference = citation = "test"
        needs_gaussian_source = False

        def networks(self, make_net, shape):
            raise AssertionError("the plan built a network")

        def loss(self, model, x0, x1, gen):
            return model["v"](x0, x0[:, 0]).pow(2).mean()

        def dynamics(self, model):
            return Dynamics(velocity=model["v"])

    yield PlanProbe
    METHODS._items.pop("plan_probe")


def test_sde_skips_are_decided_without_a_network(exploding_method, tmp_path):
    spec = parse_spec(tiny_spec(methods=[{"name": "plan_probe"}, {"name": "ddpm"}],
                                solvers=[{"name": "euler", "nfe": [4]}, {"name": "euler_maruyama", "nfe": [4]},
                                         {"name": "ancestral", "nfe": [4]}, {"name": "pc", "nfe": [4]}]))
    plan = make_plan(spec.cells, lambda cell_id: False, ArtifactStore(tmp_path), "fp32")
    skipped = {(c.method["name"], c.solver): plan.skips[c.id] for c in spec.cells if c.id in plan.skips}
    assert set(skipped) == {("plan_probe", "euler_maruyama"), ("plan_probe", "ancestral"), ("plan_probe", "pc"),
                            ("ddpm", "pc")}
    assert "needs sde" in skipped[("plan_probe", "euler_maruyama")]
    assert "offers velocity" in skipped[("plan_probe", "euler_maruyama")]
    assert "needs corrector" in skipped[("ddpm", "pc")]
    assert {(c.method["name"], c.solver) for c in plan.todo} == {("plan_probe", "euler"), ("ddpm", "euler"),
                                                                 ("ddpm", "euler_maruyama"), ("ddpm", "ancestral")}


def test_every_solver_declares_requirements_from_the_capability_list():
    from odebench.bench.core.fields import CAPABILITIES

    for name in SOLVERS.names():
        solver = SOLVERS.get(name)
        assert solver.requires and solver.requires <= set(CAPABILITIES), name
    for name in METHODS.names():
        assert get_method(name).offers() <= set(CAPABILITIES), name


def test_grid_and_data_prediction_skips_are_decided_without_a_network(exploding_method, tmp_path):
    """A noise-level grid needs the method's noise schedule, a data-prediction sampler its x1_hat, and x1_hat
    assumes the Gaussian source: each unmet need is a skip with its reason, found from the declarations."""
    spec = parse_spec(tiny_spec(
        methods=[{"name": "plan_probe"}, {"name": "rf"}, {"name": "otcfm"}],
        targets=(),
        datasets=[{"target": "moons"}, {"target": "moons", "source": "8gaussians", "methods": ["plan_probe", "rf"]}],
        solvers=[{"name": "euler", "nfe": [4], "grid": ["uniform", "edm"]}, {"name": "dpmpp_2m", "nfe": [4]}]))
    plan = make_plan(spec.cells, lambda cell_id: False, ArtifactStore(tmp_path), "fp32")
    skipped = {(c.method["name"], c.source, c.solver_label): plan.skips[c.id] for c in spec.cells
               if c.id in plan.skips}
    ran = {(c.method["name"], c.source, c.solver_label) for c in plan.todo}
    assert ran == {("plan_probe", "gaussian", "euler"), ("plan_probe", "8gaussians", "euler"),
                   ("rf", "gaussian", "euler"), ("rf", "gaussian", "euler/edm"), ("rf", "gaussian", "dpmpp_2m"),
                   ("rf", "8gaussians", "euler"), ("rf", "8gaussians", "euler/edm"),
                   ("otcfm", "gaussian", "euler"), ("otcfm", "gaussian", "euler/edm")}
    assert "time grid 'edm' needs noise_schedule" in skipped[("plan_probe", "gaussian", "euler/edm")]
    assert "needs x1_hat" in skipped[("otcfm", "gaussian", "dpmpp_2m")]
    transfer = skipped[("rf", "8gaussians", "dpmpp_2m")]
    assert "needs x1_hat" in transfer and "from source '8gaussians'" in transfer
