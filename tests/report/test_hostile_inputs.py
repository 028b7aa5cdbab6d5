"""The report and the claims read whatever a results folder holds, and never with a traceback: every record, pack
line, floors.json entry and file type is checked, and what fails is named in the page's notes (``odebench report``
exits 0), or, where nothing usable is left, in one ``error:`` line (``odebench claims`` exits 2). Special files and
oversize inputs are refused before they are read; a cell id twice in a pack is never averaged."""

from __future__ import annotations

import contextlib
import copy
import gzip
import io
import json
import math
import os
import zlib
from pathlib import Path

import pytest
from alarms import no_hang
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_report import write_fixture

import odebench.bench.harness.guards.bounded_read as bounded_read
import odebench.bench.harness.store.packed as packed
from odebench.bench.cli import main
from odebench.bench.core.hashing import config_hash
from odebench.bench.harness.spec.sweep import Cell
from odebench.bench.harness.store.packed import PACKED, pack_bytes, read_packed
from odebench.bench.report import floors as fl
from odebench.bench.report.build import write_report
from odebench.bench.report.tables import load_sweep, summary_frame

#: notes that say a whole table, the claims or a figure was lost to one record: never acceptable
LOST = ("tables not built", "claims not checked", "not drawn", "floors not computed")

NLL_SETTINGS = {"solver": "dopri5", "rtol": 1e-5, "nfe": 122, "divergence": "hutchinson", "n_probes": 1}
TRAINING = {"cost": {"steps": 30, "forward_equivalents_per_step": 3.0, "params_total": 500, "total_flops": 9e6,
                     "total_seconds": 1.0},
            "heldout": {"steps": [0, 10, 20, 30, 40, 50, 60, 70], "loss": [3.0, 2.0, 1.6, 1.5, 1.45, 1.44, 1.44, 1.44]},
            "convergence": {"converged": True}}


# ------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[list[dict], bytes]:
    """Sound records (the report fixture's, with a per-model NLL and a training block, so those tables are read
    too) and the floors.json their report computes (copied into every folder, so no test recomputes it)."""
    sweep = tmp_path_factory.mktemp("base") / "fixture"
    records = write_fixture(sweep)
    for r in records:
        r["training"] = copy.deepcopy(TRAINING)
        if r["status"] == "ok":
            r["metric_info"]["nll"].update(per_model=True, settings=dict(NLL_SETTINGS))
    packed_dir = tmp_path_factory.mktemp("base") / "packed"
    packed_dir.mkdir()
    (packed_dir / PACKED).write_bytes(pack_bytes(records))
    write_report(packed_dir, figures=False)
    return records, (packed_dir / fl.FLOOR_FILE).read_bytes()


@pytest.fixture(autouse=True)
def known_floors(base, monkeypatch):
    """A floor computed again comes from the base floors.json (the same numbers, without the seconds of metric
    computations per test); a floor of any other key is a test error."""
    entries = json.loads(base[1])["floors"]

    def compute(target, data_seed, data_options, n, metric, options):
        entry = entries[config_hash(fl.floor_key(target, data_seed, data_options, n, metric, options))]
        return {k: copy.deepcopy(v) for k, v in entry.items() if k != "key"}

    monkeypatch.setattr(fl, "compute_floor", compute)


def lines_of(records: list[dict]) -> list[str]:
    return [json.dumps(r, sort_keys=True, separators=(",", ":")) for r in records]


def pack_folder(folder: Path, lines: list[str], floors: bytes | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PACKED).write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    if floors is not None:
        (folder / fl.FLOOR_FILE).write_bytes(floors)
    return folder


def cells_folder(folder: Path, records: list[dict], floors: bytes | None) -> Path:
    (folder / "cells").mkdir(parents=True, exist_ok=True)
    for r in records:
        (folder / "cells" / f"{r['cell_id']}.json").write_text(json.dumps(r))
    if floors is not None:
        (folder / fl.FLOOR_FILE).write_bytes(floors)
    return folder


