"""`odebench list` describes every entry on its line; `list KIND -v` and `show NAME` give hparams and options
with their defaults and what combines with what."""

from __future__ import annotations

import re

import pytest

from odebench.bench.cli import main
from odebench.bench.harness.spec import catalog


def test_every_entry_is_one_line_with_its_description(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for category in catalog.CATEGORIES:
        assert re.search(rf"^{category} \(\d+\):$", out, re.M), category
        for name in catalog.names(category):
            line = re.search(rf"^  {re.escape(name)} +(.+)$", out, re.M)
            assert line, f"{category}: {name} has no line"
            text = re.sub(r"^\[[^\]]*\] ", "", line.group(1))  # the [kind] tag alone is no description
            assert len(text) > 10, f"{category}: {name} has no description"
    assert re.search(r"^  euler +\[ode\] Euler's method", out, re.M)
    assert re.search(r"^  quick +Flow matching, 1-/2-rectified flow", out, re.M)
    assert re.search(r"^  fd_digits +\[image, lower is better\]", out, re.M)
    assert re.search(r"^  moons +\[points\]", out, re.M)
    assert re.search(r"^  fm_ot +Flow Matching for Generative Modeling: ", out, re.M)


def test_list_methods_verbose_gives_hparams_solvers_and_metrics(capsys):
    assert main(["list", "methods", "-v"]) == 0
    out = capsys.readouterr().out
    rf = out[out.index("\n  rf "):out.index("\n  score_ve ")]
    assert "hparams (defaults): k = 1, distill = False, n_pairs = 10000" in rf
    assert "solvers: ddim, ddim_eta1, dopri5, dpmpp_2m" in rf and "skipped solvers: ancestral (needs ancestral)" in rf
    assert ("skipped solvers: ancestral (needs ancestral), consistency (needs flow_map), "
            "euler_maruyama (needs sde)") in rf
    points = rf.split("metrics on points data: ")[1].split("\n")[0]
    assert "w2" in points and "fd_digits" not in points
    ddpm = out[out.index("\n  ddpm "):out.index("\n  fm_diffusion ")]
    assert "sampling-only hparams" in ddpm and "ancestral" in ddpm.split("solvers: ")[1].split("\n")[0]


@pytest.mark.parametrize("name, expected", [
    ("dopri5", ["(solver): [ode, adaptive]", "swept by a tolerance", "methods (at default hparams): curvature_min"]),
    ("moons", ["(dataset): [points]", "options (defaults): n_train = 20000, n_test = 5000"]),
    ("mmd", ["(metric):", "reading: The unbiased MMD^2 estimate", "slightly negative"]),
    ("unet", ["(network):", "options (defaults): ch = 64"]),
    ("quick", ["(spec):", "144 cells over 8 trained models"]),
])
def test_show_one_entry(capsys, name, expected):
    assert main(["show", name]) == 0
    out = capsys.readouterr().out
    for text in expected:
        assert text in out, text


def test_show_an_unknown_name_suggests_close_ones(capsys):
    assert main(["show", "dopri"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: nothing is registered as 'dopri' (did you mean dopri5") and "odebench list" in err
    assert len(err.strip().splitlines()) == 1
