"""The report is total: any mix of ok, failed, skipped, corrupt, non-finite and missing-model cells, and any
cache file, gives a complete report with a note per problem; figures are written atomically, with finite axes."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import matplotlib.figure
import pytest
import torch
from harness_tiny import tiny_spec
from threads import torch_threads

import odebench.bench.harness.execution.run
from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.artifacts import ArtifactStore, read_safetensors, sha256_file
from odebench.bench.report.build import write_report
from odebench.bench.report.tables import fmt_stat

SPEC = tiny_spec(name="mix", methods=[{"name": "fm_ot"}, {"name": "otcfm"}, {"name": "rf"}],
                 solvers=[{"name": "euler", "nfe": [1, 2]}, {"name": "heun", "nfe": [1]}])


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mix")
    odebench.bench.harness.execution.run._MODELS.clear()
    with torch_threads(1):
        run_sweep(parse_spec(SPEC), out, progress=False)
    return out


@pytest.fixture
def out(swept, tmp_path) -> Path:
    copy = tmp_path / "out"
    shutil.copytree(swept, copy)
    return copy


def model_of(out: Path, method: str) -> tuple[ArtifactStore, str]:
    store = ArtifactStore(out / ".cache" / "models")
    for meta in store.root.glob("*.json"):
        if json.loads(meta.read_text())["method"]["name"] == method:
            return store, meta.stem
    raise LookupError(method)


def republish(store: ArtifactStore, key: str, payload, legacy: bool = False) -> None:
    """Replace a model's weights file with ``payload`` (tensors: a safetensors file, as the cache writes; bytes:
    written as they are) and make its meta's hash match, so only loading can tell. ``legacy`` puts the bytes in
    a ``<key>.pt`` file of the cache's older pickle layout instead, which the meta then names."""
    from safetensors.torch import save

    weights, meta_path = store.paths(key)
    data = payload if isinstance(payload, bytes) else save({k: v.contiguous() for k, v in payload.items()})
    meta = json.loads(meta_path.read_text())
    if legacy:
        weights.unlink()
        weights = weights.with_name(f"{key}.pt")
        meta["weights"] = weights.name
    weights.write_bytes(data)
    meta["sha256"] = sha256_file(weights)
    meta_path.write_text(json.dumps(meta))


def records_by(out: Path) -> dict[tuple, Path]:
    out_map = {}
    for p in (out / "mix" / "cells").glob("*.json"):
        r = json.loads(p.read_text())
        c = r["config"]
        out_map[(c["method"]["name"], c["solver"], c["nfe"])] = p
    return out_map


def edit(path: Path, **change) -> None:
    rec = json.loads(path.read_text())
    rec.update(change)
    path.write_text(json.dumps(rec))  # Python's json writes NaN and Infinity, as older odebench did


def test_every_kind_of_problem_at_once_gives_a_complete_report(out):
    by = records_by(out)
    store, fm_key = model_of(out, "fm_ot")
    state = read_safetensors(store.paths(fm_key)[0])["state_dict"]
    republish(store, fm_key, {k: torch.full_like(v, float("nan")) for k, v in state.items()})  # a diverged model
    _, rf_key = model_of(out, "rf")
    for p in store.paths(rf_key):
        p.unlink()  # a model missing from the cache
    edit(by[("otcfm", "euler", 1)], metrics={"w2": float("inf"), "sliced_w": 1e300})
    edit(by[("otcfm", "euler", 2)], metrics={"w2": float("nan"), "sliced_w": 0.5})
    edit(by[("fm_ot", "euler", 2)], status="failed", reason="training: DivergenceError: loss became nan",
         metrics={})
    by[("rf", "euler", 2)].write_bytes(by[("rf", "euler", 2)].read_bytes()[:30])  # truncated by a crash

    report = write_report(out / "mix")
    names = {p.name for p in report.files}
    assert {"leaderboard.md", "leaderboard.csv", "leaderboard.tex", "index.html"} <= names
    assert report.status_counts == {"ok": 4, "skipped": 3, "failed": 1, "corrupt": 1}
    notes = "\n".join(report.notes)
    assert f"record {by[('rf', 'euler', 2)].name} is corrupt" in notes
    assert "w2 = inf (non-finite" in notes and "w2 = nan (non-finite" in notes
    assert "sliced_w = 1e+300 (too large to plot" in notes
    assert f"model {rf_key} is not in the cache" in notes
    md = (out / "mix" / "leaderboard.md").read_text()
    assert "| inf" in md or " inf " in md  # an infinite value is shown as such
    figures = [p for p in report.files if p.suffix in (".png", ".pdf")]
    assert all(p.stat().st_size > 1000 for p in figures)
    # the diverged model's samples figure is drawn (NaN samples counted in its titles, axes finite)
    assert {"samples_moons.png", "trajectories_moons.png", "quality_vs_nfe_moons.png"} <= {p.name for p in figures}


def test_refused_and_malformed_cache_files_are_notes(out):
    store, fm_key = model_of(out, "fm_ot")
    republish(store, fm_key, pickle.dumps(print), legacy=True)  # weights_only refuses to unpickle this
    _, ot_key = model_of(out, "otcfm")
    store.meta_path(ot_key).write_text("[]")
    report = write_report(out / "mix")
    notes = "\n".join(report.notes)
    assert "cannot load model file" in notes and "UnpicklingError" in notes
    assert f"model {ot_key} is not in the cache" in notes
    assert (out / "mix" / "index.html").exists()
    assert store.meta_path(ot_key).read_text() == "[]"  # the report only reads the cache


def test_a_kill_while_a_figure_is_written_leaves_no_partial_file(out, monkeypatch):
    real = matplotlib.figure.Figure.savefig

    def dies_mid_pdf(self, fname, *args, **kwargs):
        if str(fname).endswith(".pdf") or kwargs.get("format") == "pdf":
            if isinstance(fname, (str, Path)):
                Path(fname).write_bytes(b"")  # what a kill during a plain savefig left: a 0-byte PDF
            else:
                fname.write(b"%PDF-1.4 half")
            raise KeyboardInterrupt  # stands in for the kill
        return real(self, fname, *args, **kwargs)

    shutil.rmtree(out / "mix" / "figures", ignore_errors=True)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", dies_mid_pdf)
    with pytest.raises(KeyboardInterrupt):
        write_report(out / "mix")
    figures = out / "mix" / "figures"
    left = list(figures.iterdir()) if figures.exists() else []
    assert not [p for p in left if p.suffix == ".pdf" or p.name.endswith(".tmp")], left


def test_infinite_values_are_shown_as_such():
    assert fmt_stat([float("inf")]) == "inf"
    assert fmt_stat([0.5, float("inf")]) == "0.5000 (+inf)"
    assert fmt_stat([0.5, 0.7]) == "0.6000 ± 0.14"
