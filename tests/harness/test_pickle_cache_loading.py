"""Caches written before safetensors hold torch pickles. They load on any machine: a bare state dict (the
oldest layout) as well as {"state_dict", "meta"}, and a file written on a GPU on a CPU-only machine (the report's).
They are read as weights only: a pickle that would run code is refused unexecuted, even where the environment
relaxes torch's own default (TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD, or a torch older than 2.6)."""

from __future__ import annotations

import io
import json
import pathlib

import pytest
import torch
import torch.serialization
from torch import nn

from odebench.bench.harness.store.artifacts import ArtifactStore, CorruptArtifact, sha256_file

KEY = "c" * 16


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(3, 2)


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def _store_pickle(root: pathlib.Path, data: bytes) -> ArtifactStore:
    """``data`` as the legacy ``<key>.pt`` with a meta recording its hash."""
    (root / f"{KEY}.pt").write_bytes(data)
    (root / f"{KEY}.json").write_text(json.dumps({"sha256": sha256_file(root / f"{KEY}.pt"), "train_seconds": 2.0}))
    return ArtifactStore(root)


def _pickled(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.mark.parametrize("layout", ["bare", "with-meta"])
def test_a_pickled_state_dict_loads_bit_identical(tmp_path, layout):
    state = _net(0).state_dict()
    obj = state if layout == "bare" else {"state_dict": state, "meta": json.dumps({"key": KEY})}
    store = _store_pickle(tmp_path, _pickled(obj))
    fresh = _net(1)
    assert store.load(KEY, fresh)["train_seconds"] == 2.0
    assert _same(fresh, _net(0))


def test_a_pickle_written_on_a_gpu_loads_on_the_cpu(tmp_path, monkeypatch):
    """Its tensors are tagged with the device they were saved from; the store reads them onto the one asked for
    (the default, the CPU), so a machine without that device still loads the model."""
    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")  # as torch.save tags GPU tensors
        data = _pickled(_net(0).state_dict())
    store = _store_pickle(tmp_path, data)
    fresh = _net(1)
    store.load(KEY, fresh)
    assert _same(fresh, _net(0))


class _TouchesAFile:
    """Unpickling this calls ``Path.touch`` on ``marker``: code run by merely loading the file."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


@pytest.mark.parametrize("force_no_weights_only", [False, True], ids=["torch-default", "env-relaxes-default"])
def test_a_pickle_that_runs_code_is_refused_unexecuted(tmp_path, monkeypatch, force_no_weights_only):
    if force_no_weights_only:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    control = tmp_path / "control"
    torch.load(io.BytesIO(_pickled(_TouchesAFile(control))), weights_only=False)
    assert control.exists()  # the payload does run code when unpickled in full
    marker = tmp_path / "code_ran"
    store = _store_pickle(tmp_path, _pickled(_TouchesAFile(marker)))
    with pytest.raises(CorruptArtifact, match=rf"(?s)cannot load model file .*{KEY}\.pt: .*Delete it and re-run"):
        store.load(KEY, _net(1))
    assert not marker.exists()
