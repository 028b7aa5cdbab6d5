"""Model weights are safetensors (tensors and a JSON header, no code); caches written before, as torch pickles
(``<key>.<sha16>.pt`` or ``<key>.pt``), still load, and an orphaned ``.pt`` is still recovered."""

from __future__ import annotations

import hashlib
import io
import json
import struct

import torch
from torch import nn

from odebench.bench.harness.store.artifacts import ArtifactStore, read_safetensors, sha256_file

KEY = "d" * 16


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))  # a float and an integer buffer


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_new_weights_are_safetensors_with_the_meta_in_their_header(tmp_path):
    store = ArtifactStore(tmp_path)
    store.save(KEY, _net(0), {"losses": [1.0, 0.5]})
    weights, _ = store.paths(KEY)
    assert weights.suffix == ".safetensors" and weights.name.startswith(KEY + ".")
    blob = weights.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])  # safetensors: an 8-byte header length, a JSON header, raw tensors
    header = json.loads(blob[8:8 + n])
    assert set(header) - {"__metadata__"} == set(_net(0).state_dict())
    assert json.loads(header["__metadata__"]["odebench_meta"])["losses"] == [1.0, 0.5]
    assert b"\x80\x02" not in blob[:2] and not blob.startswith(b"PK")  # neither a pickle nor a torch zip
    fresh = _net(1)
    assert store.load(KEY, fresh)["losses"] == [1.0, 0.5] and _same(fresh, _net(0))
    assert _same_state(read_safetensors(weights)["state_dict"], _net(0).state_dict())


def _same_state(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def _old_pickle(net: nn.Module, meta: dict) -> bytes:
    buf = io.BytesIO()  # the layout of the cache before safetensors
    torch.save({"state_dict": net.state_dict(), "meta": json.dumps({**meta, "key": KEY})}, buf)
    return buf.getvalue()


def test_hash_named_pt_entries_of_an_old_cache_still_load(tmp_path):
    data = _old_pickle(_net(0), {"train_seconds": 2.0})
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / f"{KEY}.{sha[:16]}.pt").write_bytes(data)
    (tmp_path / f"{KEY}.json").write_text(json.dumps({"sha256": sha, "weights": f"{KEY}.{sha[:16]}.pt",
                                                      "train_seconds": 2.0}))
    store = ArtifactStore(tmp_path)
    fresh = _net(1)
    assert store.has(KEY) and store.load(KEY, fresh)["train_seconds"] == 2.0 and _same(fresh, _net(0))
    assert store.quarantine(KEY) is None  # a sound old entry is not moved aside


def test_an_orphaned_pt_of_an_old_cache_is_recovered(tmp_path):
    data = _old_pickle(_net(0), {"losses": [3.0]})
    name = f"{KEY}.{hashlib.sha256(data).hexdigest()[:16]}.pt"
    (tmp_path / name).write_bytes(data)  # weights published, the meta never written
    store = ArtifactStore(tmp_path)
    fresh = _net(1)
    assert store.has(KEY)
    meta = store.load(KEY, fresh)
    assert meta["weights"] == name and meta["recovered"] is True and meta["losses"] == [3.0]
    assert _same(fresh, _net(0)) and sha256_file(tmp_path / name) == meta["sha256"]


def test_an_orphaned_safetensors_file_is_recovered_from_its_header(tmp_path):
    store = ArtifactStore(tmp_path)
    store.save(KEY, _net(0), {"losses": [4.0]})
    weights, meta_path = store.paths(KEY)
    meta_path.unlink()  # as if killed between the weights and the meta
    fresh = _net(1)
    assert store.has(KEY)
    meta = store.load(KEY, fresh)
    assert meta["weights"] == weights.name and meta["recovered"] is True and meta["losses"] == [4.0]
    assert _same(fresh, _net(0)) and meta_path.exists()
