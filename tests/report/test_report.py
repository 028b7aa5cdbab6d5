"""The report: tables, figures and index.html from fixture records, and end to end from the smoke sweep."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.records import SCHEMA_VERSION, RecordStore
from odebench.bench.report.build import write_report
from odebench.bench.report.format import fmt_sig, unmark
from odebench.bench.report.tables import FLOOR_LABEL, NEAR, fmt_stat, load_sweep

RAW_SPEC = {
    "name": "fixture", "seeds": [0, 1],
    "methods": [{"name": "fm_ot"}, {"name": "rf", "k": [1, 2]}],
    "datasets": [{"target": "moons"}],
    "solvers": [{"name": "euler", "nfe": [1, 4]}, {"name": "heun", "nfe": [1, 4]},
                {"name": "dopri5", "tolerances": [1e-3]}],
    "eval": {"n_samples": 64, "metrics": ["w2", "sliced_w"]},
}
FAILED = ("rf", 2, "euler", 4, 1)  # (method, k, solver, nfe, seed) of the one failed cell


def fixture_value(method: str, k: int, solver: str, nfe: int | None, seed: int) -> dict[str, float]:
    """Made-up but distinct metric values: every (config, seed) gets its own numbers."""
    base = {"fm_ot": 0.9, "rf": 0.5 + 0.1 * k}[method] + {"euler": 0.0, "heun": -0.05, "dopri5": -0.2}[solver]
    w2 = base / (nfe or 16) ** 0.5 + 0.01 * seed
    straight = 0.3 / k if method == "rf" else 0.4
    return {"w2": w2, "sliced_w": w2 / 2, "straightness": straight + 0.001 * seed,
            "transport_cost": 2.0 + straight, "transport_cost.ot_bound": 1.9, "nll": 1.5 + 0.1 * seed,
            "nll.bpd": (1.5 + 0.1 * seed) / (2 * np.log(2))}


def write_fixture(sweep_dir: Path) -> list[dict]:
    """Records as odebench.bench.harness.execution.run writes them: ok ones, heun@1 skipped, one failed, two seeds."""
    spec = parse_spec(dict(RAW_SPEC))
    store = RecordStore(sweep_dir)
    records = []
    for cell in spec.cells:
        key = (cell.method["name"], cell.method.get("k", 1), cell.solver, cell.nfe, cell.seed)
        rec = {"schema_version": SCHEMA_VERSION, "cell_id": cell.id, "config": cell.config(),
               "config_hash": cell.id, "environment": {}, "created": 0.0, "model_key": f"missing{cell.seed}",
               "timings": {"train_seconds": 1.0}}
        if cell.solver == "heun" and cell.nfe == 1:
            rec.update(status="skipped", reason="budget 1 is below heun's minimum of 2", metrics={}, nfe=None)
        elif key == FAILED:
            rec.update(status="failed", reason="sampling: 3 of 64 samples are NaN/inf", metrics={}, nfe=4)
        else:
            nfe = cell.nfe if cell.nfe else 26 + cell.seed
            info = {m: {"higher_is_better": False, "reference": "", "variant": "", "options": {}}
                    for m in ("w2", "sliced_w", "straightness", "transport_cost", "nll")}
            rec.update(status="ok", reason=None, nfe=nfe, nfe_requested=cell.nfe, metric_info=info,
                       metrics=fixture_value(*key))
        store.write(rec)
        records.append(rec)
    return records


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("src", "href") and v and not v.startswith("#")]


def check_index(sweep_dir: Path) -> list[str]:
    """index.html's relative links, each checked to exist; no scripts, no remote resources."""
    text = (sweep_dir / "index.html").read_text()
    assert "<script" not in text
    parser = _Links()
    parser.feed(text)
    for link in parser.links:
        assert not re.match(r"^[a-z]+://", link), link
        assert (sweep_dir / link).is_file(), f"index.html links {link}, which does not exist"
    return parser.links


