"""Helpers of the adapter and ``odebench eval`` tests: a factory module the command line can import (the fixture
``factory_module``, registered by tests/conftest.py), and the samples a record's cell drew (rebuilt from its
config with the harness's own functions)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import torch

from odebench.bench.harness.execution.plan import problem_of
from odebench.bench.harness.execution.run import draw_sources, sample_cell
from odebench.bench.harness.process.runtime import Runtime
from odebench.bench.harness.spec.sweep import Cell


@pytest.fixture
def factory_module(tmp_path: Path, monkeypatch):
    """``write(body) -> module name``: a module holding ``body`` in ``tmp_path``, importable from there (the test
    runs in ``tmp_path``); sys.path and sys.modules are restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    names = []

    def write(body: str) -> str:
        name = f"odebench_test_factory_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(body)
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


def cell_draws(record: dict, adapter) -> tuple[Cell, torch.Tensor, torch.Tensor]:
    """(cell, its source draws x0, the samples the harness draws from them with the cell's solver)."""
    cell = Cell(**record["config"])
    x0 = draw_sources(cell, adapter, problem_of(cell))
    drawn = sample_cell(cell, adapter.dynamics(adapter.model()), x0, Runtime("cpu"), False)
    return cell, x0, drawn.samples


def tiny_spec_toml(solvers: str, n_samples: int = 512) -> str:
    """A spec holding only what odebench eval reads: solvers, seeds, eval (exact W2 on every sample)."""
    return (f'name = "ignored"\nseeds = [0]\n[eval]\nn_samples = {n_samples}\nmetrics = ["w2"]\n'
            f"[eval.metric_options.w2]\nmax_points = {n_samples}\n{solvers}")
