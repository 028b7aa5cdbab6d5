"""The faster sliced W2 and MMD against the implementations they replaced, which are kept here as they were.

Tolerances (docs/decisions.md, 53): ``sliced_w`` agrees to 1e-12 relative (the same sorted projections and the same
quantile arithmetic; only the order of the final mean differs); MMD^2 to 1e-12 absolute (the same kernel values,
summed block by block: a rounding of sums of terms bounded by the number of bandwidths, and a relative tolerance
means nothing for an estimate that is 0 on average). On the committed packs' floors (model-free: a fresh draw of
the data law against the held-out split, exactly as ``odebench.bench.report.floors`` makes it) the recomputed
first draw of every floor matches the committed value within the same tolerances; fd and fd_digits, whose
arithmetic did not change (their reference side is now computed once per process), within what another machine's
BLAS may move them.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from odebench.bench.core import seeding
from odebench.metrics import METRICS, EvalContext
from odebench.metrics.quality import lower_median, mmd_rbf, quantiles_of_sorted, sliced_wasserstein
from odebench.metrics.registry import MetricUndefined, split_output

SLICED_RTOL = 1e-12
MMD_ATOL = 1e-12
ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------ the previous implementations
def _flat64(x):
    return x.detach().flatten(1).to("cpu", torch.float64)


def previous_sliced_wasserstein(x, y, n_projections=256, gen=None):
    a, b = _flat64(x), _flat64(y)
    theta = torch.randn(a.shape[1], n_projections, generator=gen, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    pa, pb = (a @ theta).sort(0).values, (b @ theta).sort(0).values
    if len(pa) != len(pb):
        q = torch.linspace(0, 1, max(len(pa), len(pb)), dtype=torch.float64)
        pa, pb = (torch.quantile(p, q, dim=0) for p in (pa, pb))
    return float((pa - pb).pow(2).mean().sqrt())


def previous_mmd_rbf(x, y, scales=(0.5, 1.0, 2.0, 4.0)):
    a, b = _flat64(x), _flat64(y)
    z = torch.cat([a, b])
    d2 = torch.cdist(z, z).pow(2)
    if not (d2 > 0).any():
        raise MetricUndefined("every point coincides")
    median = d2[d2 > 0].median().sqrt()
    k = sum(torch.exp(-d2 / (2 * (s * median) ** 2)) for s in scales)
    n, m = len(a), len(b)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    term_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    term_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(term_x + term_y - 2 * kxy.mean())


# ------------------------------------------------------------------------------------------ data we make
def _sets(n, m, d, seed, kind):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    if kind == "shifted":
        return x, torch.randn(m, d, generator=g) * 1.3 + 0.4
    if kind == "duplicates":  # repeated points: zero distances off the diagonal, ties in every projection
        return x[torch.randint(n, (n,), generator=g)], x[torch.randint(n, (m,), generator=g)]
    return x, torch.randn(m, d, generator=g)  # two draws of one law: MMD^2 near 0, where cancellation bites


CASES = [(500, 5000, 2, "same"), (300, 300, 2, "shifted"), (600, 600, 2, "same"), (3, 30, 2, "shifted"),
         (20, 7, 5, "same"), (359, 700, 64, "shifted"), (200, 200, 64, "same"), (150, 90, 1, "duplicates"),
         (40, 40, 3, "duplicates")]


@pytest.mark.parametrize("n,m,d,kind", CASES)
def test_sliced_w_agrees_with_the_previous_implementation(n, m, d, kind):
    x, y = _sets(n, m, d, n + m + d, kind)
    for projections in (1, 64):
        new = sliced_wasserstein(x, y, projections, torch.Generator().manual_seed(7))
        old = previous_sliced_wasserstein(x, y, projections, torch.Generator().manual_seed(7))
        assert new == pytest.approx(old, rel=SLICED_RTOL, abs=0)


@pytest.mark.parametrize("n,m,d,kind", CASES)
def test_mmd_agrees_with_the_previous_implementation(n, m, d, kind):
    x, y = _sets(min(n, 700), min(m, 700), d, n + m + d, kind)
    for scales in ((0.5, 1.0, 2.0, 4.0), (1.0,), (0.3, 3.0)):
        assert mmd_rbf(x, y, scales) == pytest.approx(previous_mmd_rbf(x, y, scales), rel=0, abs=MMD_ATOL)


def test_mmd_blocks_of_rows_cover_the_matrix_whatever_their_size(monkeypatch):
    """Blocks of one row, of a few rows straddling nothing, and of the whole matrix give the same sums."""
    import odebench.metrics.quality as quality

    x, y = _sets(37, 23, 3, 1, "shifted")
    old = previous_mmd_rbf(x, y)
    for entries in (1, 7 * 60, 10**9):
        monkeypatch.setattr(quality, "_KERNEL_BLOCK_ENTRIES", entries)
        assert mmd_rbf(x, y) == pytest.approx(old, rel=0, abs=MMD_ATOL)


def test_mmd_still_refuses_sets_whose_points_all_coincide():
    same = torch.ones(5, 2)
    with pytest.raises(MetricUndefined, match="coincide"):
        mmd_rbf(same, same)
    with pytest.raises(MetricUndefined, match="coincide"):
        previous_mmd_rbf(same, same)


def test_quantiles_of_sorted_rows_are_torch_quantile():
    g = torch.Generator().manual_seed(0)
    for n, levels in ((1, 5), (2, 9), (7, 13), (500, 5000), (1000, 359)):
        x = torch.randn(n, 6, generator=g, dtype=torch.float64)
        q = torch.linspace(0, 1, levels, dtype=torch.float64)
        expected = torch.quantile(x, q, dim=0).T
        got = quantiles_of_sorted(x.T.sort(1).values, q)
        torch.testing.assert_close(got, expected, rtol=1e-15, atol=0)


def test_lower_median_is_torch_median():
    g = torch.Generator().manual_seed(1)
    for n in (1, 2, 3, 10, 1001):
        v = torch.randn(n, generator=g, dtype=torch.float64)
        assert lower_median(v.numpy().copy()) == float(v.median())
    ties = torch.tensor([3.0, 1.0, 2.0, 2.0, 1.0, 3.0], dtype=torch.float64)
    assert lower_median(ties.numpy().copy()) == float(ties.median()) == 2.0


# -------------------------------------------------------------------- what the faster versions no longer do
class _Ops(TorchDispatchMode):
    """Counts aten operations, and those whose output has ``size`` entries."""

    def __init__(self, size: int = -1):
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.full: Counter[str] = Counter()
        self.size = size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = str(func.overloadpacket.__name__)
        self.ops[name] += 1
        if isinstance(out, torch.Tensor) and out.numel() == self.size:
            self.full[name] += 1
        return out


def test_sliced_w_sorts_outside_torch_and_never_sorts_twice():
    """torch.quantile sorts its input again; torch's CPU sort along the sample axis is several times slower
    than NumPy's. The faster version sorts each set's projections once, in NumPy."""
    x, y = _sets(50, 80, 2, 0, "same")
    with _Ops() as ops:
        sliced_wasserstein(x, y, 16, torch.Generator().manual_seed(0))
    assert not {"sort", "quantile", "nanquantile", "msort"} & set(ops.ops), ops.ops


def test_mmd_allocates_no_kernel_matrix_of_the_full_size():
    """The squared-distance matrix is the one tensor of its size: the kernels are summed over blocks of rows,
    and the median is selected outside torch (the previous version made about twenty such tensors)."""
    x, y = _sets(300, 200, 2, 0, "same")
    z = torch.cat([x, y]).double()
    with _Ops(size=500 * 500) as distances:
        torch.cdist(z, z).pow_(2).numpy()
    with _Ops(size=500 * 500) as ops:
        mmd_rbf(x, y)
    assert ops.full == distances.full, (ops.full, distances.full)
    with _Ops(size=500 * 500) as before:
        previous_mmd_rbf(x, y)
    assert sum(before.full.values()) > sum(ops.full.values()) + 10  # what the test tells apart


# -------------------------------------------------------------------------- the committed packs' floors
def _committed_floors() -> dict[str, dict]:
    floors = {}
    for path in sorted(ROOT.glob("results/*/floors.json")):
        floors.update(json.loads(path.read_text())["floors"])
    return floors


FLOORS = _committed_floors()
# the metrics whose code changed, or whose inputs now come through computed_once (w2's solve is untouched), with
# (rel, abs) tolerances: fd and fd_digits compute what they did, so their slack is only for another machine's
# BLAS and LAPACK (float64 for fd; float32 convolutions for the digits features)
CHANGED = {"sliced_w": (SLICED_RTOL, 0.0), "mmd": (0.0, MMD_ATOL), "fd": (1e-9, 0.0), "fd_digits": (1e-6, 0.0)}


@pytest.mark.skipif(not FLOORS, reason="no committed results/*/floors.json in this checkout")
@pytest.mark.parametrize("name", sorted(k for k, e in FLOORS.items() if e["key"]["metric"] in CHANGED))
def test_committed_floor_is_recomputed_within_tolerance(name):
    """The first draw of a committed floor, recomputed from the data alone with today's metric code."""
    from odebench.bench.data.base import load_dataset
    from odebench.bench.report.floors import data_draw

    entry = FLOORS[name]
    key = entry["key"]
    metric = key["metric"]
    data = load_dataset(key["target"], key["data_seed"], **key["data_options"])
    draw, _ = data_draw(key["target"], key["data_seed"], key["data_options"], key["n_samples"], 0, data.train, name)
    ctx = EvalContext(samples=draw, reference=data.test, data_kind=data.kind, data_meta=data.meta,
                      gen=seeding.derive(0, "floor-metric", name), options={metric: dict(key["options"])},
                      train_reference=data.train)
    values, _ = split_output(metric, METRICS.get(metric).fn(ctx))
    rel, abs_ = CHANGED[metric]
    for column, value in values.items():
        assert value == pytest.approx(entry["values"][column][0], rel=rel, abs=abs_), (column, key)