def check_png(path: Path) -> None:
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    assert float(np.var(img[..., :3])) > 0, f"{path} is blank"


@pytest.fixture(scope="module")
def fixture_report(tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("results") / "fixture"
    records = write_fixture(sweep_dir)
    report = write_report(sweep_dir)
    return sweep_dir, records, report


def test_files_written(fixture_report):
    sweep_dir, _, report = fixture_report
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.tex", "leaderboard.html", "index.html"):
        assert (sweep_dir / name).is_file() and (sweep_dir / name) in report.files
    stems = {Path(f.png).stem.rsplit("_", 1)[0] for s in report.sections for f in s.figures}
    assert stems == {"headline", "quality_vs_nfe", "paths_vs_round", "nll_vs_nfe"}  # no model cache: no model figures
    assert any("no model cache" in n for n in report.notes)
    assert "no model cache" in (sweep_dir / "index.html").read_text()


def test_every_method_and_table_present(fixture_report):
    sweep_dir, _, report = fixture_report
    (section,) = report.sections
    assert section.dataset == "moons" and section.headline == "w2"
    titles = [t.title for t in section.tables]
    assert titles == ["w2: best solver per NFE", "w2 per solver", "All sample-quality metrics",
                      "Straightness, curvature and transport cost", "Negative log-likelihood per solver",
                      "Failed and skipped cells"]
    md = (sweep_dir / "leaderboard.md").read_text()
    html = (sweep_dir / "index.html").read_text()
    tex = (sweep_dir / "leaderboard.tex").read_text()
    assert set(section.tables[0].frame["method"]) == {"fm_ot", "rf", "rf(k=2)", FLOOR_LABEL}
    assert section.tables[0].frame["method"].iloc[-1] == FLOOR_LABEL  # the floor row comes last
    for method in ("fm_ot", "rf", "rf(k=2)"):
        assert re.search(rf"^\|\s*{re.escape(method)}\s*\|", md, re.M), method
        assert f'<td class="label">{method}</td>' in html and method.replace("_", r"\_") in tex
    paths = section.tables[3].frame
    assert {"straightness", "transport_cost", "transport_cost.ot_bound"} <= set(paths.columns)
    assert {"nll", "nll.bpd"} <= set(section.tables[4].frame.columns)


def _values(records, method, k, solver, nfe, metric="w2"):
    out = []
    for r in records:
        c = r["config"]
        if (c["method"]["name"], c["method"].get("k", 1), c["solver"], c["nfe"]) == (method, k, solver, nfe) \
                and r["status"] == "ok":
            out.append(r["metrics"][metric])
    return out


def test_numbers_match_records(fixture_report):
    sweep_dir, records, report = fixture_report
    best, per_solver = report.sections[0].tables[:2]
    # fm_ot at NFE 4: heun (base - 0.05) beats euler; two seeds -> mean ± std
    heun = _values(records, "fm_ot", 1, "heun", 4)
    assert len(heun) == 2
    row = best.frame.set_index("method").loc["fm_ot"].map(
        lambda v: unmark(v)[0].removesuffix(NEAR).replace(NEAR.strip(), ""))  # floor marks aside
    assert row["NFE 4"] == f"{fmt_stat(heun)} [heun]"
    assert fmt_stat(heun) == f"{fmt_sig(np.mean(heun))} ± {fmt_sig(np.std(heun, ddof=1), 2)}"
    # the adaptive column names the NFE actually used (mean of 26 and 27 over the seeds)
    assert row["tol 0.001"].endswith("[dopri5, NFE 26.5]")
    cell = per_solver.frame.set_index(["method", "solver"]).loc[("rf", "euler"), "NFE 1"]
    assert unmark(cell)[0] == fmt_stat(_values(records, "rf", 1, "euler", 1))
    csv = pd.read_csv(sweep_dir / "leaderboard.csv")
    got = csv[(csv["method"] == "rf(k=2)") & (csv["solver"] == "heun") & (csv["budget"] == "NFE 4")].iloc[0]
    want = _values(records, "rf", 2, "heun", 4)
    assert got["w2_mean"] == pytest.approx(np.mean(want), rel=1e-12)
    assert got["w2_std"] == pytest.approx(np.std(want, ddof=1), rel=1e-12)
    assert (got["n_seeds"], got["n_ok"], got["n_failed"], got["n_skipped"]) == (2, 2, 0, 0)


def test_per_model_nll_is_one_row_per_method_with_its_own_solve(tmp_path):
    """Records flag nll per_model (one solve per trained model): the table has a row per method with the
    solve's NFE and the mean ± std over seeds of one value per seed, and there is no NLL-vs-NFE figure."""
    sweep_dir = tmp_path / "fixture"
    records = write_fixture(sweep_dir)
    store = RecordStore(sweep_dir)
    for r in records:
        if r["status"] == "ok":
            r["metric_info"]["nll"].update(per_model=True, settings={
                "solver": "dopri5", "rtol": 1e-4, "divergence": "hutchinson", "n_probes": 1,
                "nfe": 70 + 4 * r["config"]["seed"]})
            store.write(r)
    report = write_report(sweep_dir)
    (section,) = report.sections
    (table,) = [t.frame for t in section.tables if t.title == "Negative log-likelihood"]
    assert list(table["method"]) == ["fm_ot", "rf", "rf(k=2)"]
    assert set(table["solve"]) == {"dopri5 tol 0.0001, hutchinson x1"} and set(table["NFE"]) == {"72"}
    assert set(table["seeds"]) == {2}
    assert set(table["nll"]) == {"1.550 ± 0.071"}  # seeds 0 and 1: 1.5 and 1.6, each counted once
    stems = {Path(f.png).stem.rsplit("_", 1)[0] for s in report.sections for f in s.figures}
    assert "nll_vs_nfe" not in stems


def test_failed_and_skipped_cells_marked(fixture_report):
    sweep_dir, _, report = fixture_report
    best, per_solver, quality, paths = (t.frame for t in report.sections[0].tables[:4])
    ps = per_solver.set_index(["method", "solver"])
    assert ps.loc[("fm_ot", "heun"), "NFE 1"] == "skipped"
    one_ok = _values(fixture_report[1], "rf", 2, "euler", 4)
    assert ps.loc[("rf(k=2)", "euler"), "NFE 4"].removesuffix(NEAR) == f"{fmt_stat(one_ok)} (1 failed)"
    q = quality.set_index(["method", "solver", "budget"])
    assert q.loc[("rf", "heun", "NFE 1"), "w2"] == "skipped"  # a config with no ok seed is still listed
    p = paths.set_index(["method", "solver", "budget"])
    assert p.loc[("rf", "heun", "NFE 1"), "straightness"] == "skipped"
    issues = report.sections[0].tables[-1].frame
    assert len(issues) == 3 * 2 + 1  # heun@1 for 3 methods x 2 seeds, and the failed cell
    assert set(issues["status"]) == {"failed", "skipped"}
    assert "NaN/inf" in issues.loc[issues["status"] == "failed", "reason"].item()
    assert '<td class="bad">skipped</td>' in (sweep_dir / "index.html").read_text()
    csv = pd.read_csv(sweep_dir / "leaderboard.csv")
    assert csv["n_skipped"].sum() == 6 and csv["n_failed"].sum() == 1


def test_pngs_decode_and_index_links_exist(fixture_report):
    sweep_dir, _, report = fixture_report
    links = check_index(sweep_dir)
    pngs = sorted((sweep_dir / "figures").glob("*.png"))
    assert pngs and all(f"figures/{p.name}" in links for p in pngs)
    for p in pngs:
        check_png(p)
        assert p.with_suffix(".pdf").read_bytes().startswith(b"%PDF")


def test_load_sweep_rejects_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="sweep folder"):
        load_sweep(tmp_path / "nope")


