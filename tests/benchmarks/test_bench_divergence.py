"""Exact divergence: the batched Jacobian (torch.func) against one autograd pass per dimension, and NLL cost.

tr(dv/dx) of the suite's MLP (hidden 128, depth 3) at batch 256, on 2-D points and on 64-D vectors (the
8x8 digits' size). The batched version is ``vmap(jacrev(v))``; the loop differentiates v_i with respect to
x for i = 1 .. D. When ``odebench.metrics.likelihood`` is present, its own functions are measured and the NLL cost
per held-out point is recorded (seconds per point, dopri5 at rtol = atol = 1e-5); otherwise the batched
Jacobian is built here with torch.func and the NLL case is skipped.
"""

from __future__ import annotations

import pytest
import torch

from odebench.bench.nets.mlp import MLP

try:
    from odebench.metrics import likelihood
except ImportError:  # the likelihood metric is not in this checkout
    likelihood = None

BATCH = 256
ROUNDS = 5


def _exact(field, x, t):
    """Fallback: v and tr(dv/dx) per sample from vmap(jacrev) (what odebench.metrics.likelihood does)."""

    def one(xi, ti):
        out = field(xi.unsqueeze(0), ti.unsqueeze(0)).squeeze(0)
        return out, out

    jac, v = torch.func.vmap(torch.func.jacrev(one, has_aux=True))(x, t)
    d = x[0].numel()
    return v, jac.reshape(len(x), d, d).diagonal(dim1=1, dim2=2).sum(1)


def _loop(field, x, t):
    """Fallback: one autograd pass per dimension."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        v = field(xg, t)
        div = torch.zeros(len(x))
        for i in range(v.shape[1]):
            div = div + torch.autograd.grad(v[:, i].sum(), xg, retain_graph=True)[0][:, i]
    return v.detach(), div


EXACT = likelihood.velocity_and_divergence_exact if likelihood else _exact
LOOP = likelihood.divergence_loop if likelihood else _loop


@pytest.mark.parametrize("dim", [2, 64])
def test_exact_divergence_batched_vs_loop(compare, dim):
    torch.manual_seed(0)
    net = MLP((dim,), hidden=128, depth=3).eval()
    x = torch.randn(BATCH, dim, generator=torch.Generator().manual_seed(1))
    t = torch.rand(BATCH, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(EXACT(net, x, t)[1], LOOP(net, x, t)[1], rtol=1e-4, atol=1e-4)
        compare("divergence", f"exact tr(J), D={dim}, batch {BATCH}", lambda: EXACT(net, x, t),
                lambda: LOOP(net, x, t), f"autograd loop over {dim} dims", ROUNDS, "< 1")


@pytest.mark.skipif(likelihood is None, reason="odebench.metrics.likelihood is not in this checkout")
def test_nll_cost_per_point(benchmark, record):
    from odebench.bench.data import load_dataset
    from odebench.methods.base import GaussianPrior

    torch.manual_seed(0)
    net = MLP((2,), hidden=128, depth=3).eval()
    x1 = load_dataset("moons").test[:BATCH]
    cfg = likelihood.NLLConfig(divergence="exact", solver="dopri5", rtol=1e-5, atol=1e-5)
    prior = GaussianPrior((2,))
    benchmark.group = "nll"
    res = benchmark.pedantic(lambda: likelihood.nll(net, x1, prior.log_prob, cfg), rounds=3, iterations=1)
    if benchmark.stats is not None:
        per_point = benchmark.stats.stats.min / BATCH
        benchmark.extra_info.update({"seconds_per_point": per_point, "nfe": res.nfe})
        record("nll", f"NLL exact, dopri5 1e-5, D=2 (NFE {res.nfe})", per_point * 1e3, "ms/point")
