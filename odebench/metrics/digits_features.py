"""A small CNN classifier of scikit-learn's 8x8 digits, whose penultimate layer is the feature space of
``fd_digits`` (a Fréchet distance that runs offline on a CPU; it is not FID and never called so).

The weights ship in ``metrics/weights/digits_cnn.pt`` (a state dict, ~150 KB) and are loaded with
``torch.load(..., weights_only=True)`` only after their SHA-256 matches :data:`DIGITS_CNN_SHA256`. They are
reproduced by ``python scripts/train_digits_classifier.py`` (seed 0, the ``digits`` train split of
data_seed 0; test accuracy printed by the script and recorded in :data:`DIGITS_CNN_TEST_ACCURACY`).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import torch
from torch import Tensor, nn

from odebench.bench.core.hashing import sha256_file

DIGITS_CNN_FILE = "digits_cnn.pt"
DIGITS_CNN_SHA256 = "ea609d99f0bcdfe629568e2d35fe95013c6f4b5bf3694aa9151f44fa82ff5df0"
#: accuracy on the 359 held-out images of the data_seed 0 split (printed by the training script)
DIGITS_CNN_TEST_ACCURACY = 0.9861  # 354 of 359
FEATURE_DIM = 64


class DigitsCNN(nn.Module):
    """[B, 1, 8, 8] images in [-1, 1] -> 10 logits; ``features`` gives the 64-d penultimate activations."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, FEATURE_DIM), nn.ReLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, 10)

    def features(self, x: Tensor) -> Tensor:
        """[B, 1, 8, 8] -> [B, 64]."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


#: the file hash the shipped weights are checked against (one implementation for the whole suite)
sha256_of = sha256_file


def weights_path() -> Path:
    return Path(str(resources.files("odebench.metrics") / "weights" / DIGITS_CNN_FILE))


@lru_cache(maxsize=1)
def load_digits_cnn() -> DigitsCNN:
    """The shipped classifier in eval mode, after checking the file's SHA-256."""
    path = weights_path()
    if not path.exists():
        raise FileNotFoundError(f"fd_digits weights missing at {path}; regenerate them with "
                                "`python scripts/train_digits_classifier.py` (or reinstall odebench)")
    digest = sha256_of(path)
    if digest != DIGITS_CNN_SHA256:
        raise ValueError(f"fd_digits weights {path} have SHA-256 {digest}, expected {DIGITS_CNN_SHA256}; "
                         "the file is corrupt or from another version: reinstall odebench")
    model = DigitsCNN()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval().requires_grad_(False)


def digits_features(x: Tensor, batch_size: int = 1000) -> Tensor:
    """[N, 1, 8, 8] images in [-1, 1] -> [N, 64] features of the shipped classifier (float32, CPU)."""
    if tuple(x.shape[1:]) != (1, 8, 8):
        raise ValueError(f"fd_digits needs [N, 1, 8, 8] digits images, got shape {tuple(x.shape)}")
    model = load_digits_cnn()
    with torch.no_grad():
        return torch.cat([model.features(c.float().cpu()) for c in x.split(batch_size)])