def test_cli_report_without_records_fails_clearly(tmp_path, capsys):
    from odebench.bench.cli import main

    assert main(["report", str(tmp_path)]) == 2
    assert "holds no sweep records" in capsys.readouterr().err


def test_smoke_sweep_report_with_model_figures(tmp_path, capsys):
    """`odebench run` of the real smoke spec ends with its report, figures from the cached models included;
    `odebench report` on the results root rewrites it."""
    from odebench.bench.cli import main

    assert main(["run", "--spec", "smoke", "--out", str(tmp_path), "--no-progress"]) == 0
    sweep_dir = tmp_path / "smoke"
    assert f"report: {sweep_dir / 'index.html'}" in capsys.readouterr().out
    for name in ("trajectories_moons.png", "samples_moons.png", "quality_vs_nfe_moons.png"):
        check_png(sweep_dir / "figures" / name)
    assert "figures/trajectories_moons.png" in check_index(sweep_dir)
    (sweep_dir / "leaderboard.md").unlink()
    assert main(["report", str(tmp_path), "--no-figures"]) == 0  # a results root: reports each sweep in it
    assert str(sweep_dir / "leaderboard.md") in capsys.readouterr().out
    md = (sweep_dir / "leaderboard.md").read_text()
    assert re.search(r"^\|\s*fm_ot\s*\|", md, re.M) and re.search(r"^\|\s*rf\s*\|", md, re.M)
    assert "skipped" in md  # heun@1 is skipped in the smoke spec
    # a model missing from the cache: its method's figures are skipped with a note, the others still drawn
    records = [json.loads(p.read_text()) for p in (sweep_dir / "cells").glob("*.json")]
    rf_key = next(r["model_key"] for r in records if r["config"]["method"]["name"] == "rf")
    for f in (tmp_path / ".cache" / "models").glob(f"{rf_key}.*"):
        f.unlink()
    for f in (sweep_dir / "figures").iterdir():
        f.unlink()
    report = write_report(sweep_dir)
    assert [n for n in report.notes if "not in the cache" in n and n.startswith("moons / rf:")]
    assert "not in the cache" in (sweep_dir / "index.html").read_text()
    check_png(sweep_dir / "figures" / "samples_moons.png")  # fm_ot's panels


