"""A model that offers a flow map and no velocity: the metrics that need its ODE say so ('not applicable', through
Unsupported), and a ready-made flow-map model passes the load-time probe through its map."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from odebench.adapters.base import DynamicsAdapter
from odebench.adapters.probe import implausible, probe
from odebench.bench.core.solvers import Dynamics, Unsupported
from odebench.metrics import METRICS, EvalContext


def shift_map(x, r, t):
    """The flow map of dx/dt = 1 (every coordinate): x + (t - r)."""
    return x + (t - r)[:, None]


def flow_map_context() -> EvalContext:
    x0 = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    t = torch.linspace(0, 1, 3)
    return EvalContext(samples=x0 + 1, reference=torch.randn(50, 2), x0=x0,
                       trajectory=torch.stack([x0 + ti for ti in t]), t_grid=t,
                       dynamics=Dynamics(flow_map=shift_map), log_prob_source=lambda x: -x.pow(2).sum(1),
                       gen=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", ["straightness", "curvature", "nll"])
def test_metrics_of_the_ode_are_not_applicable_without_a_velocity(name):
    with pytest.raises(Unsupported, match="no velocity"):
        METRICS.get(name).fn(flow_map_context())


def test_a_ready_made_flow_map_model_is_probed_through_its_map():
    adapter = DynamicsAdapter(Dynamics(flow_map=shift_map), model_id="shift")
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(2))
    probe(adapter, nn.Module(), data, "moons")  # raised TypeError ('NoneType' is not callable) before
    assert implausible(adapter, nn.Module(), data, "moons") is None
    far = DynamicsAdapter(Dynamics(flow_map=lambda x, r, t: x + 1e3 * (t - r)[:, None]), model_id="far")
    assert implausible(far, nn.Module(), data, "moons") is not None  # the jumps are taken, not skipped
