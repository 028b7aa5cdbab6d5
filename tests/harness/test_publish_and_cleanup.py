"""Cleanup and ordering: temp files a killed run left are removed by the next run; a model's weights are
published before the meta that points to them, so a kill between the two never forces a retrain."""

from __future__ import annotations

import json
import os
import time

import pytest
from harness_tiny import tiny_spec

import odebench.bench.harness.execution.run
import odebench.bench.harness.store.artifacts
import odebench.bench.harness.training.train
from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.artifacts import ArtifactStore
from odebench.bench.harness.store.records import RecordStore
from odebench.bench.harness.store.stale_files import remove_stale_temps

SPEC = tiny_spec(name="pub", solvers=[{"name": "euler", "nfe": [2]}])


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs (a BaseException, so no handler in the harness sees it)."""


def test_temp_files_older_than_the_process_are_removed_at_start_and_young_ones_kept(tmp_path):
    out = tmp_path / "out"
    # today's names (.<name>.odebench-<random>.tmp) and, in the folders odebench owns, those from before the tag
    old = [out / "pub" / "cells" / ".abc.json.odebench-k2j3ab_9.tmp", out / ".cache" / "models" / ".k.pt.zz9abcde.tmp",
           out / "pub" / "figures" / ".q.pdf.x1yz0a8b.tmp"]
    young = out / "pub" / "cells" / ".new.json.odebench-a1b2c3d4.tmp"
    keep = out / "pub" / "notes.tmp"  # not one of ours: no leading dot
    for p in [*old, young, keep]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half a file")
    for p in [*old, keep]:
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    os.utime(young, (time.time() + 3600, time.time() + 3600))  # written after this process started
    odebench.bench.harness.execution.run._MODELS.clear()
    summary = run_sweep(parse_spec(SPEC), out, progress=False)
    assert not any(p.exists() for p in old)
    assert young.exists() and keep.exists()
    assert any("removed 3 temp file(s)" in n for n in summary.notes)
    assert remove_stale_temps(out) == []


def test_a_kill_between_weights_and_meta_never_forces_a_retrain(tmp_path, monkeypatch, count_fits):
    out = tmp_path / "out"
    real_write = odebench.bench.harness.store.artifacts.atomic_write_bytes

    def killed_after_weights(path, data, *, root):
        if path.suffix == ".json" and path.parent.name == "models":
            raise Killed()  # the weights are published; the process dies before the meta
        return real_write(path, data, root=root)

    monkeypatch.setattr(odebench.bench.harness.store.artifacts, "atomic_write_bytes", killed_after_weights)
    odebench.bench.harness.execution.run._MODELS.clear()
    with pytest.raises(Killed):
        run_sweep(parse_spec(SPEC), out, progress=False)
    models = out / ".cache" / "models"
    [orphan] = list(models.glob("*.safetensors"))
    assert not list(models.glob("*.json")) and count_fits == ["fm_ot"]
    monkeypatch.setattr(odebench.bench.harness.store.artifacts, "atomic_write_bytes", real_write)

    odebench.bench.harness.execution.run._MODELS.clear()
    summary = run_sweep(parse_spec(SPEC), out, progress=False)
    assert count_fits == ["fm_ot"] and summary.trained == 0 and summary.loaded == 1  # not trained again
    meta = json.loads((models / f"{orphan.name.split('.')[0]}.json").read_text())
    assert meta["weights"] == orphan.name and meta["recovered"] is True and meta["losses"]  # meta restored
    [rec] = RecordStore(out / "pub").records()
    assert rec["status"] == "ok" and rec["timings"]["train_seconds"] > 0


def test_an_orphan_whose_content_does_not_match_its_name_is_not_trusted(tmp_path):
    store = ArtifactStore(tmp_path)
    (tmp_path / f"{'a' * 16}.{'b' * 16}.pt").write_bytes(b"not the file its name promises")
    assert not store.has("a" * 16)


def test_old_caches_with_key_named_weights_still_load(tmp_path):
    import io

    import torch

    from odebench.bench.harness.store.artifacts import sha256_file

    net = torch.nn.Linear(2, 2)
    key = "c" * 16
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)  # the layout before hash-named weights: <key>.pt + <key>.json
    (tmp_path / f"{key}.pt").write_bytes(buf.getvalue())
    (tmp_path / f"{key}.json").write_text(json.dumps({"sha256": sha256_file(tmp_path / f"{key}.pt"),
                                                      "train_seconds": 3.0}))
    store = ArtifactStore(tmp_path)
    other = torch.nn.Linear(2, 2)
    assert store.has(key) and store.load(key, other)["train_seconds"] == 3.0
    assert torch.equal(other.weight, net.weight)
