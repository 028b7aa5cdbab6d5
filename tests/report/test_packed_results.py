"""Committed results never drift from the code: on every packed results folder (``results/<tier>/`` once a
tier is committed, and the fixture ``tests/fixtures/claims-tiny/``), ``odebench claims`` reproduces the committed
``claims.csv`` and ``odebench report`` the committed ``leaderboard.csv``, byte for byte, and re-packing the records
gives the committed ``records.jsonl.gz``.

The fixture is a real tiny sweep (tests/fixtures/claims_tiny.toml, about a minute on a CPU); after a change that
moves its numbers on purpose, regenerate it with

    odebench run --spec tests/fixtures/claims_tiny.toml --out /tmp/claims-fixture --jobs 1
    odebench pack /tmp/claims-fixture/claims-tiny tests/fixtures/claims-tiny --no-figures

(then delete the pack's leaderboard.md/.html/.tex and index.html, which the tests do not read).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from odebench.bench.cli import main
from odebench.bench.harness.store.packed import PACKED, pack_bytes, read_packed

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = sorted(p for p in (ROOT / "results").glob("*/") if (p / PACKED).is_file())
FOLDERS.append(ROOT / "tests" / "fixtures" / "claims-tiny")


@pytest.fixture(params=FOLDERS, ids=lambda p: p.relative_to(ROOT).as_posix())
def packed_copy(request, tmp_path):
    """A writable copy of a committed packed folder (the committed one is never written to)."""
    copy = tmp_path / request.param.name
    shutil.copytree(request.param, copy)
    return request.param, copy


def test_claims_reproduce_the_committed_claims_csv(packed_copy, capsys):
    committed, copy = packed_copy
    (copy / "claims.csv").unlink()
    assert main(["claims", str(copy)]) == 0
    assert (copy / "claims.csv").read_bytes() == (committed / "claims.csv").read_bytes()
    assert "verdict" in capsys.readouterr().out


def test_report_reproduces_the_committed_leaderboard_csv(packed_copy):
    committed, copy = packed_copy
    (copy / "leaderboard.csv").unlink()
    assert main(["report", str(copy), "--no-figures"]) == 0
    assert (copy / "leaderboard.csv").read_bytes() == (committed / "leaderboard.csv").read_bytes()
    assert (copy / "claims.csv").read_bytes() == (committed / "claims.csv").read_bytes()  # the report writes it too
    assert not (copy / "cells").exists()


def test_the_pack_is_canonical(packed_copy):
    committed, _ = packed_copy
    records, corrupt = read_packed(committed / PACKED)
    assert not corrupt and records
    assert pack_bytes(records) == (committed / PACKED).read_bytes()


def test_the_committed_results_stay_under_30_mb_and_every_sample_sheet_under_400_kb():
    """The reference results travel with every clone: the folder stays small, and so does each sample sheet (a
    palette PNG with the points a panel cut to the sheet's size, odebench.bench.report.model_figures)."""
    files = [p for p in (ROOT / "results").rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 30_000_000
    sheets = [p for p in files if p.name.startswith("samples_") and p.suffix == ".png"]
    assert sheets
    too_big = {p.relative_to(ROOT).as_posix(): p.stat().st_size for p in sheets if p.stat().st_size > 400_000}
    assert not too_big
