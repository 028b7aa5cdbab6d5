"""The model store's contract seen from its callers: cache keys (the same config in any key order gives one
key, different configs different keys, values JSON has no type for included); a read-only store and a store
whose folder lies outside the results folder write nothing; ``has`` says True exactly when ``load`` succeeds;
the weights file is a function of the model and its meta (not of dict order); a model with tied weights is
stored; and a meta restored from orphaned weights is the one that was saved."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from odebench.bench.core.hashing import config_hash
from odebench.bench.harness.guards.safe_paths import UnsafePath
from odebench.bench.harness.store.artifacts import ArtifactStore, CorruptArtifact

KEY = "0123456789abcdef"  # model keys are 16 hex digits


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(3, 2)


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


# -------------------------------------------------------------------------------------------------- cache keys
def test_a_key_is_the_sha256_of_the_sorted_json_so_keys_of_existing_caches_stay_valid():
    cfg = {"method": {"name": "fm", "sigma": 0.0}, "seed": 3, "train": [1, 2]}
    blob = json.dumps(cfg, sort_keys=True).encode()
    assert config_hash(cfg) == hashlib.sha256(blob).hexdigest()[:16]
    assert config_hash({"train": [1, 2], "seed": 3, "method": {"sigma": 0.0, "name": "fm"}}) == config_hash(cfg)
    assert config_hash({**cfg, "seed": 4}) != config_hash(cfg)


@pytest.mark.parametrize(
    "a, b", [(Path("data/a"), Path("data/b")), (torch.float32, torch.float64)], ids=["path", "dtype"]
)
def test_values_json_has_no_type_for_still_get_a_key_that_tells_them_apart(a, b):
    """A config may carry a path or a dtype (a plugin's hparams): it is keyed by the value's text, not refused."""
    key = config_hash({"net": "mlp", "value": a})
    assert len(key) == 16 and int(key, 16) >= 0
    assert config_hash({"value": a, "net": "mlp"}) == key
    assert config_hash({"net": "mlp", "value": b}) != key


# ------------------------------------------------------------------------------------------ where it may write
def test_a_read_only_store_refuses_to_save_and_writes_nothing(tmp_path):
    store = ArtifactStore(tmp_path, read_only=True)
    with pytest.raises(RuntimeError, match=r"model store .* is read-only"):
        store.save(KEY, _net(0), {"train_seconds": 1.0})
    assert list(tmp_path.iterdir()) == []
    assert ArtifactStore(tmp_path).read_only is False  # the default store writes


def test_a_store_outside_its_results_folder_writes_nothing(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    store = ArtifactStore(tmp_path / "elsewhere", out_root=tmp_path / "out")
    with pytest.raises(UnsafePath, match="not inside the results folder"):
        store.save(KEY, _net(0), {"train_seconds": 1.0})
    assert list((tmp_path / "elsewhere").iterdir()) == [] and list((tmp_path / "out").iterdir()) == []
    inner = ArtifactStore(tmp_path / "out" / "models", out_root=tmp_path / "out")
    inner.save(KEY, _net(0), {"train_seconds": 1.0})
    assert inner.has(KEY)


# ------------------------------------------------------------------------------------------- has agrees with load
def _saved(root: Path) -> ArtifactStore:
    store = ArtifactStore(root)
    store.save(KEY, _net(0), {"train_seconds": 1.0})
    return store


def _orphaned(root: Path) -> ArtifactStore:
    store = _saved(root)
    store.meta_path(KEY).unlink()
    return store


def _orphan_beside_an_unreadable_meta(root: Path) -> ArtifactStore:
    store = _orphaned(root)
    store.meta_path(KEY).write_text("{ truncated")
    return store


def _orphan_beside_a_meta_that_is_not_an_object(root: Path) -> ArtifactStore:
    store = _orphaned(root)
    store.meta_path(KEY).write_text("[1, 2]")
    return store


def _orphan_beside_a_meta_naming_other_weights(root: Path) -> ArtifactStore:
    store = _saved(root)
    meta = json.loads(store.meta_path(KEY).read_text())
    meta["weights"] = f"{KEY}.{'0' * 16}.safetensors"
    store.meta_path(KEY).write_text(json.dumps(meta))
    return store


def _empty(root: Path) -> ArtifactStore:
    return ArtifactStore(root)


@pytest.mark.parametrize(
    "make, cached",
    [
        (_saved, True),
        (_orphaned, True),
        (_orphan_beside_an_unreadable_meta, False),
        (_orphan_beside_a_meta_that_is_not_an_object, False),
        (_orphan_beside_a_meta_naming_other_weights, False),
        (_empty, False),
    ],
)
def test_has_says_true_exactly_when_load_succeeds(tmp_path, make, cached):
    """A meta that exists but cannot be used is reported by ``load`` (not bypassed by an orphan beside it), so
    ``has`` must not call such a model cached either."""
    store = make(tmp_path)
    assert store.has(KEY) is cached
    if cached:
        fresh = _net(1)
        store.load(KEY, fresh)
        assert _same(fresh, _net(0))
    else:
        with pytest.raises(CorruptArtifact):
            store.load(KEY, _net(1))


@pytest.mark.parametrize("text", ["[1, 2]", "3", '"meta"', "null"])
def test_a_meta_that_is_not_a_json_object_is_read_as_none(tmp_path, text):
    store = ArtifactStore(tmp_path)
    store.meta_path(KEY).write_text(text)
    assert store.read_meta(KEY) is None


# ------------------------------------------------------------------------------------------------ what is saved
def test_the_weights_file_depends_on_the_meta_not_on_its_key_order(tmp_path):
    """Content-addressed: the same model and meta give the same bytes, so the same file name and hash."""
    a, b = ArtifactStore(tmp_path / "a"), ArtifactStore(tmp_path / "b")
    a.save(KEY, _net(0), {"losses": [2.0, 1.0], "train_seconds": 1.0, "steps": 2})
    b.save(KEY, _net(0), {"steps": 2, "train_seconds": 1.0, "losses": [2.0, 1.0]})
    assert a.read_meta(KEY) == b.read_meta(KEY)
    (wa, _), (wb, _) = a.paths(KEY), b.paths(KEY)
    assert wa.name == wb.name and wa.read_bytes() == wb.read_bytes()


def test_a_model_with_tied_weights_is_stored_and_loads_back(tmp_path):
    """Tied parameters appear twice in the state dict, sharing memory (which safetensors refuses to write)."""

    def tied(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        first, second = nn.Linear(3, 3), nn.Linear(3, 3)
        second.weight = first.weight
        return nn.Sequential(first, second)

    store = ArtifactStore(tmp_path)
    store.save(KEY, tied(0), {"train_seconds": 1.0})
    fresh = tied(1)
    store.load(KEY, fresh)
    assert _same(fresh, tied(0))


def test_a_meta_restored_from_orphaned_weights_is_the_one_saved_marked_recovered(tmp_path):
    store = ArtifactStore(tmp_path)
    store.save(KEY, _net(0), {"losses": [2.0, 1.0], "train_seconds": 3.0, "options": {"b": 1, "a": 2}})
    saved = store.read_meta(KEY)
    store.meta_path(KEY).unlink()
    fresh = _net(1)
    assert store.load(KEY, fresh) == {**saved, "recovered": True}
    assert _same(fresh, _net(0))
