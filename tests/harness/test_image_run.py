"""Image sweeps end to end on a CPU, the uint8 quantisation, sample grids, and the runtime options
(device selection, bf16 autocast, dataset options in specs, torchrun data parallelism)."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from odebench.bench.cli import main as cli_main
from odebench.bench.data import load_dataset
from odebench.bench.harness.execution.run import PrecisionMismatch, run_sweep
from odebench.bench.harness.process.runtime import Runtime, autocast, resolve_device
from odebench.bench.harness.spec.sweep import SpecError, load_spec, parse_spec
from odebench.bench.harness.store.records import RecordStore
from odebench.bench.harness.store.sample_sheets import save_sample_sheet
from odebench.bench.harness.training.train import Problem, TrainConfig, model_key
from odebench.methods import METHODS, get_method
from odebench.metrics import METRICS
from odebench.metrics.images import to_uint8

ROOT = Path(__file__).resolve().parents[2]
TINY_UNET = {"name": "unet", "ch": 8, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [],
             "groups": 4}


def tiny_image_spec(name="img", **extra):
    return {"name": name, "seeds": [0], "train": {"steps": 4, "batch_size": 16, "lr": 1e-3},
            "net": TINY_UNET, "eval": {"n_samples": 40, "batch_size": 32, "metrics": ["fd"]},
            "methods": [{"name": "fm_ot"}, {"name": "rf"}], "datasets": [{"target": "digits"}],
            "solvers": [{"name": "euler", "nfe": [1, 2]}], **extra}


def test_to_uint8_matches_clean_fid_quantisation():
    x = torch.tensor([-1.0, -1.2, 1.0, 1.3, 0.0, 2 * 100 / 255 - 1 + 1e-4]).view(1, 1, 2, 3)
    assert to_uint8(x).flatten().tolist() == [0, 0, 255, 255, 128, 100]
    with pytest.raises(ValueError, match="NaN"):
        to_uint8(torch.full((1, 1, 2, 2), float("nan")))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        to_uint8(torch.zeros(3, 4))


def test_sample_sheet_png(tmp_path):
    rgb = torch.rand(10, 3, 16, 16) * 2 - 1
    path = save_sample_sheet(rgb, tmp_path / "g" / "a.png", root=tmp_path)
    with Image.open(path) as im:  # 10 images -> 4 x 3 tiles of 16 px plus 1 px gaps, enlarged x2
        assert im.mode == "P" and im.size == (2 * (4 * 17 + 1), 2 * (3 * 17 + 1))  # a palette PNG
    with Image.open(save_sample_sheet(torch.zeros(4, 1, 8, 8), tmp_path / "b.png", root=tmp_path)) as im:
        assert im.mode == "L" and im.size == (4 * 19, 4 * 19)


@pytest.mark.slow
def test_tiny_image_sweep_end_to_end(tmp_path):
    spec = parse_spec(tiny_image_spec())
    summary = run_sweep(spec, tmp_path, progress=False)
    assert summary.ok and summary.status_counts["ok"] == 4 and summary.trained == 2
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "img" / "cells").glob("*.json"))]
    assert {r["nfe"] for r in records} == {1, 2}
    for r in records:
        assert r["status"] == "ok" and r["metrics"]["fd"] > 0
        assert r["runtime"] == {"device": "cpu", "precision": "fp32", "compile": False}
        with Image.open(r["sample_sheet"]) as im:
            assert im.size == (4 * (7 * 9 + 1), 4 * (6 * 9 + 1))  # 40 samples: 7 x 6 tiles of 8 px + gaps, x4
        assert Path(r["sample_sheet"]) == tmp_path / "img" / "samples" / f"{r['cell_id']}.png"


def test_bf16_autocast_trains_on_cpu_and_keys_the_cache(tmp_path):
    raw = {**tiny_image_spec("bf"), "methods": [{"name": "fm_ot"}],
           "solvers": [{"name": "euler", "nfe": [2]}], "train": {"steps": 2, "batch_size": 8},
           "eval": {"n_samples": 16, "metrics": ["sliced_w"]}}
    summary = run_sweep(parse_spec(raw), tmp_path, progress=False, precision="bf16")
    assert summary.ok
    (rec,) = RecordStore(tmp_path / "bf").records()
    assert rec["runtime"]["precision"] == "bf16" and rec["status"] == "ok"
    # cell ids ignore the precision: resuming this folder in fp32 must not pass the bf16 record off as fp32
    before = (tmp_path / "bf" / "cells" / f"{rec['cell_id']}.json").read_bytes()
    with pytest.raises(PrecisionMismatch, match=r"1 in bf16.*asks for fp32.*--out"):
        run_sweep(parse_spec(raw), tmp_path, progress=False, precision="fp32")
    assert (tmp_path / "bf" / "cells" / f"{rec['cell_id']}.json").read_bytes() == before
    assert run_sweep(parse_spec(raw), tmp_path, progress=False, precision="bf16").already_done == 1
    with autocast("cpu", "bf16"):
        assert torch.nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.bfloat16
    problem = Problem(target=load_dataset("digits"), source=None, net=TINY_UNET)
    args = (get_method("fm_ot"), problem, TrainConfig(), 0, None)
    assert model_key(*args) == model_key(*args, precision="fp32") != model_key(*args, precision="bf16")
    with pytest.raises(ValueError, match="precision"):
        Runtime("cpu", "fp16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where CUDA is absent")
def test_cuda_asked_for_without_cuda(tmp_path, capsys):
    with pytest.raises(RuntimeError, match="CUDA is not available.*--device cpu"):
        resolve_device("cuda")
    assert cli_main(["run", "--spec", "smoke", "--out", str(tmp_path), "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "smoke").exists()
    with pytest.raises(ValueError, match="cpu, cuda"):
        resolve_device("tpu")


def test_dataset_options_in_specs(tmp_path):
    spec = parse_spec({**tiny_image_spec(), "datasets": [{"target": "imagefolder",
                                                            "options": {"resolution": 16, "hflip": True}}]})
    assert spec.cells[0].data_options == {"resolution": 16, "hflip": True}
    plain = parse_spec(tiny_image_spec()).cells[0]
    assert plain.data_options == {} and "data_options" in plain.config()
    with pytest.raises(SpecError) as err:
        parse_spec({**tiny_image_spec(), "precision": "fp8", "compile": "yes",
                    "datasets": [{"target": "imagefolder", "options": {"size": 16}, "extra": 1}]})
    text = str(err.value)
    for part in ("datasets[0].options.size: dataset 'imagefolder' has no option 'size'", "resolution",
                 "datasets[0].extra: unknown key", "precision: must be one of fp32, bf16",
                 "compile: must be true or false"):
        assert part in text


@pytest.mark.parametrize("name", ["images", "cifar10"])
def test_builtin_image_specs_parse_once_every_name_is_registered(name):
    from odebench.bench.harness.spec.sweep import read_spec_text, tomllib

    raw = tomllib.loads(read_spec_text(name)[0])
    missing = sorted({m["name"] for m in raw["methods"]} - set(METHODS.names())) + sorted(
        set(raw["eval"]["metrics"]) - set(METRICS.names()))
    if missing:
        pytest.skip(f"spec {name!r} names methods/metrics not registered on this checkout: {missing}")
    spec = load_spec(name)
    assert spec.cells and all(c.net["name"] == "unet" for c in spec.cells)


@pytest.mark.slow
def test_torchrun_data_parallel_sweep_on_cpu(tmp_path):
    """Two processes (gloo): rank 0 alone writes records and the model; the run matches the plan."""
    spec = tmp_path / "ddp.toml"
    spec.write_text('name = "ddp"\n[train]\nsteps = 3\nbatch_size = 8\n[net]\nname = "mlp"\nhidden = 8\n'
                    'depth = 1\n[eval]\nn_samples = 32\nmetrics = ["sliced_w"]\n[[methods]]\nname = "fm_ot"\n'
                    '[[datasets]]\ntarget = "moons"\n[[solvers]]\nname = "euler"\nnfe = [2]\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          "--standalone", "-m", "odebench.bench.cli", "run", "--spec", str(spec), "--out",
                          str(tmp_path / "res"), "--no-progress"], env=env, capture_output=True, text=True,
                         timeout=240, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    records = list((tmp_path / "res" / "ddp" / "cells").glob("*.json"))
    assert len(records) == 1 and json.loads(records[0].read_text())["status"] == "ok"
    assert len(list((tmp_path / "res" / ".cache" / "models").glob("*.safetensors"))) == 1
    assert "rank 1: trained its share of the sweep 'ddp'" in out.stdout  # both ranks walked the plan
    assert sum(line.startswith("report: ") for line in out.stdout.splitlines()) == 1  # rank 0 alone wrote the report


@pytest.mark.slow
def test_cifar10_sweep_from_the_command_line(tmp_path, monkeypatch, capsys):
    """--data-dir reaches the cifar10 loader; 32x32 RGB samples get a grid; dataset options apply."""
    import numpy as np

    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0] * 4}, fh)
    spec = tmp_path / "c.toml"
    spec.write_text('name = "c"\n[train]\nsteps = 2\nbatch_size = 8\n[net]\nname = "unet"\nch = 8\n'
                    'ch_mult = [1, 2]\nnum_res_blocks = 1\nattn_resolutions = [16]\ngroups = 4\n'
                    '[eval]\nn_samples = 16\nmetrics = ["sliced_w"]\n[[methods]]\nname = "fm_ot"\n'
                    '[[datasets]]\ntarget = "cifar10"\noptions = { hflip = false }\n'
                    '[[solvers]]\nname = "euler"\nnfe = [1]\n')
    monkeypatch.setenv("ODEBENCH_DATA", "unset-by-the-test")  # restored afterwards; the CLI overrides it
    rc = cli_main(["run", "--spec", str(spec), "--out", str(tmp_path / "res"), "--data-dir",
                   str(tmp_path / "data"), "--no-progress"])
    assert rc == 0
    (rec,) = RecordStore(tmp_path / "res" / "c").records()
    assert rec["status"] == "ok" and rec["config"]["data_options"] == {"hflip": False}
    with Image.open(rec["sample_sheet"]) as im:
        assert im.mode == "P"  # colour samples as a palette PNG
    monkeypatch.setenv("ODEBENCH_DATA", str(tmp_path / "nowhere"))
    # a missing directory is found while planning: a clear error naming the layout, and nothing written
    assert cli_main(["run", "--spec", str(spec), "--out", str(tmp_path / "res2"), "--no-progress"]) == 2
    assert "cifar-10-batches-py" in capsys.readouterr().err
    assert RecordStore(tmp_path / "res2" / "c").records() == []