def run_cli(*argv: str) -> tuple[int, str, str]:
    """``odebench ARGV``: (exit code, stdout, stderr); an exception (a traceback) fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------------- the cases of the issue
def test_a_metric_too_large_for_a_float_is_named_and_left_out(base, tmp_path):
    records, floors = base
    bad = copy.deepcopy(records[0])
    bad["metrics"]["w2"] = 10**400  # valid JSON; float() of it overflows
    folder = pack_folder(tmp_path / "p", lines_of([bad, *records[1:]]), floors)
    code, _, err = run_cli("report", str(folder), "--no-figures")
    assert code == 0 and "Traceback" not in err
    page = (folder / "index.html").read_text()
    assert f"pack line {PACKED}:1 is unsound (metric &#x27;w2&#x27; is too large for a float)" in page
    cells = cells_folder(tmp_path / "c", [bad, *records[1:]], floors)
    assert run_cli("report", str(cells), "--no-figures")[0] == 0
    assert f"record {bad['cell_id']}.json is corrupt (metric &#x27;w2&#x27; is too large" in (
        cells / "index.html").read_text()


def test_a_cell_twice_in_a_pack_is_never_averaged(base, tmp_path):
    records, floors = base
    victim = next(r for r in records if r["status"] == "ok" and r["config"]["seed"] == 0)
    forged = copy.deepcopy(victim)
    forged["metrics"]["w2"] = 999.0
    folder = pack_folder(tmp_path / "p", [*lines_of(records), *lines_of([forged])], floors)
    code, _, err = run_cli("report", str(folder), "--no-figures")
    assert code == 0
    assert f"cell {victim['cell_id']} is also on line(s) {len(records) + 1}, with different content" in err
    summary = summary_frame(load_sweep(folder))
    assert summary["n_seeds"].sum() == len(records) - 1  # neither copy counts, and nothing else is lost
    assert summary["w2_mean"].max() < 10  # never (w2 + 999) / 2


def test_an_identical_second_copy_counts_once_with_a_note(base, tmp_path):
    records, floors = base
    folder = pack_folder(tmp_path / "p", [*lines_of(records), lines_of(records)[3]], floors)
    code, _, err = run_cli("report", str(folder), "--no-figures")
    assert code == 0 and f"a second copy of cell {records[3]['cell_id']} (line 4); counted once" in err
    assert len(load_sweep(folder).records) == len(records)


def test_read_packed_names_every_copy_of_a_duplicated_cell(base, tmp_path):
    records, _ = base
    other = copy.deepcopy(records[0])
    other["reason"] = "a different run"
    folder = pack_folder(tmp_path / "p", [*lines_of(records), *lines_of([other, other])], None)
    sound, corrupt = read_packed(folder / PACKED)
    n = len(records)
    assert {r["cell_id"] for r in sound} == {r["cell_id"] for r in records[1:]}
    assert sorted(int(str(p).rsplit(":", 1)[1]) for p in corrupt) == [1, n + 1, n + 2]
    assert all(records[0]["cell_id"] in why for why in corrupt.values())


def corrupt_deflate(data: bytes) -> bytes:
    raw = bytearray(data)
    raw[30:40] = b"\xff" * 10  # inside the deflate stream, past the gzip header
    return bytes(raw)


def test_a_corrupt_deflate_stream_is_a_note_and_claims_say_so(base, tmp_path):
    records, floors = base
    folder = pack_folder(tmp_path / "p", lines_of(records), floors)
    (folder / PACKED).write_bytes(corrupt_deflate((folder / PACKED).read_bytes()))
    code, _, err = run_cli("report", str(folder), "--no-figures")
    assert code == 0 and "Traceback" not in err
    page = (folder / "index.html").read_text()
    assert f"pack {folder / PACKED} is unreadable (damaged gzip stream: error: Error -3" in page
    assert "run the sweep first" not in page
    code, out, err = run_cli("claims", str(folder), "--no-write")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert f"pack {folder / PACKED} is unreadable (damaged gzip stream" in err and "run the sweep first" not in err


@pytest.mark.parametrize("damage", ["truncated", "crc", "not gzip", "not utf-8"])
def test_other_damaged_packs_are_named_with_their_cause(base, tmp_path, damage):
    records, floors = base
    folder = pack_folder(tmp_path / "p", lines_of(records), floors)
    data = (folder / PACKED).read_bytes()
    data = {"truncated": data[: len(data) // 2], "crc": data[:-8] + bytes(8), "not gzip": b"{}\n" * 10,
            "not utf-8": gzip.compress(b"\xff\xfe\n")}[damage]
    (folder / PACKED).write_bytes(data)
    code, _, err = run_cli("claims", str(folder), "--no-write")
    assert code == 2 and err.startswith(f"error: {folder} holds no sound record") and err.count("\n") == 1
    assert f"pack {folder / PACKED} is unreadable" in err


def test_a_gzip_bomb_is_refused_before_it_fills_the_memory(base, tmp_path, monkeypatch):
    records, floors = base
    monkeypatch.setattr(packed, "MAX_PACK_BYTES", 2**20)  # a bomb of 8 MiB stands in for one of many GiB
    folder = pack_folder(tmp_path / "p", lines_of(records), floors)
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = co.compress("\n".join(lines_of(records)).encode()) + co.compress(b" " * 8 * 2**20) + co.flush()
    (folder / PACKED).write_bytes(bomb)
    assert len(bomb) < 2**20  # the compressed file is small: only inflating it shows its size
    code, _, err = run_cli("report", str(folder), "--no-figures")
    assert code == 0 and "expands past 1,048,576 bytes" in err
    assert "expands past 1,048,576 bytes" in run_cli("claims", str(folder), "--no-write")[2]


def test_inflating_a_pack_stops_at_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(packed, "CHUNK", 1000)
    path = tmp_path / PACKED
    path.write_bytes(gzip.compress(b"x" * 10**6))
    read = []
    real = gzip.GzipFile.read

    def counting(self, size=-1):
        read.append(size)
        return real(self, size)

    monkeypatch.setattr(gzip.GzipFile, "read", counting)
    with pytest.raises(bounded_read.RefusedFile):
        packed.inflate_pack(path, limit=5000)
    assert all(0 < n <= 1000 for n in read) and len(read) <= 6  # chunks, never the whole stream at once


def test_special_record_files_are_refused_before_reading(base, tmp_path):
    records, floors = base
    folder = cells_folder(tmp_path / "c", records, floors)
    for r in records[:2]:
        (folder / "cells" / f"{r['cell_id']}.json").unlink()
    os.mkfifo(folder / "cells" / f"{records[0]['cell_id']}.json")
    (folder / "cells" / f"{records[1]['cell_id']}.json").symlink_to("/dev/zero")
    with no_hang():
        code, _, err = run_cli("report", str(folder), "--no-figures")
    assert code == 0
    assert f"record {records[0]['cell_id']}.json is corrupt (the file is a FIFO, not a regular file" in err
    assert f"record {records[1]['cell_id']}.json is corrupt (the file is a character device, not a regular" in err


def test_an_oversize_record_file_is_refused_before_reading(base, tmp_path, monkeypatch):
    records, floors = base
    monkeypatch.setattr(bounded_read, "MAX_RECORD_BYTES", 4096)
    import odebench.bench.harness.store.records as records_module

    monkeypatch.setattr(records_module, "MAX_RECORD_BYTES", 4096)
    big = copy.deepcopy(records[0])
    big["environment"] = {"padding": "x" * 5000}
    folder = cells_folder(tmp_path / "c", [big, *records[1:]], floors)
    code, _, err = run_cli("report", str(folder), "--no-figures")
    assert code == 0 and f"record {big['cell_id']}.json is corrupt (the file holds" in err
    assert "more than the 4,096 this file may hold" in err


def test_a_special_pack_floors_file_or_manifest_never_hangs(base, tmp_path):
    records, floors = base
    folder = pack_folder(tmp_path / "p", lines_of(records), None)
    os.mkfifo(folder / fl.FLOOR_FILE)
    os.mkfifo(folder / "sweep.json")
    with no_hang():
        code, _, err = run_cli("report", str(folder), "--no-figures")
    assert code == 0 and f"{fl.FLOOR_FILE} unreadable (it is a FIFO" in err
    special = tmp_path / "s"
    special.mkdir()
    os.mkfifo(special / PACKED)
    with no_hang():
        code, _, err = run_cli("claims", str(special), "--no-write")
    assert code == 2 and "is unreadable (the file is a FIFO, not a regular file" in err


def floor_entries(floors: bytes) -> dict:
    return json.loads(floors)["floors"]


def _broken(entry: dict, how: str):
    e = copy.deepcopy(entry)
    col = next(iter(e["values"]))
    changes = {
        "list": [], "number": 3, "no key": {k: v for k, v in e.items() if k != "key"}, "key a list": {**e, "key": []},
        "values a list": {**e, "values": [1, 2]}, "values missing": {k: v for k, v in e.items() if k != "values"},
        "column a number": {**e, "values": {col: 0.5}}, "a draw a string": {**e, "values": {col: ["0.1"] * 5}},
        "a huge integer": {**e, "values": {col: [10**400] * 5}}, "NaN": {**e, "values": {col: [math.nan] * 5}},
        "too few draws": {**e, "values": {col: [0.1]}}, "n a string": {**e, "n": "64"},
        "n missing": {k: v for k, v in e.items() if k != "n"},
        "draw missing": {k: v for k, v in e.items() if k != "draw"},
        "a bool draw": {**e, "values": {col: [True] * 5}}, "another key": {**e, "key": {**e["key"], "n_samples": 1}},
    }
    return changes[how]


@pytest.mark.parametrize("how", ["list", "number", "no key", "key a list", "values a list", "values missing",
                                 "column a number", "a draw a string", "a huge integer", "NaN", "too few draws",
                                 "n a string", "n missing", "draw missing", "a bool draw", "another key"])
def test_a_malformed_floor_entry_is_named_and_computed_again(base, tmp_path, how):
    records, floors = base
    entries = floor_entries(floors)
    name = sorted(entries)[0]
    broken = {**entries, name: _broken(entries[name], how)}
    body = json.dumps({"floors": broken}, allow_nan=True).encode()
    folder = pack_folder(tmp_path / "p", lines_of(records), body)
    code, _, err = run_cli("report", str(folder), "--no-figures")
    assert code == 0 and f"{fl.FLOOR_FILE}: entry {name!r} " in err and "not used" in err, err
    assert floor_entries((folder / fl.FLOOR_FILE).read_bytes())[name] == entries[name]  # computed again
    assert run_cli("claims", str(folder), "--no-write")[0] == 0


@pytest.mark.parametrize("body", [b"[]", b'{"floors": []}', b'{"floors": 3}', b"not json", b"[" * 100000])
def test_a_malformed_floors_file_is_named(base, tmp_path, body):
    records, _ = base
    folder = pack_folder(tmp_path / "p", lines_of(records), body)
    code, _, err = run_cli("report", str(folder), "--no-figures")
    assert code == 0 and f"note: {fl.FLOOR_FILE} " in err and "every floor is computed again" in err
    assert not [n for n in LOST if n in err]


# ----------------------------------------------------------------------------------- hostile records, fuzzed
HOSTILE_VALUES = st.one_of(
    st.sampled_from([10**400, -(10**400), 2**63, "NaN", "nan", "inf", "", [1.0], {"a": 1}, True, False, None, 0, -1,
                     [[[[[]]]]], {"": {"": {}}}, "x" * 2000, "<b>1</b>"]),
    st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(max_size=8),
    st.lists(st.floats(allow_nan=False), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
#: where a hostile value goes: every key of a record the report or the claims read
PLACES = [
    ("metrics",), ("metrics", "w2"), ("metrics", "nll"), ("metrics", "sliced_w"), ("metrics", ""), ("metrics", "seed"),
    ("metrics", "metric_failures"), ("metrics", "hp.k"), ("metrics", "<i>x</i>"), ("metric_info",),
    ("metric_info", "w2"), ("metric_info", "w2", "higher_is_better"), ("metric_info", "nll", "per_model"),
    ("metric_info", "nll", "settings"), ("metric_info", "nll", "settings", "nfe"),
    ("metric_info", "nll", "settings", "rtol"), ("metric_info", "nll", "settings", "solver"),
    ("metric_info", "nll", "settings", "divergence"), ("metric_info", "w2", "status"), ("metric_failures",),
    ("metric_failures", "w2"), ("timings",), ("timings", "train_seconds"), ("nfe",), ("nfe_requested",), ("status",),
    ("reason",), ("model_key",), ("cell_id",), ("config_hash",), ("schema_version",), ("training",),
    ("training", "cost"), ("training", "cost", "total_flops"), ("training", "cost", "steps"), ("training", "heldout"),
    ("training", "heldout", "loss"), ("training", "heldout", "steps"), ("training", "convergence"),
    ("training", "convergence", "converged"), ("runtime",), ("runtime", "precision"), ("environment",),
    ("sample_sheet",), ("config",), ("config", "nfe"), ("config", "tol"), ("config", "seed"), ("config", "data_seed"),
    ("config", "eval"), ("config", "eval", "n_samples"), ("config", "eval", "metric_options"),
    ("config", "eval", "metric_options", "w2"), ("config", "method"), ("config", "method", "k"),
    ("config", "method", "name"), ("config", "data_options"), ("config", "target"), ("config", "source"),
    ("config", "grid"), ("config", "solver"), ("config", "train"), ("config", "net"),
]
#: whole lines that are not a record at all
RAW_LINES = ["null", "[]", "3", '"record"', "{", "NaN", "[" * 100000 + "]" * 100000, '{"a":' * 5000 + "1" + "}" * 5000,
             "\x00\x01", "{}"]


def place(record: dict, path: tuple, value) -> dict:
    """``record`` with ``value`` at ``path`` (objects made on the way); a config change is re-hashed into the
    cell id where it can be, so the forged record passes the id check and reaches the tables."""
    out = copy.deepcopy(record)
    node = out
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    if path[0] == "config":
        try:
            out["cell_id"] = out["config_hash"] = Cell(**out["config"]).id
        except Exception:
            pass
    return out


@st.composite
def hostile_inputs(draw, n_records: int) -> tuple[int, str | dict]:
    """(index of the sound record it replaces or joins, a forged record or a raw line)."""
    i = draw(st.integers(0, n_records - 1))
    if draw(st.integers(0, 5)) == 0:
        return i, draw(st.sampled_from(RAW_LINES))
    changes = draw(st.lists(st.tuples(st.sampled_from(PLACES), HOSTILE_VALUES), min_size=1, max_size=3))
    return i, changes


def forged(records: list[dict], item) -> str | dict:
    i, what = item
    if isinstance(what, str):
        return what
    record = records[i]
    for path, value in what:
        record = place(record, path, value)
    return record


def check_total(folder: Path) -> None:
    """The report and the claims of ``folder`` end cleanly; every unsound input is named on the page."""
    code, _, err = run_cli("report", str(folder), "--no-figures")
    assert code == 0, err
    page = (folder / "index.html").read_text()
    sweep = load_sweep(folder)
    for path in sweep.corrupt:
        assert path.name in page
    assert not [n for n in LOST if n in err], err
    code, _, err = run_cli("claims", str(folder), "--no-write")
    assert code == 0 or (code == 2 and err.startswith("error: ") and err.count("\n") == 1), err


#: hostile records that reached past the schema before: each broke a whole table, the floors or the report
KNOWN = [(("metrics", "w2"), 10**400), (("config", "nfe"), 10**400), (("config", "tol"), 0.0), (("config", "eval"), {}),
         (("config", "eval", "metric_options"), {"w2": 3}), (("metric_info", "nll", "settings"), "dopri5"),
         (("metric_info", "nll", "settings", "nfe"), "many"), (("training", "cost"), []),
         (("training", "cost", "total_flops"), "9e6"), (("training", "heldout", "steps"), [0, 1]),
         (("metric_failures", "w2"), {"why": 1}), (("metrics", "metric_failures"), 1.0)]


@pytest.mark.parametrize("where, value", KNOWN, ids=[".".join(w) for w, _ in KNOWN])
def test_known_hostile_records_are_named_and_the_report_is_written(base, tmp_path, where, value):
    records, floors = base
    i = next(i for i, r in enumerate(records) if r["status"] == "ok")
    bad = place(records[i], where, value)
    folder = cells_folder(tmp_path / "c", [r for j, r in enumerate(records) if j != i], floors)
    (folder / "cells" / f"{bad['cell_id']}.json").write_text(json.dumps(bad))
    check_total(folder)
    assert bad["cell_id"] in "\n".join(str(p) for p in load_sweep(folder).corrupt)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_hostile_pack_lines_are_named_and_the_report_is_written(base, tmp_path_factory, data):
    records, floors = base
    items = data.draw(st.lists(hostile_inputs(len(records)), min_size=1, max_size=3))
    lines = lines_of(records)
    for item in items:
        bad = forged(records, item)
        line = bad if isinstance(bad, str) else json.dumps(bad, allow_nan=True)
        if data.draw(st.booleans()):
            lines[item[0]] = line  # in place of the sound record
        else:
            lines.append(line)  # beside it: a duplicate cell id where the id was kept
    check_total(pack_folder(tmp_path_factory.mktemp("hostile") / "p", lines, floors))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_hostile_record_files_are_named_and_the_report_is_written(base, tmp_path_factory, data):
    records, floors = base
    folder = cells_folder(tmp_path_factory.mktemp("hostile") / "c", records, floors)
    for item in data.draw(st.lists(hostile_inputs(len(records)), min_size=1, max_size=3)):
        bad = forged(records, item)
        name = records[item[0]]["cell_id"]
        if isinstance(bad, dict) and isinstance(bad.get("cell_id"), str) and bad["cell_id"].isalnum():
            name = bad["cell_id"]
        text = bad if isinstance(bad, str) else json.dumps(bad, allow_nan=True)
        (folder / "cells" / f"{name}.json").write_text(text)
    check_total(folder)


def test_floor_entries_the_report_writes_pass_their_own_check(base):
    _, floors = base
    for name, entry in floor_entries(floors).items():
        assert fl.entry_problem(name, entry) is None
        assert config_hash(entry["key"]) == name
