"""Write a folder in CIFAR-10's python layout holding synthetic images, to smoke-test the cifar10 path without
the dataset (nothing is downloaded anywhere in odebench).

    python3 scripts/synthetic_cifar.py ROOT [--per-batch 2000]

Writes ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch}, protocol-2 pickles like the official files, each
{b"data": uint8 [N, 3072], b"labels", b"batch_label", b"filenames"}; the test batch has half as many rows. The
images are smooth colour fields (4x4 uniform noise upsampled bilinearly to 32x32), so a network can learn them
in a few hundred steps. Numbers measured on them say the pipeline runs, not how a method does on CIFAR-10.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import torch

BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def write_synthetic_cifar(root: Path, per_batch: int = 2000, seed: int = 0) -> Path:
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    for name in BATCHES:
        n = per_batch // 2 if name == "test_batch" else per_batch
        low = torch.rand(n, 3, 4, 4, generator=gen)
        img = torch.nn.functional.interpolate(low, size=32, mode="bilinear", align_corners=False)
        rows = (img * 255).round().clamp(0, 255).to(torch.uint8).reshape(n, 3072).numpy()  # R, G, B planes
        with open(folder / name, "wb") as fh:
            pickle.dump({b"batch_label": name.encode(), b"labels": [0] * n, b"data": rows,
                         b"filenames": [f"{name}_{i}.png".encode() for i in range(n)]}, fh, protocol=2)
    return folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--per-batch", type=int, default=2000, help="rows per training batch file (5 files)")
    args = ap.parse_args(argv)
    print(write_synthetic_cifar(args.root, args.per_batch))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
