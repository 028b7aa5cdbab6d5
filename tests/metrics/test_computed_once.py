"""Work on one sample set is done once: features and statistics of the held-out set once per process, digits
features of a cell's samples once per cell, the path metrics' reference solve once per model; each keyed by the
exact inputs, so another set, size or model is computed afresh and every value equals the one computed alone."""

from __future__ import annotations

import pytest
import torch

import odebench.metrics.computed_once as computed_once
import odebench.metrics.quality as quality
import odebench.metrics.trajectories as trajectories
from odebench.bench.core.solvers import Dynamics
from odebench.bench.data.base import load_dataset
from odebench.metrics import METRICS, EvalContext
from odebench.metrics.digits_features import DigitsCNN


@pytest.fixture(autouse=True)
def _fresh_memos(monkeypatch):
    """Nothing remembered from other tests, nothing left for them."""
    monkeypatch.setattr(computed_once, "_MEMO", type(computed_once._MEMO)())
    monkeypatch.setattr(trajectories, "_REFERENCE", type(trajectories._REFERENCE)())


def test_fingerprint_tells_apart_content_dtype_and_shape():
    x = torch.arange(8.0)
    fp = computed_once.fingerprint
    assert fp(x) == fp(x.clone()) == fp(torch.arange(8.0).reshape(2, 4)[:, :].reshape(8))
    assert len({fp(x), fp(x.reshape(2, 4)), fp(x.reshape(4, 2)), fp(x.double()), fp(x + 1), fp(x[:7])}) == 6
    assert fp(torch.arange(8.0).reshape(2, 4).T) == fp(torch.arange(8.0).reshape(2, 4).T.contiguous())


def test_per_process_memo_is_bounded_by_bytes_and_drops_the_oldest(monkeypatch):
    monkeypatch.setattr(computed_once, "MEMO_BYTES", 2500)
    calls = []

    def features(x):
        calls.append(float(x[0]))
        return torch.zeros(128, dtype=torch.float64)  # 1 KiB

    sets = [torch.full((3,), float(i)) for i in range(3)]
    for s in sets:
        computed_once.per_process("f", s, features)
    computed_once.per_process("f", sets[2], features)  # kept
    computed_once.per_process("f", sets[0], features)  # dropped when the third came in: computed again
    assert calls == [0.0, 1.0, 2.0, 0.0]


def test_fd_computes_the_held_out_statistics_once_and_its_value_is_unchanged(monkeypatch):
    calls = []
    real = quality.gaussian_stats
    monkeypatch.setattr(quality, "gaussian_stats", lambda x: calls.append(len(x)) or real(x))
    g = torch.Generator().manual_seed(0)
    reference = torch.randn(400, 3, generator=g)
    cells = [torch.randn(300, 3, generator=g) + shift for shift in (0.0, 0.5)]
    values = [METRICS.get("fd").fn(EvalContext(samples=s, reference=reference)) for s in cells]
    assert calls == [400, 300, 300]  # the held-out set once, each cell's samples once
    assert values == [quality.frechet_from_samples(s, reference) for s in cells]
    METRICS.get("fd").fn(EvalContext(samples=cells[0], reference=reference[:399]))  # another set: computed again
    assert calls[-2:] == [399, 300]


def test_digits_features_once_per_sample_set_across_fd_digits_precision_and_recall(monkeypatch):
    """fd_digits, precision and recall of two cells: the held-out images go through the classifier once, each
    cell's samples once; the values are those computed with nothing remembered."""
    rows = []
    real = DigitsCNN.features
    monkeypatch.setattr(DigitsCNN, "features", lambda self, x: rows.append(len(x)) or real(self, x))
    data = load_dataset("digits")
    g = torch.Generator().manual_seed(0)
    cells = [(data.train[:300] + 0.1 * torch.randn(300, 1, 8, 8, generator=g)).clamp(-1, 1) for _ in range(2)]
    names = ("fd_digits", "precision", "recall")

    def run(samples):
        ctx = EvalContext(samples=samples, reference=data.test, data_kind="image", data_meta=data.meta)
        return [METRICS.get(n).fn(ctx)[n] for n in names]

    values = [run(s) for s in cells]
    assert sorted(rows) == sorted([len(data.test), 300, 300])
    rows.clear()
    monkeypatch.setattr(computed_once, "per_process", lambda what, x, compute: compute(x))
    monkeypatch.setattr(computed_once, "per_cell", lambda cache, what, x, compute: compute(x))
    alone = [[METRICS.get(n).fn(EvalContext(samples=s, reference=data.test, data_kind="image"))[n] for n in names]
             for s in cells]
    assert values == alone
    assert len(rows) == 2 * len(names) * 2  # with nothing shared: both sets, in every metric of every cell


def rotation(x, t):
    return torch.stack([-x[:, 1], x[:, 0]], 1) * (1 + t[:, None])


def test_reference_straightness_is_solved_once_per_dynamics_key_and_source_draws(monkeypatch):
    calls = []
    real = trajectories.reference_trajectory
    monkeypatch.setattr(trajectories, "reference_trajectory", lambda *a, **k: calls.append(1) or real(*a, **k))
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    opts = {"straightness": {"n_steps": 20}, "curvature": {"n_steps": 20}}

    def cell(key, draws=x0, t1=1.0):
        samples = draws + torch.randn(draws.shape)  # every cell has its own samples; the reference ignores them
        ctx = EvalContext(samples=samples, reference=samples, x0=draws, dynamics=Dynamics(velocity=rotation, t1=t1),
                          options=opts, dynamics_key=key)
        return METRICS.get("straightness").fn(ctx)["straightness"], METRICS.get("curvature").fn(ctx)["curvature"]

    first = cell("model-a")
    assert cell("model-a") == first and len(calls) == 1  # a second cell of the model: no solve
    cell("model-b")
    cell("model-a", x0 * 2)
    cell("model-a", t1=0.5)
    assert len(calls) == 4  # another model, other draws, another interval: each solved
    alone = [cell(""), cell("")]
    assert len(calls) == 6  # without a key nothing is remembered across cells
    assert alone[0] == alone[1] == first
