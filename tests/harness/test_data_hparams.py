"""score_ve's sigma_max = "data": resolved from the training split before training, by Song & Ermon's rule,
into the cell's config, its model key, its record and the dry run's output."""

import json

import pytest
from harness_tiny import tiny_spec, to_toml

from odebench.bench.cli import main
from odebench.bench.data import load_dataset
from odebench.bench.harness.execution.data_hparams import resolve_spec
from odebench.bench.harness.execution.plan import model_chain
from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import SpecError, parse_spec
from odebench.methods.diffusion import song_ermon_sigma_max

VE_SOLVERS = [{"name": "euler", "nfe": [2]}]


def rule_on(target: str, data_seed: int = 0) -> float:
    return float(f"{song_ermon_sigma_max(load_dataset(target, data_seed).train):.4g}")


def test_sigma_max_defaults_to_the_data_rule_and_resolves_per_dataset():
    spec = parse_spec(tiny_spec(methods=[{"name": "score_ve"}], targets=("moons", "8gaussians"),
                                solvers=VE_SOLVERS))
    assert {c.method["sigma_max"] for c in spec.cells} == {"data"}
    resolved, notes = resolve_spec(spec)
    got = {c.target: c.method["sigma_max"] for c in resolved.cells}
    assert got == {"moons": rule_on("moons"), "8gaussians": rule_on("8gaussians")}
    assert got["moons"] != got["8gaussians"]
    assert len(notes) == 2 and any("moons" in n and str(got["moons"]) in n for n in notes)
    # resolving twice changes nothing; the resolved number keys the model, so the cell ids change with it
    again, notes_again = resolve_spec(resolved)
    assert [c.id for c in again.cells] == [c.id for c in resolved.cells] and notes_again == []
    assert {c.id for c in resolved.cells}.isdisjoint(c.id for c in spec.cells)
    keys = {model_chain(c)[-1][1] for c in resolved.cells}
    assert len(keys) == 2


def test_a_given_sigma_max_is_kept_and_a_bad_one_refused():
    spec = parse_spec(tiny_spec(methods=[{"name": "score_ve", "sigma_max": 20.0}], solvers=VE_SOLVERS))
    resolved, notes = resolve_spec(spec)
    assert resolved.cells[0].method["sigma_max"] == 20.0 and notes == []
    with pytest.raises(SpecError, match='sigma_max: must be a positive number <= 1000000 or "data"'):
        parse_spec(tiny_spec(methods=[{"name": "score_ve", "sigma_max": "auto"}], solvers=VE_SOLVERS))


def test_the_resolved_sigma_max_is_in_the_record_and_the_dry_run(tmp_path, capsys):
    raw = tiny_spec(methods=[{"name": "score_ve"}], solvers=VE_SOLVERS, train={"steps": 5, "batch_size": 32})
    path = tmp_path / "ve.toml"
    path.write_text(to_toml(raw))
    assert main(["run", "--spec", str(path), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert f"score_ve sigma_max on moons: {rule_on('moons')}" in out
    assert not (tmp_path / "out" / "tiny").exists()
    summary = run_sweep(parse_spec(raw), tmp_path / "out", progress=False)
    [record] = [json.loads(p.read_text()) for p in (summary.out_dir / "cells").glob("*.json")]
    assert record["config"]["method"]["sigma_max"] == rule_on("moons")
