"""scripts/synthetic_cifar.py writes a folder that the real cifar10 loader reads: the official layout, split sizes
and [-1, 1] scaling, smooth images (neighbouring pixels close), the same bytes for the same seed."""

import importlib.util
from pathlib import Path

import torch

from odebench.bench.data.images import cifar10

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "synthetic_cifar.py"


def _script():
    spec = importlib.util.spec_from_file_location("synthetic_cifar", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cifar10_loader_reads_it(tmp_path):
    folder = _script().write_synthetic_cifar(tmp_path, per_batch=6)
    assert sorted(p.name for p in folder.iterdir()) == [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    ds = cifar10(data_dir=str(tmp_path))
    assert ds.train.shape == (30, 3, 32, 32) and ds.test.shape == (3, 3, 32, 32)
    assert -1 <= float(ds.train.min()) and float(ds.train.max()) <= 1
    # smooth: a step to the next pixel changes far less than the spread (independent pixels: about 1.1 std)
    step = (ds.train[..., 1:] - ds.train[..., :-1]).abs().mean()
    assert step < 0.25 * ds.train.std()


def test_same_seed_same_bytes(tmp_path):
    script = _script()
    a = script.write_synthetic_cifar(tmp_path / "a", per_batch=4, seed=3)
    b = script.write_synthetic_cifar(tmp_path / "b", per_batch=4, seed=3)
    c = script.write_synthetic_cifar(tmp_path / "c", per_batch=4, seed=4)
    assert (a / "data_batch_2").read_bytes() != (c / "data_batch_2").read_bytes()
    assert (a / "data_batch_2").read_bytes() == (b / "data_batch_2").read_bytes()
    assert not torch.equal(cifar10(data_dir=str(tmp_path / "a")).train, cifar10(data_dir=str(tmp_path / "c")).train)
