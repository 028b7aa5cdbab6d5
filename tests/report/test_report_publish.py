"""A report is built whole in a staging folder inside the sweep folder and replaces the previous one only then: a
report that fails or is interrupted leaves the old ``index.html`` and every figure it links as they were, and
the staging folder a killed report leaves is removed by the next report or run."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from finished_sweep import SWEEP, copy_project, figures_of, linked_figures, make_project, snapshot

import odebench.bench.report.html
import odebench.bench.report.plots
from odebench.bench.harness.store.stale_files import remove_stale_temps
from odebench.bench.report.build import write_report


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("publish") / "project")


@pytest.fixture
def sweep(project, tmp_path) -> Path:
    return copy_project(project, tmp_path / "project") / "results" / SWEEP


def staging_folders(sweep: Path) -> list[Path]:
    return [p for p in sweep.iterdir() if p.name.startswith(".report.")]


def test_a_report_that_fails_after_drawing_leaves_the_previous_report_whole(sweep, monkeypatch):
    before = snapshot(sweep)
    assert linked_figures(sweep) and all((sweep / f).is_file() for f in linked_figures(sweep))

    def broken_page(report, with_figures):
        raise RuntimeError("the page could not be rendered")

    monkeypatch.setattr(odebench.bench.report.html, "to_html", broken_page)
    with pytest.raises(RuntimeError, match="could not be rendered"):
        write_report(sweep)
    assert snapshot(sweep) == before  # every figure and file byte for byte; nothing half-replaced
    assert staging_folders(sweep) == []


def test_an_interrupt_while_drawing_leaves_the_previous_report_whole(sweep, monkeypatch):
    before = snapshot(sweep)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(odebench.bench.report.plots, "quality_vs_nfe", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(sweep)
    assert snapshot(sweep) == before
    assert staging_folders(sweep) == []


def test_a_report_replaces_the_old_one_and_deletes_only_the_old_figures_it_no_longer_draws(sweep):
    figures = figures_of(sweep)
    (sweep / "figures" / "quality_vs_nfe_gone.png").write_bytes(b"a figure of a dataset the spec dropped")
    (sweep / "figures" / "my_notes.txt").write_text("not a figure: never deleted")
    report = write_report(sweep)
    assert sorted(figures_of(sweep)) == sorted([*figures, "my_notes.txt"])
    assert all((sweep / f).is_file() for f in linked_figures(sweep))
    assert {p for p in report.files if p.parent.name == "figures"} == {sweep / f for f in linked_figures(sweep)}
    assert staging_folders(sweep) == []


def killed_report(sweep: Path, age: float = 3600) -> Path:
    """The staging folder a report killed mid-way leaves, ``age`` seconds old."""
    left = sweep / ".report.odebench-k1ll3d_x.tmp"
    (left / "figures").mkdir(parents=True)
    for p in (left / "figures" / "quality_vs_nfe_moons.png", left / "figures" / ".x.png.odebench-abcdefgh.tmp",
              left / "index.html"):
        p.write_bytes(b"half a report")
    for p in (*left.rglob("*"), left):
        os.utime(p, (time.time() - age, time.time() - age))
    return left


def test_the_staging_folder_a_killed_report_left_is_removed_by_the_next_report(sweep):
    left = killed_report(sweep)
    write_report(sweep, figures=False)
    assert not left.exists() and staging_folders(sweep) == []


def test_the_staging_folder_a_killed_report_left_is_removed_by_the_next_run(sweep):
    left = killed_report(sweep)
    elsewhere = killed_report(sweep / "cells")  # not directly in the sweep folder: not a report's, kept
    removed = remove_stale_temps(sweep.parent)
    assert not left.exists() and elsewhere.exists()
    assert {p.name for p in removed} == {"quality_vs_nfe_moons.png", ".x.png.odebench-abcdefgh.tmp", "index.html"}


def test_a_staging_folder_younger_than_this_process_is_left_alone(sweep):
    drawing = killed_report(sweep, age=-3600)  # a report drawing right now
    write_report(sweep, figures=False)
    assert drawing.exists() and (drawing / "index.html").read_bytes() == b"half a report"
