"""Weights published without their meta (a run killed in between) are recovered from the meta embedded in the
weights file: the restored meta names the key it is stored under, the file and its hash, and is marked
recovered; it is written back in the same stable JSON as a saved meta, except by a read-only store; a file
whose embedded meta cannot be read, or no file at all, is refused with a CorruptArtifact that says so."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import torch
from safetensors.torch import save
from torch import nn

from odebench.bench.harness.store.artifacts import META_FIELD, ArtifactStore, CorruptArtifact

KEY = "e" * 16


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(3, 2)


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def _orphan(root, net: nn.Module, embedded: str | None) -> str:
    """Publish hash-named weights with ``embedded`` as their header meta (None: no meta), and no meta file."""
    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    data = save(state, metadata=None if embedded is None else {META_FIELD: embedded})
    name = f"{KEY}.{hashlib.sha256(data).hexdigest()[:16]}.safetensors"
    (root / name).write_bytes(data)
    return name


def test_the_restored_meta_names_its_key_file_and_hash_and_is_written_as_stable_json(tmp_path):
    """The embedded meta need not hold the key (a file written by other means): the key asked for is recorded."""
    name = _orphan(tmp_path, _net(0), json.dumps({"losses": [2.0, 1.0], "train_seconds": 3.0}))
    store = ArtifactStore(tmp_path)
    fresh = _net(1)
    meta = store.load(KEY, fresh)
    sha = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
    assert meta == {"losses": [2.0, 1.0], "train_seconds": 3.0, "key": KEY, "sha256": sha, "weights": name,
                    "recovered": True}
    assert _same(fresh, _net(0))
    assert store.meta_path(KEY).read_text() == json.dumps(meta, indent=2, sort_keys=True)
    assert store.read_meta(KEY) == meta  # the next load reads the written meta, not the header


def test_a_read_only_store_recovers_without_writing(tmp_path):
    name = _orphan(tmp_path, _net(0), json.dumps({"losses": [1.0], "key": KEY}))
    store = ArtifactStore(tmp_path, read_only=True)
    fresh = _net(1)
    meta = store.load(KEY, fresh)
    assert meta["weights"] == name and meta["recovered"] is True and _same(fresh, _net(0))
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize("embedded", [None, "not json", "[1, 2]"], ids=["none", "not-json", "not-an-object"])
def test_weights_whose_embedded_meta_is_unreadable_are_refused(tmp_path, embedded):
    name = _orphan(tmp_path, _net(0), embedded)
    unreadable = f"model file .*{re.escape(name)} holds no readable meta; delete it and re-run"
    with pytest.raises(CorruptArtifact, match=unreadable):
        ArtifactStore(tmp_path).load(KEY, _net(1))
    assert not ArtifactStore(tmp_path).meta_path(KEY).exists()


def test_a_model_that_is_not_there_is_refused_naming_the_cache(tmp_path):
    with pytest.raises(CorruptArtifact, match=re.escape(f"model {KEY} is not in the cache {tmp_path}")):
        ArtifactStore(tmp_path).load(KEY, _net(1))
