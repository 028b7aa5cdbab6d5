"""Train the small CNN behind ``fd_digits`` and write metrics/weights/digits_cnn.pt.

    python scripts/train_digits_classifier.py [--out metrics/weights/digits_cnn.pt]

Deterministic on CPU (seed 0, one thread): the ``digits`` train split of data_seed 0 (1438 images), Adam,
40 epochs of batch 64; prints the test accuracy on the 359 held-out images and the file's SHA-256, which
must equal ``odebench.metrics.digits_features.DIGITS_CNN_SHA256``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from sklearn.datasets import load_digits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from odebench.bench.data import load_dataset  # noqa: E402
from odebench.metrics.digits_features import DIGITS_CNN_SHA256, DigitsCNN, sha256_of  # noqa: E402

SEED, EPOCHS, BATCH, LR = 0, 40, 64, 1e-3


def labelled_split(data_seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_test, y_test) with exactly odebench.bench.data's digits split of ``data_seed``."""
    raw = load_digits()
    x = (torch.from_numpy(raw.images).float() / 16 * 2 - 1).unsqueeze(1)
    y = torch.from_numpy(raw.target).long()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(data_seed))
    n_test = int(round(0.2 * len(x)))
    ds = load_dataset("digits", data_seed)
    if not (torch.equal(ds.test, x[perm[:n_test]]) and torch.equal(ds.train, x[perm[n_test:]])):
        raise RuntimeError("the digits split differs from odebench.bench.data's; update this script")
    return x[perm[n_test:]], y[perm[n_test:]], x[perm[:n_test]], y[perm[:n_test]]


def train() -> tuple[DigitsCNN, float]:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    x_tr, y_tr, x_te, y_te = labelled_split()
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(EPOCHS):
        perm = torch.randperm(len(x_tr), generator=gen)
        for idx in perm.split(BATCH):
            loss = torch.nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x_te).argmax(1) == y_te).float().mean().item()
    return model, acc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[1] / "odebench" / "metrics" / "weights" / "digits_cnn.pt"
    parser.add_argument("--out", type=Path, default=default)
    args = parser.parse_args()
    model, acc = train()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    digest = sha256_of(args.out)
    print(f"test accuracy {acc:.4f} on 359 images; wrote {args.out} ({args.out.stat().st_size} bytes)")
    print(f"sha256 {digest} ({'matches' if digest == DIGITS_CNN_SHA256 else 'DIFFERS FROM'} the pinned hash)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
