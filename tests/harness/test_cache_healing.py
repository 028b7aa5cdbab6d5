"""A cached model that cannot be used is healed by the next run, whatever its hash says: a weights file that is
not a regular file (a FIFO, a link to ``/dev/zero``, a folder) is refused by its type before a byte is hashed, so
nothing hangs; a safetensors file whose header does not describe its size (truncated, hostile) by its layout; and
one whose hash matches its meta but still does not load (a pickle, a wrong shape, a header that lies about its
tensors) when it is loaded. Each is moved aside inside the cache (``<name>.corrupt``, nothing deleted, a link
moved as the link), the run's notes and the cells' records (``model_cache_note``) say which file and why, and the
model is trained again, bit for bit; the dry run lists such a model as "to train" with the reason."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from alarms import no_hang
from harness_tiny import tiny_spec, to_toml
from safetensors.torch import save
from threads import torch_threads
from torch import nn

import odebench.bench.harness.execution.run
import odebench.bench.harness.training.train
from odebench.bench.cli import main
from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.artifacts import ArtifactStore, CorruptArtifact
from odebench.bench.harness.store.records import RecordStore

SPEC = tiny_spec(name="heal", solvers=[{"name": "euler", "nfe": [4]}])  # one model, one cell


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("first")
    odebench.bench.harness.execution.run._MODELS.clear()
    run_sweep(parse_spec(SPEC), out, progress=False)
    [rec] = RecordStore(out / "heal").records()
    return out, rec


def _entry(out: Path) -> tuple[Path, Path, dict]:
    """(weights, meta path, meta) of the one cached model under ``out``."""
    [meta_path] = (out / ".cache" / "models").glob("*.json")
    meta = json.loads(meta_path.read_text())
    return meta_path.with_name(meta["weights"]), meta_path, meta


def _with_matching_hash(data: bytes) -> Callable[[Path, Path, dict], None]:
    """Replace the weights by ``data`` and record its SHA-256 in the meta, as a tamperer (or a bug) would."""

    def damage(weights: Path, meta_path: Path, meta: dict) -> None:
        weights.write_bytes(data)
        meta_path.write_text(json.dumps({**meta, "sha256": hashlib.sha256(data).hexdigest()}))

    return damage


def _transform(fn: Callable[[bytes], bytes]) -> Callable[[Path, Path, dict], None]:
    def damage(weights: Path, meta_path: Path, meta: dict) -> None:
        _with_matching_hash(fn(weights.read_bytes()))(weights, meta_path, meta)

    return damage


def _header(entries: dict, payload: bytes) -> bytes:
    text = json.dumps(entries).encode()
    return struct.pack("<Q", len(text)) + text + payload


def _pickle_of(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class _RunsCode:
    def __reduce__(self):
        return os.system, ("echo pwned",)


def _legacy_pickle(data: bytes) -> Callable[[Path, Path, dict], None]:
    """A cache from before safetensors: ``<key>.pt`` named by no hash, its meta naming no file."""

    def damage(weights: Path, meta_path: Path, meta: dict) -> None:
        weights.unlink()
        legacy = meta_path.with_suffix(".pt")
        legacy.write_bytes(data)
        meta = {k: v for k, v in meta.items() if k != "weights"}
        meta_path.write_text(json.dumps({**meta, "sha256": hashlib.sha256(data).hexdigest()}))

    return damage


def _replace_by(make: Callable[[Path], None]) -> Callable[[Path, Path, dict], None]:
    def damage(weights: Path, meta_path: Path, meta: dict) -> None:
        weights.unlink()
        make(weights)

    return damage


def _wrong_net() -> bytes:
    torch.manual_seed(0)
    return save({"weight": nn.Linear(5, 7).weight.detach().clone()})


#: (damage, what the note says) -- hash-matching damage first, then files refused by type or layout
SCENARIOS = {
    "pickle-in-safetensors": (_transform(lambda b: _pickle_of({"weight": torch.zeros(3)})), "not a safetensors"),
    "code-pickle-in-safetensors": (_with_matching_hash(_pickle_of(_RunsCode())), "not a safetensors"),
    "wrong-shape-safetensors": (_with_matching_hash(_wrong_net()), "does not fit the network"),
    "truncated-safetensors": (_transform(lambda b: b[: len(b) // 2]), "truncated"),
    "padded-safetensors": (_transform(lambda b: b + b"\0" * 64), "bytes added after the data"),
    "huge-header-length": (_transform(lambda b: struct.pack("<Q", 2**63) + b[8:]), "-byte header"),
    "header-not-json": (_with_matching_hash(_header({}, b"")[:8] + b"\xff\xfe"), "not JSON"),
    "header-nested": (_with_matching_hash(struct.pack("<Q", 200_000) + b"[" * 100_000 + b"]" * 100_000),
                      "not JSON"),
    "header-lies-about-tensors": (_with_matching_hash(_header(
        {"v.net.0.weight": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 8]}}, b"\0" * 8)),
        "does not load"),
    "legacy-pt-with-code": (_legacy_pickle(_pickle_of(_RunsCode())), "does not load"),
    "legacy-pt-truncated": (_legacy_pickle(_pickle_of({"weight": torch.zeros(64)})[:100]), "does not load"),
    "empty": (_with_matching_hash(b""), "is empty"),
    "fifo": (_replace_by(os.mkfifo), "is a FIFO (named pipe), not a regular file"),
    "link-to-dev-zero": (_replace_by(lambda p: p.symlink_to("/dev/zero")), "is a character device"),
    "folder": (_replace_by(Path.mkdir), "is a folder"),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_cached_model_that_cannot_be_used_is_moved_aside_and_trained_again(first_run, tmp_path, count_fits,
                                                                             scenario):
    damage, reason = SCENARIOS[scenario]
    out = tmp_path / "out"
    shutil.copytree(first_run[0] / ".cache", out / ".cache", symlinks=True)
    weights, meta_path, meta = _entry(out)
    damage(weights, meta_path, meta)
    weights = meta_path.with_name(json.loads(meta_path.read_text()).get("weights", f"{meta_path.stem}.pt"))
    kind = os.lstat(weights).st_mode
    content = weights.read_bytes() if stat.S_ISREG(kind) else None
    odebench.bench.harness.execution.run._MODELS.clear()
    with no_hang(120):
        summary = run_sweep(parse_spec(SPEC), out, progress=False)
    assert (summary.trained, summary.status_counts) == (1, {"ok": 1})
    assert len(count_fits) == 1
    [note] = [n for n in summary.notes if "cached model" in n]
    assert weights.name in note and reason in note and f"{weights.name}.corrupt" in note, note
    moved = weights.with_name(weights.name + ".corrupt")  # kept, as it was: never deleted, a link kept a link
    assert stat.S_IFMT(os.lstat(moved).st_mode) == stat.S_IFMT(kind)
    if content is not None:
        assert moved.read_bytes() == content
    if stat.S_ISLNK(kind):
        assert os.readlink(moved) == "/dev/zero"
    [rec] = RecordStore(out / "heal").records()
    assert rec["metrics"] == first_run[1]["metrics"]  # trained again bit for bit
    assert rec["model_cache_note"] == note  # the cell's record says what happened to its model
    fresh, _, _ = _entry(out)
    assert fresh.is_file() and ArtifactStore(fresh.parent).has(meta_path.stem)


def test_the_dry_run_says_a_model_whose_weights_are_a_fifo_will_be_trained(first_run, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(first_run[0] / ".cache", out / ".cache")
    weights, _, _ = _entry(out)
    weights.unlink()
    os.mkfifo(weights)
    spec = tmp_path / "heal.toml"
    spec.write_text(to_toml(SPEC))
    with no_hang(60):
        assert main(["run", "--spec", str(spec), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "(1 to train, 0 cached)" in text
    assert f"cached file refused: {weights.name} is a FIFO (named pipe), not a regular file" in text
    assert stat.S_ISFIFO(os.lstat(weights).st_mode)  # the dry run moves nothing


def test_a_read_only_store_reports_a_file_that_fails_to_load_and_moves_nothing(tmp_path):
    store = ArtifactStore(tmp_path)
    torch.manual_seed(0)
    store.save("0123456789abcdef", nn.Linear(3, 2), {})
    weights, meta_path = store.paths("0123456789abcdef")
    _with_matching_hash(_wrong_net())(weights, meta_path, json.loads(meta_path.read_text()))
    reader = ArtifactStore(tmp_path, read_only=True)
    with pytest.raises(CorruptArtifact) as info:
        reader.load("0123456789abcdef", nn.Linear(3, 2))
    assert reader.quarantine("0123456789abcdef", info.value) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([weights.name, meta_path.name])


def test_a_file_replaced_since_it_failed_is_not_moved_aside(tmp_path):
    """Another process healed the model in between (moved the bad file aside, trained, published): the stale
    failure moves nothing, so the fresh model is never taken for the corrupt one."""
    store = ArtifactStore(tmp_path)
    torch.manual_seed(0)
    store.save("0123456789abcdef", nn.Linear(3, 2), {})
    weights, meta_path = store.paths("0123456789abcdef")
    good = weights.read_bytes()
    _with_matching_hash(_wrong_net())(weights, meta_path, json.loads(meta_path.read_text()))
    with pytest.raises(CorruptArtifact) as info:
        store.load("0123456789abcdef", nn.Linear(3, 2))
    tmp = weights.with_name("fresh")
    tmp.write_bytes(good)
    os.replace(tmp, weights)  # a new file (a new inode) under the same name
    assert store.quarantine("0123456789abcdef", info.value) is None
    assert weights.read_bytes() == good and not weights.with_name(weights.name + ".corrupt").exists()


def test_moving_aside_never_overwrites_an_earlier_corrupt_copy(tmp_path):
    store = ArtifactStore(tmp_path)
    torch.manual_seed(0)
    store.save("0123456789abcdef", nn.Linear(3, 2), {})
    weights, meta_path = store.paths("0123456789abcdef")
    earlier = weights.with_name(weights.name + ".corrupt")
    earlier.write_bytes(b"an earlier corrupt copy")
    weights.write_bytes(weights.read_bytes()[:-1])
    note = store.quarantine("0123456789abcdef")
    assert f"{weights.name}.corrupt.2" in note
    assert earlier.read_bytes() == b"an earlier corrupt copy"
    assert weights.with_name(weights.name + ".corrupt.2").exists()