def test_image_tile_layout():
    """36 images of 8x8 in [-1, 1] -> a 6x6 tile in [0, 1] with 1-pixel gaps; image i lands in its slot."""
    import torch

    from odebench.bench.report.model_figures import _image_tile

    x = torch.linspace(-1, 1, 36).reshape(36, 1, 1, 1).expand(36, 1, 8, 8)
    tile = _image_tile(x, 6)
    assert tile.shape == (6 * 9 - 1, 6 * 9 - 1)
    assert tile.min() == 0.0 and tile.max() == 1.0
    r, q = divmod(7, 6)
    assert np.allclose(tile[r * 9:r * 9 + 8, q * 9:q * 9 + 8], (x[7, 0, 0, 0].item() + 1) / 2)


def test_time_grids_are_kept_apart_in_the_figure_and_named_in_the_best_solver_table(tmp_path, monkeypatch):
    """One quality-vs-NFE line per (solver, grid), and the best-solver table names the grid (``euler/edm``)."""
    from odebench.bench.report import plots
    from odebench.bench.report.tables import best_solver_table

    raw = {"name": "grids", "seeds": [0], "methods": [{"name": "fm_ot"}], "datasets": [{"target": "moons"}],
           "solvers": [{"name": "euler", "nfe": [4, 8], "grid": ["uniform", "edm"]},
                       {"name": "dpmpp_2m", "nfe": [4, 8], "grid": ["logsnr"]}],
           "eval": {"n_samples": 64, "metrics": ["w2"]}}
    store = RecordStore(tmp_path / "grids")
    value = {"euler": 1.0, "euler/edm": 0.5, "dpmpp_2m/logsnr": 0.7}
    for cell in parse_spec(raw).cells:
        store.write({"schema_version": SCHEMA_VERSION, "cell_id": cell.id, "config": cell.config(),
                     "config_hash": cell.id, "environment": {}, "created": 0.0, "model_key": "m", "status": "ok",
                     "reason": None, "nfe": cell.nfe, "nfe_requested": cell.nfe, "timings": {},
                     "metrics": {"w2": value[cell.solver_label] / cell.nfe},
                     "metric_info": {"w2": {"higher_is_better": False}}})
    sweep = load_sweep(tmp_path / "grids")
    best = best_solver_table(sweep.frame, "w2")
    assert best.loc[0, "NFE 4"].endswith("[euler/edm]") and best.loc[0, "NFE 8"].endswith("[euler/edm]")
    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, *a, **k: figures.append(fig))
    plots.quality_vs_nfe(sweep.frame, "moons", "w2", True, tmp_path)
    labels = {t.get_text() for t in figures[0].axes[0].get_legend().get_texts()}
    assert labels == {"euler", "euler/edm", "dpmpp_2m/logsnr"}


