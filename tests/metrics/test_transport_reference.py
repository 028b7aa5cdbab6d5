"""The transport reference W_p^p(source law, data law): closed form between Gaussians, the estimator against it,
one value per pair of laws, and the metric's new keys beside the old ones."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from odebench.bench.harness.store.records import migrate
from odebench.metrics import METRICS, EvalContext
from odebench.metrics.registry import split_output
from odebench.metrics.transport_reference import _MEMO, gaussian_w2_squared, ot_cost, reference_cost


def test_gaussian_closed_form_by_hand():
    # N(0, I) -> N(m, s^2 I) in D dims: |m|^2 + D (1 - s)^2
    m, s, d = np.array([1.0, -2.0, 0.5]), 3.0, 3
    assert gaussian_w2_squared(np.zeros(d), np.eye(d), m, s**2 * np.eye(d)) == pytest.approx(
        m @ m + d * (1 - s) ** 2, rel=1e-12)


def test_estimate_is_close_to_the_closed_form_in_2d():
    # N(0, I) -> N((2, 0), diag(0.25, 4)): W2^2 = 4 + (1 - 0.5)^2 + (1 - 2)^2 = 5.25
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(3000, 2, generator=gen) * torch.tensor([0.5, 2.0]) + torch.tensor([2.0, 0.0])
    out = reference_cost(lambda n, g: torch.randn(n, 2, generator=g), data, "test-gauss", n=1500)
    assert out["n"] == 1500 and len(out["halves"]) == 2
    assert out["reference"] == pytest.approx(5.25, rel=0.05)
    assert all(h == pytest.approx(5.25, rel=0.1) for h in out["halves"])


def test_same_key_same_value_and_the_memo_does_not_change_it():
    data = torch.randn(400, 2, generator=torch.Generator().manual_seed(1))
    draw = lambda n, g: torch.randn(n, 2, generator=g)  # noqa: E731
    first = reference_cost(draw, data, "memo-key", n=200)
    _MEMO.clear()
    again = reference_cost(draw, data, "memo-key", n=200)
    assert first == again
    assert reference_cost(draw, data, "other-key", n=200)["reference"] != first["reference"]


def test_ot_cost_of_a_permutation_is_zero():
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(2))
    assert ot_cost(x, x.flip(0)) == pytest.approx(0.0, abs=1e-12)


def test_metric_reports_reference_and_both_excesses():
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(64, 2, generator=gen)
    samples = x0 + 1.0
    data = torch.randn(500, 2, generator=gen) + 1.0
    ctx = EvalContext(samples=samples, reference=data[:64], x0=x0, train_reference=data,
                      source_sample=lambda n, g: torch.randn(n, 2, generator=g), law_key="N->shifted",
                      options={"transport_cost": {"reference_points": 300}})
    vals, settings = split_output("transport_cost", METRICS.get("transport_cost").fn(ctx))
    assert vals["transport_cost"] == pytest.approx(2.0, rel=1e-6)  # every point moved by (1, 1)
    assert vals["transport_cost.excess_ot"] >= -1e-9
    assert vals["transport_cost.excess"] == pytest.approx(vals["transport_cost"] - vals["transport_cost.reference"])
    assert vals["transport_cost.reference"] == pytest.approx(2.0, rel=0.25)  # W2^2 of a shift by (1, 1)
    assert settings["reference"]["n"] == 300 and settings["reference"]["laws"] == "N->shifted"


def test_old_records_keep_their_meaning():
    old = {"metrics": {"transport_cost": 2.0, "transport_cost.ot": 1.9, "transport_cost.excess": 0.1}}
    assert migrate(old)["metrics"] == {"transport_cost": 2.0, "transport_cost.ot": 1.9,
                                       "transport_cost.excess_ot": 0.1}
    new = {"metrics": {"transport_cost": 2.0, "transport_cost.reference": 1.5, "transport_cost.excess": 0.5}}
    assert migrate(dict(new))["metrics"]["transport_cost.excess"] == 0.5


def _solves_forbidden(monkeypatch):
    def no_solve(*args, **kwargs):
        raise AssertionError("the reference was solved again instead of read from the run's cache")
    monkeypatch.setattr("odebench.metrics.transport_reference.ot_cost", no_solve)


def test_a_run_keeps_the_reference_on_disk_and_another_process_reads_it(tmp_path, monkeypatch):
    data = torch.randn(400, 2, generator=torch.Generator().manual_seed(4))
    draw = lambda n, g: torch.randn(n, 2, generator=g)  # noqa: E731
    first = reference_cost(draw, data, "disk-key", n=200, cache_dir=tmp_path)
    kept = list((tmp_path / "transport_reference").glob("*.json"))
    assert len(kept) == 1 and not list((tmp_path / "transport_reference").glob("*.tmp"))
    _MEMO.clear()  # a new process: only the file remains
    _solves_forbidden(monkeypatch)
    assert reference_cost(draw, data, "disk-key", n=200, cache_dir=tmp_path) == first


def test_a_kept_reference_is_read_only_for_the_same_inputs(tmp_path):
    draw = lambda n, g: torch.randn(n, 2, generator=g)  # noqa: E731
    data_a = torch.randn(400, 2, generator=torch.Generator().manual_seed(5))
    data_b = data_a * 2.0  # same key, other points (a changed loader): the file of data_a must not answer
    reference_cost(draw, data_a, "same-key", n=200, cache_dir=tmp_path)
    _MEMO.clear()
    got = reference_cost(draw, data_b, "same-key", n=200, cache_dir=tmp_path)
    _MEMO.clear()
    assert got == reference_cost(draw, data_b, "same-key", n=200)
    assert len(list((tmp_path / "transport_reference").glob("*.json"))) == 2


def test_an_unreadable_kept_reference_is_solved_again(tmp_path):
    data = torch.randn(400, 2, generator=torch.Generator().manual_seed(6))
    draw = lambda n, g: torch.randn(n, 2, generator=g)  # noqa: E731
    first = reference_cost(draw, data, "torn-key", n=200, cache_dir=tmp_path)
    (path,) = (tmp_path / "transport_reference").glob("*.json")
    path.write_text('{"inputs": ')  # a torn file
    _MEMO.clear()
    assert reference_cost(draw, data, "torn-key", n=200, cache_dir=tmp_path) == first
    assert json.loads(path.read_text())["value"] == first  # rewritten whole


def test_the_metric_keeps_its_reference_in_the_runs_cache(tmp_path, monkeypatch):
    gen = torch.Generator().manual_seed(7)
    x0 = torch.randn(64, 2, generator=gen)
    data = torch.randn(500, 2, generator=gen) + 1.0

    def ctx():
        return EvalContext(samples=x0 + 1.0, reference=data[:64], x0=x0, train_reference=data,
                           source_sample=lambda n, g: torch.randn(n, 2, generator=g), law_key="N->shifted-disk",
                           options={"transport_cost": {"reference_points": 300}}, cache_dir=tmp_path)
    first, _ = split_output("transport_cost", METRICS.get("transport_cost").fn(ctx()))
    assert len(list((tmp_path / "transport_reference").glob("*.json"))) == 1
    _MEMO.clear()
    _solves_forbidden(monkeypatch)
    again, _ = split_output("transport_cost", METRICS.get("transport_cost").fn(ctx()))
    assert again["transport_cost.reference"] == first["transport_cost.reference"]
