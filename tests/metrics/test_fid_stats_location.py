"""Where FID keeps its reference statistics: in a run, ``<out>/.cache/fid_stats``, inside the folder the user
named (never ``~/.cache``); where the user sets ``fid.stats_dir`` (or ``$ODEBENCH_FID_STATS``), there; the record
names the folder either way (``settings.reference_stats_dir``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import odebench.bench.harness.execution.run
from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.records import RecordStore
from odebench.metrics import METRICS, EvalContext
from odebench.metrics import fid as fid_mod
from odebench.metrics.registry import split_output

TINY_UNET = {"name": "unet", "ch": 8, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [], "groups": 4}


def tiny_extractor(path=None, device="cpu"):
    proj = torch.randn(48, 5, generator=torch.Generator().manual_seed(0))
    resize = lambda img: np.repeat(np.repeat(img.astype(np.float32), 2, 0), 2, 1)[:8, :8]  # noqa: E731
    features = lambda x: torch.nn.functional.avg_pool2d(x / 255, 2).flatten(1) @ proj  # noqa: E731
    return fid_mod.FeatureExtractor("tiny test extractor", "0" * 64, features, resize, "nearest-x2")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home folder of its own, so a write to ~/.cache would be seen; no stats folder from the environment."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(fid_mod.STATS_ENV, raising=False)
    monkeypatch.setitem(fid_mod.EXTRACTORS, "clean", tiny_extractor)
    return home


def _image_run(out: Path, options: dict) -> dict:
    raw = {"name": "img", "seeds": [0], "train": {"steps": 2, "batch_size": 16, "lr": 1e-3}, "net": TINY_UNET,
           "eval": {"n_samples": 24, "metrics": ["fid"], "metric_options": {"fid": {"reference": "test", **options}}},
           "methods": [{"name": "fm_ot"}], "datasets": [{"target": "digits"}],
           "solvers": [{"name": "euler", "nfe": [1]}]}
    odebench.bench.harness.execution.run._MODELS.clear()
    run_sweep(parse_spec(raw), out, progress=False, jobs=1)
    [rec] = RecordStore(out / "img").records()
    assert rec["status"] == "ok", rec
    return rec["metric_info"]["fid"]["settings"]


def test_a_run_keeps_the_fid_statistics_under_its_out_folder(tmp_path, home):
    out = tmp_path / "out"
    settings = _image_run(out, {})
    [stats] = (out / ".cache" / "fid_stats").glob("fid_ref_*.npz")
    assert settings["reference_stats"] == stats.name and settings["reference_stats_dir"] == "<out>/.cache/fid_stats"
    assert not any(home.rglob("*"))  # nothing written to ~/.cache


def test_a_stats_dir_the_user_sets_is_used_and_recorded(tmp_path, home):
    chosen = tmp_path / "shared_stats"
    settings = _image_run(tmp_path / "out", {"stats_dir": str(chosen)})
    [stats] = chosen.glob("fid_ref_*.npz")
    assert settings["reference_stats_dir"] == str(chosen) and settings["reference_stats"] == stats.name
    assert not (tmp_path / "out" / ".cache" / "fid_stats").exists() and not any(home.rglob("*"))


def test_a_context_names_the_folder_it_used(tmp_path, home):
    """With a cache folder (as a run gives), its fid_stats; without one (a library call), ~/.cache, named."""
    ref = (torch.rand(30, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    opts = {"fid": {"reference": "test"}}
    fid = METRICS.get("fid").fn
    _, settings = split_output("fid", fid(EvalContext(ref.flip(0), ref, data_kind="image", options=opts,
                                                      cache_dir=tmp_path / "cache")))
    assert settings["reference_stats_dir"] == "<out>/.cache/fid_stats"
    assert list((tmp_path / "cache" / "fid_stats").glob("fid_ref_*.npz"))
    _, settings = split_output("fid", fid(EvalContext(ref.flip(0), ref, data_kind="image", options=opts)))
    assert settings["reference_stats_dir"] == "~/.cache/odebench/fid_stats"
    assert list((home / ".cache" / "odebench" / "fid_stats").glob("fid_ref_*.npz"))
