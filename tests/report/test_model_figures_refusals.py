"""A model that refuses a sampler the figures use (a distilled rectified flow is a one-step map: no ODE path to
draw, no NFE 2 or 8) loses only its own panels, with the reason shown; the other methods' trajectories and
samples are still drawn. Before, one such model left the whole dataset without either figure."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import torch

from odebench.bench.core.solvers import Unsupported
from odebench.bench.harness.spec.sweep import Cell
from odebench.bench.report import model_figures as mf

REFUSAL = "a one-step map; sample it with solver 'euler' at nfe = 1"


def _model(name: str) -> SimpleNamespace:
    target = SimpleNamespace(test=torch.randn(50, 2, generator=torch.Generator().manual_seed(0)), kind="points",
                             shape=(2,))
    cell = Cell(sweep="t", method={"name": name}, target="moons", source="gaussian", solver="euler", nfe=1,
                tol=None, seed=0, data_seed=0, train={}, net={}, eval={})
    return SimpleNamespace(cell=cell, problem=SimpleNamespace(target=target), name=name)


def _fake_regenerate(lm, cell, n, trajectory=False):
    if lm.name == "one_step" and (trajectory or cell.nfe != 1):
        raise Unsupported(REFUSAL)
    line = torch.linspace(0, 1, 5).reshape(5, 1, 1) * torch.ones(5, n, 2)
    return SimpleNamespace(x=line[-1], trajectory=line)


def test_trajectories_drop_only_the_refusing_model_and_name_it(tmp_path, monkeypatch):
    monkeypatch.setattr(mf, "regenerate", _fake_regenerate)
    fig = mf.trajectory_figure("moons", {"flow": _model("flow"), "one_step": _model("one_step")}, tmp_path,
                               n_paths=8)
    assert fig is not None and (tmp_path / fig.png).is_file()
    assert f"Not drawn: one_step ({REFUSAL})." in fig.caption
    assert "flow" not in fig.caption.split("Not drawn:")[1]
    # only refusing models: no figure at all, and no exception
    assert mf.trajectory_figure("moons", {"one_step": _model("one_step")}, tmp_path, n_paths=8) is None


def test_sample_panels_a_model_refuses_are_marked_and_the_rest_drawn(tmp_path, monkeypatch):
    monkeypatch.setattr(mf, "regenerate", _fake_regenerate)
    saved = {}

    def keep(fig, sweep_dir, stem, title, caption="", dpi=150):
        saved["fig"] = fig
        return mf.FigureFile(title, f"figures/{stem}.png", None, caption)

    monkeypatch.setattr(mf, "save", keep)
    one, flow = _model("one_step"), _model("flow")
    cells = [("euler, NFE 1", one.cell, 0.1), ("euler, NFE 2", replace(one.cell, nfe=2), 0.2)]
    assert mf.samples_figure("moons", {"one_step": (one, cells), "flow": (flow, cells)}, "w2", tmp_path)
    axes = saved["fig"].axes  # rows: one_step, flow; columns: NFE 1, NFE 2
    refused = [ax for ax in axes if any("not drawn" in t.get_text() for t in ax.texts)]
    assert len(refused) == 1 and refused[0] is axes[1]
    assert "one-step map" in " ".join(t.get_text() for t in axes[1].texts).replace("\n", " ")
    assert all(ax.collections for i, ax in enumerate(axes) if i != 1)  # the other three panels hold samples
    mf.plt.close(saved["fig"])
