"""``Dynamics.offers`` claims a capability only when every part a solver of that kind calls is filled in: an SDE
needs both its drift and its noise scale, an ancestral sampler both its network call and its step. A half-filled
pair is not offered, so a solver needing it is refused with a reason instead of failing mid-solve."""

import itertools

import pytest
import torch

from odebench.bench.core.solvers import Dynamics, Unsupported, sample

PARTS = {
    "sde": {"drift": lambda x, t: -x, "diffusion": lambda t: torch.full_like(t, 0.5)},
    "ancestral": {"ancestral_net": lambda x, t: -x, "ancestral_step": lambda x, out, t, t_next, gen, last: x},
}
SOLVER = {"sde": "euler_maruyama", "ancestral": "ancestral"}


@pytest.mark.parametrize(
    "capability,given",
    [
        (cap, given)
        for cap, parts in PARTS.items()
        for k in range(len(parts) + 1)
        for given in itertools.combinations(parts, k)
    ],
    ids=lambda v: "+".join(v) or "none" if isinstance(v, tuple) else v,
)
def test_a_capability_is_offered_only_with_all_its_parts(capability, given):
    dyn = Dynamics(velocity=lambda x, t: -x, **{p: PARTS[capability][p] for p in given})
    complete = len(given) == len(PARTS[capability])
    assert dyn.offers() == ({"velocity", capability} if complete else {"velocity"})
    if not complete:
        with pytest.raises(Unsupported, match=f"needs {capability} "):
            sample(dyn, torch.ones(2, 2), SOLVER[capability], nfe=2, gen=torch.Generator().manual_seed(0))
