"""``odebench claims`` and ``odebench pack`` on the command line: outputs, and mistakes as one error line."""

from __future__ import annotations

import shutil
from pathlib import Path

from odebench.bench.cli import main

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "claims-tiny"


def test_claims_of_a_folder_without_records_is_a_usage_error(tmp_path, capsys):
    assert main(["claims", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "records.jsonl.gz" in err


def test_claims_no_write_writes_nothing(tmp_path, capsys):
    copy = tmp_path / "c"
    shutil.copytree(FIXTURE, copy)
    before = sorted(p.name for p in copy.iterdir())
    (copy / "claims.csv").unlink()
    assert main(["claims", str(copy), "--no-write"]) == 0
    assert sorted(p.name for p in copy.iterdir()) == [n for n in before if n != "claims.csv"]
    assert "holds" in capsys.readouterr().out


def test_pack_refuses_what_is_not_a_sweep_and_packs_one(tmp_path, capsys):
    assert main(["pack", str(FIXTURE), str(tmp_path / "p")]) == 2  # a pack is not a sweep folder
    assert "not a sweep folder" in capsys.readouterr().err
    from odebench.bench.harness.store.packed import read_packed
    from odebench.bench.harness.store.records import RecordStore

    records, _ = read_packed(FIXTURE / "records.jsonl.gz")
    sweep = tmp_path / "runs" / "claims-tiny"
    store = RecordStore(sweep)
    for r in records:
        store.write(r)
    dest = tmp_path / "results" / "claims-tiny"
    assert main(["pack", str(sweep), str(dest), "--no-figures"]) == 0
    assert (dest / "records.jsonl.gz").read_bytes() == (FIXTURE / "records.jsonl.gz").read_bytes()
    assert (dest / "leaderboard.csv").read_bytes() == (FIXTURE / "leaderboard.csv").read_bytes()
    assert (dest / "claims.csv").read_bytes() == (FIXTURE / "claims.csv").read_bytes()
    assert "odebench:claims" in (dest / "index.html").read_text()
    assert main(["pack", str(sweep), str(sweep / "inside")]) == 2