def test_an_nll_the_metric_marked_invalid_says_so_in_the_table_and_is_never_best(tmp_path):
    """A model whose bits/dim the nll metric marked invalid (a mean above log2 L, the uniform model's score) is
    named in its NLL cell, with the reason, and its value is never the column's best."""
    sweep_dir = tmp_path / "fixture"
    records = write_fixture(sweep_dir)
    store = RecordStore(sweep_dir)
    for r in records:
        if r["status"] == "ok":
            bad = r["config"]["method"]["name"] == "rf" and r["config"]["method"].get("k", 1) == 1
            settings = {"solver": "dopri5", "rtol": 1e-4, "nfe": 70, "bpd_valid": not bad, "levels": 17,
                        "bpd_bound": 4.087, "n_nonfinite": 0,
                        "bpd_invalid_reason": "the mean exceeds log2(17)" if bad else None}
            r["metric_info"]["nll"].update(per_model=True, settings=settings)
            r["metrics"]["nll.bpd_median"] = -1.0 if bad else 2.0
            if bad:  # the best numbers of their columns, and invalid
                r["metrics"].update({"nll": -1.0, "nll.bpd": -1.0})
                r["metric_info"]["nll"]["settings"]["n_nonfinite"] = 3  # the mean is over the finite points
            store.write(r)
    report = write_report(sweep_dir)
    (table,) = [t.frame for t in report.sections[0].tables if t.title == "Negative log-likelihood"]
    by = table.set_index("method")["nll.bpd"]
    assert "(invalid on 2 of 2 seeds: non-finite NLL on some points; see the median)" in by["rf"]
    assert unmark(by["rf"])[1] is False and "invalid" not in by["fm_ot"]  # the lowest, yet not marked best
    rf = table.set_index("method").loc["rf"]
    assert unmark(rf["nll"])[1] is False  # the same mean in nats
    assert unmark(rf["nll.bpd_median"])[1] is True  # the median stays comparable


def test_an_invalid_nll_cell_names_the_bound_it_exceeds_or_the_non_finite_points():
    from odebench.bench.report.tables import _why_invalid

    above = {"levels": 17, "bpd_bound": 4.087, "n_nonfinite": 0}
    assert _why_invalid([(above, 9.5)]) == ("mean above log2(17) = 4.087 bits/dim, a uniform model's cost; "
                                            "see the median")
    both = _why_invalid([({**above, "n_nonfinite": 2}, 3.0), (above, 1e6)])
    assert both.startswith("non-finite NLL on some points; mean above log2(17)")
