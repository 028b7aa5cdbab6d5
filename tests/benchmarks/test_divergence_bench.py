"""Exact divergence: batched Jacobian (torch.func vmap + jacrev) vs one autograd pass per dimension.

Run with ``python3 -m pytest tests/benchmarks/test_divergence_bench.py --benchmark-only`` (the default
``--benchmark-skip`` skips it in the normal suite).
"""

import pytest
import torch

from odebench.bench.nets.mlp import MLP
from odebench.metrics.likelihood import divergence_loop, velocity_and_divergence_exact

BATCH = 256


def setup(dim):
    torch.manual_seed(0)
    net = MLP((dim,), hidden=128, depth=3).eval()
    x = torch.randn(BATCH, dim)
    t = torch.rand(BATCH)
    return net, x, t


@pytest.mark.parametrize("dim", [2, 16, 64])
@pytest.mark.parametrize("how", ["batched_jacobian", "autograd_loop"])
def test_exact_divergence(benchmark, dim, how):
    net, x, t = setup(dim)
    fn = velocity_and_divergence_exact if how == "batched_jacobian" else divergence_loop
    benchmark.group = f"divergence D={dim}"
    with torch.no_grad():
        _, div = benchmark(fn, net, x, t)
        _, reference = divergence_loop(net, x, t)
    torch.testing.assert_close(div, reference, rtol=1e-4, atol=1e-4)
