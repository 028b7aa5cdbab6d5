"""A model of facebookresearch's ``flow_matching`` library, trained with its own path and evaluated with
``odebench.evaluate``, gives the samples of the library's ``ODESolver`` at the same fixed steps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("flow_matching", reason="the flow_matching peer is not installed (pip install "
                                            "'odebench[adapters]', as .ci/run does)")
from adapter_helpers import cell_draws  # noqa: E402
from flow_matching.path import AffineProbPath  # noqa: E402
from flow_matching.path.scheduler import CondOTScheduler  # noqa: E402
from flow_matching.solver import ODESolver  # noqa: E402
from flow_matching.utils import ModelWrapper  # noqa: E402

import odebench  # noqa: E402
from odebench.adapters import FlowMatching, adapt  # noqa: E402
from odebench.bench.data import load_dataset  # noqa: E402
from odebench.bench.harness.store.records import RecordStore  # noqa: E402
from odebench.metrics.quality import wasserstein2  # noqa: E402


class TimeMLP(nn.Module):
    """The MLP of the library's 2-D example: x and t concatenated, t a 0-d tensor (its ODESolver) or [B]."""

    def __init__(self, dim: int = 2, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + 1, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, dim))

    def forward(self, x, t):
        t = t.reshape(-1, 1).float().expand(x.shape[0], 1)
        return self.net(torch.cat([x, t], dim=1))


class Wrapped(ModelWrapper):
    def forward(self, x, t, **extras):
        return self.model(x, t)


def train_flow_matching(steps: int = 200) -> Wrapped:
    """Trained as in the library's 2-D example: CondOT path, velocity regression."""
    torch.manual_seed(0)
    model = TimeMLP()
    path = AffineProbPath(scheduler=CondOTScheduler())
    data = load_dataset("moons").train
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x1 = data[torch.randint(len(data), (256,), generator=gen)]
        x0 = torch.randn(256, 2, generator=gen)
        t = torch.rand(256, generator=gen)
        ps = path.sample(t=t, x_0=x0, x_1=x1)
        loss = (model(ps.x_t, ps.t) - ps.dx_t).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return Wrapped(model).eval()


def test_evaluate_matches_flow_matchings_own_solver(tmp_path):
    wrapped = train_flow_matching()
    frame = odebench.evaluate(wrapped, "moons", solvers=[{"name": "euler", "nfe": [8]},
                                                         {"name": "midpoint", "nfe": [8]}],
                              metrics=["w2"], n_samples=512, out=tmp_path, report=False)
    assert sorted(frame["solver"]) == ["euler", "midpoint"] and set(frame["status"]) == {"ok"}
    adapter = adapt(wrapped)
    assert isinstance(adapter, FlowMatching)
    reference = load_dataset("moons").test
    solver = ODESolver(velocity_model=wrapped)
    for record in RecordStore(tmp_path / "eval_Wrapped_moons").records():
        cell, x0, ours = cell_draws(record, adapter)
        steps = cell.nfe if cell.solver == "euler" else cell.nfe // 2
        with torch.no_grad():
            theirs = solver.sample(x_init=x0, step_size=None, method=cell.solver,
                                   time_grid=torch.linspace(0, 1, steps + 1))
        assert (ours - theirs).abs().max() < 1e-5, cell.solver
        w2 = frame.set_index("solver").loc[cell.solver, "w2"]
        assert wasserstein2(theirs, reference[: len(theirs)]) == pytest.approx(w2, rel=1e-4)
