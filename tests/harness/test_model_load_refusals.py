"""What the model store refuses, and what it says: a meta that is not a JSON object, weights that are gone, weights
whose SHA-256 is not the one their meta records, weights that do not fit the network. Each is a CorruptArtifact
whose message names the file at fault and the way out (delete, re-run to retrain), never a bare traceback; the
store writes nothing while refusing. Files that merely look like a model of the key (no hash in their name, or
content that does not match it) are not taken for one."""

from __future__ import annotations

import hashlib
import re

import pytest
import torch
from torch import nn

from odebench.bench.harness.store.artifacts import ArtifactStore, CorruptArtifact

KEY = "0123456789abcdef"  # model keys are 16 hex digits


def _net(seed: int, width: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(width, 2)


def _files(root) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


@pytest.fixture
def store(tmp_path) -> ArtifactStore:
    store = ArtifactStore(tmp_path)
    store.save(KEY, _net(0), {"train_seconds": 1.0})
    return store


@pytest.mark.parametrize("text", ["{ truncated", "[1, 2]"], ids=["not-json", "not-an-object"])
def test_an_unreadable_meta_is_refused_and_left_as_it_is(store, text):
    """Intact hash-named weights sit beside it, but a meta that exists and cannot be read is reported, not
    replaced by one restored from the weights (moving it aside is the run's decision, see quarantine)."""
    meta_path = store.meta_path(KEY)
    meta_path.write_text(text)
    before = _files(store.root)
    expected = rf"cannot read model meta {re.escape(str(meta_path))} \(not a JSON object\)\. Delete it and re-run"
    with pytest.raises(CorruptArtifact, match=expected):
        store.load(KEY, _net(1))
    assert _files(store.root) == before


def test_weights_that_are_gone_are_refused_naming_the_meta_to_delete(store):
    weights, meta_path = store.paths(KEY)
    weights.unlink()
    expected = (
        rf"cannot read model file {re.escape(str(weights))}: .*\. Delete {re.escape(str(meta_path))} "
        r"and re-run to retrain"
    )
    with pytest.raises(CorruptArtifact, match=expected):
        store.load(KEY, _net(1))


def test_weights_that_fail_their_hash_are_refused_showing_both_hashes(store):
    """The message shows the file's hash and the recorded one (12 hex digits each) and names both files."""
    weights, meta_path = store.paths(KEY)
    recorded = hashlib.sha256(weights.read_bytes()).hexdigest()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    actual = hashlib.sha256(bytes(data)).hexdigest()
    fresh = _net(1)
    with pytest.raises(CorruptArtifact) as info:
        store.load(KEY, fresh)
    message = str(info.value)
    assert f"model file {weights} has sha256 {actual[:12]}..., its meta says {recorded[:12]}..." in message
    assert f"the file is corrupt. Delete {weights} and {meta_path} and re-run to retrain" in message
    assert torch.equal(fresh.weight, _net(1).weight)  # never parsed, so nothing loaded


def test_weights_that_do_not_fit_the_network_are_refused_saying_why(store):
    weights, meta_path = store.paths(KEY)
    expected = (
        rf"(?s)model file {re.escape(str(weights))} does not fit the network \(RuntimeError: "
        rf".*size mismatch.*\)\. Delete it and {re.escape(str(meta_path))} and re-run to retrain"
    )
    with pytest.raises(CorruptArtifact, match=expected):
        store.load(KEY, _net(1, width=4))


@pytest.mark.parametrize(
    "name",
    [f"{KEY}.pt", f"{KEY}.{'b' * 16}.safetensors", f"{KEY}.{'b' * 16}.pt", f"{KEY}.copy.safetensors"],
    ids=["no-hash-in-name", "content-not-its-name", "pt-content-not-its-name", "not-a-hash"],
)
def test_a_file_without_a_meta_is_a_model_only_if_its_content_matches_its_hash_name(tmp_path, name):
    """Weights published without their meta count only when their name carries their own hash: anything else
    is not in the cache (and nothing is written)."""
    store = ArtifactStore(tmp_path)
    store.save(KEY, _net(0), {})
    weights, meta_path = store.paths(KEY)
    weights.rename(tmp_path / name)
    meta_path.unlink()
    before = _files(tmp_path)
    assert not store.has(KEY) and store.orphan(KEY) is None
    with pytest.raises(CorruptArtifact, match=re.escape(f"model {KEY} is not in the cache {tmp_path}")):
        store.load(KEY, _net(1))
    assert _files(tmp_path) == before
