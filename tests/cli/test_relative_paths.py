"""Every folder a user names may be relative: ``odebench run``, ``report``, ``claims``, ``pack`` and ``eval`` run
from a working folder write exactly where the paths say -- never one level too deep (``results/quick`` taken
under itself gave ``results/quick/results/quick``) -- and no command loses a figure of an existing report."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from finished_sweep import (
    SWEEP,
    figures_of,
    has_tensorboard,
    linked_figures,
    make_project,
    snapshot,
)

from odebench.bench.cli import main

REPORT_FILES = {"index.html", "leaderboard.md", "leaderboard.csv", "leaderboard.tex", "leaderboard.html",
                "claims.md", "claims.csv"}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project folder after ``odebench run --spec spec.toml`` with the default relative ``--out results``
    (and ``--track tensorboard`` where TensorBoard is installed)."""
    track = ["--track", "tensorboard"] if has_tensorboard() else []
    return make_project(tmp_path_factory.mktemp("relative") / "project", *track)



def changed(before: dict[str, bytes], after: dict[str, bytes]) -> tuple[set[str], set[str], set[str]]:
    """(added, removed, rewritten) file names between two snapshots."""
    return (set(after) - set(before), set(before) - set(after),
            {k for k in set(before) & set(after) if before[k] != after[k]})


def assert_whole_report(sweep: Path) -> None:
    linked = linked_figures(sweep)
    assert linked, "the report links figures"
    assert all((sweep / f).is_file() for f in linked), [f for f in linked if not (sweep / f).is_file()]
    assert not [p for p in sweep.iterdir() if p.name.startswith(".report.")]  # no staging folder left behind


def test_a_run_with_the_default_relative_out_keeps_everything_directly_under_it(project):
    assert sorted(p.name for p in project.iterdir()) == ["results", "spec.toml"]
    results = project / "results"
    assert sorted(p.name for p in results.iterdir()) == [".cache", ".odebench.lock", SWEEP]
    assert_whole_report(results / SWEEP)


@pytest.mark.skipif(not has_tensorboard(), reason="tensorboard is not installed (pip install 'odebench[tensorboard]')")
def test_tracking_with_the_default_relative_out_writes_where_the_message_says(project):
    """``odebench run --track tensorboard`` wrote ``results/results/<sweep>/tracking`` while it printed (and
    docs/commands.md says) ``results/<sweep>/tracking``."""
    logdir = project / "results" / SWEEP / "tracking" / "tensorboard"
    assert list(logdir.rglob("events.out.tfevents.*"))
    assert {p.name for p in logdir.iterdir()} >= {"models", "curves", "cells", "images"}
    assert not (project / "results" / "results").exists()


@pytest.mark.parametrize("args", [["report", f"results/{SWEEP}"], ["report", "results"],
                                  ["report", f"./results/../results/{SWEEP}"]])
def test_report_of_a_relative_folder_rewrites_the_report_in_place_and_loses_no_figure(work, capsys, args):
    sweep = work / "results" / SWEEP
    before, figures = snapshot(work), figures_of(sweep)
    assert main(args) == 0
    after = snapshot(work)
    added, removed, rewritten = changed(before, after)
    assert not added and not removed, (added, removed)
    assert {Path(p).parent for p in rewritten} <= {Path("results") / SWEEP, Path("results") / SWEEP / "figures"}
    assert sorted(figures_of(sweep)) == sorted(figures)  # every figure redrawn under its own name
    assert not (sweep / "results").exists() and not (work / "results" / "results").exists()
    assert_whole_report(sweep)
    assert f"report of {sweep}" in capsys.readouterr().out  # the message names the folder, made absolute


def test_report_from_inside_the_results_folder_without_figures_writes_in_the_sweep_folder(work, monkeypatch):
    monkeypatch.chdir(work / "results")
    before, figures = snapshot(work), figures_of(work / "results" / SWEEP)
    assert main(["report", SWEEP, "--no-figures"]) == 0
    added, removed, _ = changed(before, snapshot(work))
    assert not added, added  # the issue's `smoke/smoke/`
    assert removed == {f"results/{SWEEP}/figures/{n}" for n in figures}  # tables only: its figures go with it
    assert not (work / "results" / SWEEP / SWEEP).exists()
    assert linked_figures(work / "results" / SWEEP) == []  # tables only: the page links no figure


def test_claims_of_a_relative_folder_write_in_that_folder(work):
    sweep = work / "results" / SWEEP
    before, figures = snapshot(work), figures_of(sweep)
    (sweep / "claims.md").unlink()
    assert main(["claims", f"results/{SWEEP}"]) == 0
    added, removed, rewritten = changed(before, snapshot(work))
    assert not added and not removed, (added, removed)
    assert rewritten <= {f"results/{SWEEP}/{n}" for n in ("claims.md", "claims.csv", "index.html", "floors.json")}
    assert figures_of(sweep) == figures  # untouched: claims only splice their section into the page
    assert_whole_report(sweep)


def test_pack_with_relative_folders_writes_only_into_dest_and_its_report_keeps_its_figures(work):
    before = snapshot(work)
    assert main(["pack", f"results/{SWEEP}", "packs/tier"]) == 0
    added, removed, rewritten = changed(before, snapshot(work))
    assert not removed and not rewritten, (removed, rewritten)
    assert added and all(a.startswith("packs/tier/") for a in added), added
    dest = work / "packs" / "tier"
    assert {"records.jsonl.gz", *REPORT_FILES} <= {p.name for p in dest.iterdir()}
    assert not (dest / "packs").exists() and not (dest / "results").exists()
    assert_whole_report(dest)
    figures = figures_of(dest)
    for args in (["report", "packs/tier"], ["claims", "packs/tier"]):
        assert main(args) == 0
        assert sorted(figures_of(dest)) == sorted(figures), args
        assert_whole_report(dest)
        assert not (dest / "packs").exists()


FACTORY = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 16), nn.SiLU(), nn.Linear(16, 2))

    def forward(self, x, t):
        return self.body(torch.cat([x, t[:, None]], dim=1))


def make():
    return Net()
'''


def test_eval_with_a_relative_out_writes_its_records_report_and_figures_under_it(factory_module, tmp_path):
    module = factory_module(FACTORY)  # the test now runs in tmp_path
    torch.manual_seed(0)
    (tmp_path / "spec.toml").write_text('name = "x"\nseeds = [0]\n[eval]\nn_samples = 64\nmetrics = ["w2"]\n'
                                        '[[solvers]]\nname = "euler"\nnfe = [2, 4]\n')
    before = set(snapshot(tmp_path))
    assert main(["eval", "--model", f"{module}:make", "--dataset", "moons", "--spec", "spec.toml", "--out",
                 "evals", "--no-progress"]) == 0
    added = set(snapshot(tmp_path)) - before
    sweep = f"evals/eval_{module}.make_moons"
    assert added and all(a.startswith("evals/") for a in added), added
    assert {f"{sweep}/{n}" for n in REPORT_FILES - {"claims.md", "claims.csv"}} <= added
    assert [a for a in added if a.startswith(f"{sweep}/figures/")]
    assert not (tmp_path / "evals" / "evals").exists() and not (tmp_path / sweep / "evals").exists()
    assert_whole_report(tmp_path / sweep)
