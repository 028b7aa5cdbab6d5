"""What a run does with a cached model before it trusts it: a model whose weights fail their SHA-256 check (or
whose meta cannot be read) has its files moved aside as ``<name>.corrupt``, byte for byte, with a note naming
the model, and is trained again; a sound model, a meta whose weights are simply gone (a cache miss) and a key
with no meta are left alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from odebench.bench.harness.store.artifacts import ArtifactStore

KEY = "0123456789abcdef"  # model keys are 16 hex digits


@pytest.fixture
def store(tmp_path) -> ArtifactStore:
    """A model store whose writes must stay under the folder above it, holding one sound model."""
    torch.manual_seed(0)
    store = ArtifactStore(tmp_path / "models", out_root=tmp_path)
    store.save(KEY, nn.Linear(3, 2), {"train_seconds": 1.0})
    return store


def files(store: ArtifactStore) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(store.root.iterdir())}


def test_a_sound_model_is_left_alone(store):
    before = files(store)
    assert store.quarantine(KEY) is None
    assert files(store) == before and store.has(KEY)


@pytest.mark.parametrize("damage, reason", [("flip", "failed its SHA-256 check"), ("truncate", "truncated")])
def test_weights_that_fail_their_hash_are_moved_aside_with_their_meta(store, damage, reason):
    """A truncated safetensors file is refused by its size before its hash is computed."""
    weights, meta = store.paths(KEY)
    data = bytearray(weights.read_bytes())
    if damage == "flip":
        data[-1] ^= 0xFF
    else:
        del data[len(data) // 2 :]
    weights.write_bytes(bytes(data))
    before = files(store)
    note = store.quarantine(KEY)
    assert note is not None and KEY in note and reason in note and f"{weights.name}.corrupt" in note
    assert files(store) == {f"{name}.corrupt": content for name, content in before.items()}
    assert not store.has(KEY)
    assert store.quarantine(KEY) is None  # nothing left to move


def test_a_meta_whose_weights_are_gone_is_a_cache_miss_not_a_corruption(store):
    weights, meta = store.paths(KEY)
    weights.unlink()
    before = files(store)
    assert store.quarantine(KEY) is None
    assert files(store) == before == {meta.name: before[meta.name]}


def test_an_unreadable_meta_is_moved_aside_and_its_intact_weights_are_found_again(store):
    """The hash-named weights still match their name, so once the bad meta is out of the way they are the
    finished model (the store restores its meta from the copy embedded in them)."""
    weights, meta = store.paths(KEY)
    meta.write_text("{ truncated")
    note = store.quarantine(KEY)
    assert note is not None and KEY in note
    assert files(store) == {weights.name: weights.read_bytes(), f"{meta.name}.corrupt": b"{ truncated"}
    assert store.has(KEY)
    assert store.load(KEY, nn.Linear(3, 2))["weights"] == weights.name


def test_no_meta_at_all_is_left_to_the_loader(store, tmp_path):
    """A key never stored, or weights published without their meta (the orphans ``load`` recovers)."""
    assert store.quarantine("fedcba9876543210") is None
    weights, meta = store.paths(KEY)
    meta.unlink()
    before = files(store)
    assert store.quarantine(KEY) is None and files(store) == before and store.has(KEY)
    empty = ArtifactStore(tmp_path / "nothing_yet")
    assert empty.quarantine(KEY) is None and not empty.root.exists()
