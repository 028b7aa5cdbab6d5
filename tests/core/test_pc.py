"""The predictor-corrector solver and its Langevin step: the documented step formula, the budget boundary,
trajectories, reproducibility and the dtype of the grid."""

import pytest
import torch

from odebench.bench.core.fields import LangevinCorrector
from odebench.bench.core.solvers import Dynamics, sample
from odebench.bench.core.solvers.sde import langevin_step


def test_langevin_step_is_the_documented_update():
    """x + e s + sqrt(2 e) z with e = 2 (snr mean_i ||z_i|| / mean_i ||s_i||)^2, z drawn from the given generator."""
    x = torch.tensor([[0.3, -0.2], [0.1, 0.4], [-0.5, 0.05]], dtype=torch.float64)

    def score(x, t):  # small gradients (norms < 1), so a floor on ||s|| near 1 would show
        return -0.2 * x

    snr = 0.3
    out = langevin_step(score, x, torch.zeros(3, dtype=torch.float64), snr, torch.Generator().manual_seed(5))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    s = score(x, None)
    e = 2 * (snr * z.norm(dim=1).mean() / s.norm(dim=1).mean()) ** 2
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, x + e * s + (2 * e).sqrt() * z, rtol=1e-12, atol=1e-14)


def _ou_dynamics(n_steps: int) -> Dynamics:
    """Reverse-time-free toy SDE: drift -x, noise 0.5, exact score of N(0, I)."""
    return Dynamics(velocity=lambda x, t: -x, drift=lambda x, t: -x,
                    diffusion=lambda t: torch.full_like(t, 0.5),
                    corrector=LangevinCorrector(score=lambda x, t: -x, n_steps=n_steps, snr=0.1))


@pytest.mark.parametrize("n_steps", [0, 1, 2])
def test_pc_budget_of_exactly_one_grid_step_runs(n_steps):
    """A budget of exactly 1 + n_steps NFE buys one grid step (not a BudgetTooSmall skip) and spends it all."""
    res = sample(_ou_dynamics(n_steps), torch.randn(4, 2), "pc", nfe=1 + n_steps,
                 gen=torch.Generator().manual_seed(0))
    assert res.nfe == 1 + n_steps and len(res.t) == 2


def test_pc_trajectory_holds_every_grid_state_and_only_when_asked():
    """trajectory=True gives [n + 1, B, D] states from x0 to the returned x; trajectory=False gives None."""
    dyn, x0 = _ou_dynamics(1), torch.randn(5, 2, dtype=torch.float64)
    res = sample(dyn, x0, "pc", nfe=8, gen=torch.Generator().manual_seed(1), trajectory=True)
    assert res.trajectory.shape == (5, 5, 2)
    assert torch.equal(res.trajectory[0], x0) and torch.equal(res.trajectory[-1], res.x)
    assert len({tuple(s.flatten().tolist()) for s in res.trajectory}) == 5  # every state recorded, not one repeated
    assert sample(dyn, x0, "pc", nfe=8, gen=torch.Generator().manual_seed(1)).trajectory is None


def test_pc_is_reproducible_from_its_generator_and_keeps_the_dtype():
    """Corrector and predictor noise both come from ``gen``: equal seeds give equal samples whatever the global
    RNG does in between; the grid has the samples' dtype."""
    dyn, x0 = _ou_dynamics(2), torch.randn(6, 2, dtype=torch.float64)
    torch.manual_seed(1)
    a = sample(dyn, x0, "pc", nfe=9, gen=torch.Generator().manual_seed(7))
    torch.manual_seed(2)
    b = sample(dyn, x0, "pc", nfe=9, gen=torch.Generator().manual_seed(7))
    assert torch.equal(a.x, b.x)
    assert a.t.dtype == torch.float64 and a.x.dtype == torch.float64
