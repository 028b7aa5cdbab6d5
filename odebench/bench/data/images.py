"""Image datasets read from a local directory: CIFAR-10 (python batches) and any folder of PNG/JPEG files.

Both give [N, C, H, W] float tensors in [-1, 1] (x = k / 127.5 - 1 for 8-bit values k), ``meta['levels'] =
256`` for dequantisation, a split drawn from ``data_seed``, and optional random horizontal flips of training
draws. Nothing is downloaded: the directory comes from the ``data_dir`` option, else the environment variable
``ODEBENCH_DATA`` (which ``odebench run --data-dir`` sets).

Trust assumption: CIFAR-10's official python format is a set of pickle files. Unpickling can run code, so
odebench only reads them from the directory the user names, and through an unpickler that admits nothing but
the numpy array constructors those files use (any other object in the file is refused). Point ``data_dir``
only at a copy of CIFAR-10 you obtained from its official source.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from odebench.bench.data.base import DATASETS, Dataset, declare_kind

DATA_ENV = "ODEBENCH_DATA"
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_TEST = "test_batch"
CIFAR_LAYOUT = (f"<dir>/{CIFAR_DIR}/{{{', '.join(CIFAR_TRAIN)}, {CIFAR_TEST}}}: the python version of "
                f"CIFAR-10 (cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, "
                f"extracted)")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
#: the walk of an image folder: at most this many files and folders below it, and this many levels deep (a
#: data_dir of / would otherwise read the whole file system, /proc included)
MAX_WALK_ENTRIES = 300_000
MAX_WALK_DEPTH = 32


class DataDirError(FileNotFoundError):
    """The image directory is missing, empty or not in the expected layout."""


def resolve_data_dir(data_dir: str | os.PathLike | None, dataset: str, layout: str) -> Path:
    """The directory to read: the explicit option, else $ODEBENCH_DATA.

    Raises DataDirError, naming the expected layout, when neither is given or the directory is missing.
    """
    raw = data_dir if data_dir is not None else os.environ.get(DATA_ENV)
    if not raw:
        raise DataDirError(f"dataset {dataset!r} reads a local directory and none was given: pass "
                           f"`odebench run --data-dir DIR` (or set {DATA_ENV}=DIR). Expected layout: "
                           f"{layout}")
    try:
        path = Path(raw).expanduser()
        is_dir = path.is_dir()
    except (OSError, RuntimeError, ValueError) as exc:  # a name too long, ~user of no user, a NUL
        raise DataDirError(f"dataset {dataset!r}: data directory {raw!r} cannot be used ({exc}). Expected "
                           f"layout: {layout}") from None
    if not is_dir:
        raise DataDirError(f"dataset {dataset!r}: data directory {path} does not exist. Expected layout: "
                           f"{layout}")
    return path


def to_model_space(u8: np.ndarray | Tensor) -> Tensor:
    """uint8 [N, C, H, W] -> float32 in [-1, 1], x = k / 127.5 - 1 (inverse of odebench.metrics.images.to_uint8)."""
    return torch.as_tensor(np.asarray(u8)).float().div_(127.5).sub_(1.0)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits only what CIFAR-10's batches contain: dicts, lists, bytes/str and numpy arrays."""

    # _reconstruct: how numpy arrays pickle up to protocol 4 (the official files); _frombuffer: protocol 5;
    # _codecs.encode: how Python 3 writes bytes at protocol 2 (encode(text, "latin1"), no side effects)
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR-10 batch holds only "
                                         f"numpy arrays")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> np.ndarray:
    """One batch file -> uint8 [N, 3, 32, 32] (the rows are 1024 red, 1024 green, 1024 blue values)."""
    try:
        with open(path, "rb") as fh:
            batch = _NumpyOnlyUnpickler(fh, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
        raise DataDirError(f"cifar10: {path} is not a CIFAR-10 python batch ({type(exc).__name__}: {exc}). "
                           f"Expected layout: {CIFAR_LAYOUT}") from exc
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataDirError(f"cifar10: {path} holds data of shape {data.shape}, expected [N, 3072]. "
                           f"Expected layout: {CIFAR_LAYOUT}")
    return data.reshape(-1, 3, 32, 32)


def _subset(x: Tensor, limit: int | None, gen: torch.Generator) -> Tensor:
    if limit is None or limit >= len(x):
        return x
    return x[torch.randperm(len(x), generator=gen)[:limit]]


def _variant_name(base: str, **content: object) -> str:
    """``base`` for the default content, else ``base-<hash>``: the name keys the trained-model cache."""
    if not content:
        return base
    return f"{base}-{hashlib.sha256(repr(sorted(content.items())).encode()).hexdigest()[:10]}"


@DATASETS.register("cifar10")
@declare_kind("image")
def cifar10(data_seed: int = 0, data_dir: str | None = None, hflip: bool = True, n_train: int | None = None,
            n_test: int | None = None) -> Dataset:
    """CIFAR-10 from ``<data_dir>/cifar-10-batches-py``: the official 50,000 / 10,000 split, [N, 3, 32, 32].

    Args:
        data_dir: the folder holding ``cifar-10-batches-py`` (or that folder itself); default $ODEBENCH_DATA.
        hflip: random horizontal flips of training draws (as DDPM trains on CIFAR-10).
        n_train, n_test: optional subset sizes, drawn by a permutation seeded with ``data_seed``.
    """
    root = resolve_data_dir(data_dir, "cifar10", CIFAR_LAYOUT)
    folder = root if root.name == CIFAR_DIR else root / CIFAR_DIR
    missing = [n for n in [*CIFAR_TRAIN, CIFAR_TEST] if not (folder / n).is_file()]
    if missing:
        raise DataDirError(f"cifar10: {folder} lacks {', '.join(missing)}. Expected layout: {CIFAR_LAYOUT}")
    train = to_model_space(np.concatenate([_read_cifar_batch(folder / n) for n in CIFAR_TRAIN]))
    test = to_model_space(_read_cifar_batch(folder / CIFAR_TEST))
    gen = torch.Generator().manual_seed(data_seed)
    train, test = _subset(train, n_train, gen), _subset(test, n_test, gen)
    content = {k: v for k, v in (("hflip", hflip), ("n_train", n_train), ("n_test", n_test))
               if v is not None and not (k == "hflip" and v)}  # non-default content only
    return Dataset(name=_variant_name("cifar10", **content), kind="image", train=train, test=test,
                   meta={"levels": 256, "labels_available": False, "source": str(folder), "resolution": 32},
                   hflip=hflip)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:  # removed while the folder was read
        raise DataDirError(f"imagefolder: cannot read image {path}: {exc.strerror or exc}") from None


def image_files(root: Path, dataset: str = "imagefolder", layout: str = "") -> list[Path]:
    """The image files under ``root``, sorted: a bounded walk that stays in the folder.

    Folders are entered only below ``root`` and never through a symlink (a link can lead anywhere, or back up
    into a loop); at most MAX_WALK_DEPTH levels and MAX_WALK_ENTRIES entries are looked at, and a folder or file
    that cannot be read is a DataDirError naming it (a dataset that silently missed some images would be
    another dataset)."""
    files: list[Path] = []
    seen = 0
    stack: list[tuple[str, int]] = [(str(root), 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    seen += 1
                    if seen > MAX_WALK_ENTRIES:
                        raise DataDirError(f"{dataset}: more than {MAX_WALK_ENTRIES:,} files and folders under "
                                           f"{root}; name the folder that holds the images, not one above it "
                                           f"(--data-dir or the data_dir option). Expected layout: {layout}")
                    if entry.is_dir(follow_symlinks=False):
                        if depth + 1 > MAX_WALK_DEPTH:
                            raise DataDirError(f"{dataset}: {entry.path} lies more than {MAX_WALK_DEPTH} folders "
                                               f"below {root}; name the folder that holds the images. Expected "
                                               f"layout: {layout}")
                        stack.append((entry.path, depth + 1))
                    elif Path(entry.name).suffix.lower() in IMAGE_SUFFIXES and entry.is_file():
                        files.append(Path(entry.path))  # a regular file (a link to one too): no FIFO, no device
        except DataDirError:  # an OSError too
            raise
        except OSError as exc:
            raise DataDirError(f"{dataset}: cannot read {exc.filename or folder} under {root} "
                               f"({exc.strerror or exc}); name a folder of images you can read. Expected layout: "
                               f"{layout}") from None
    return sorted(files)


def _load_image(path: Path, resolution: int, mode: str) -> np.ndarray:
    """Centre-crop to a square, resize to resolution x resolution (bicubic), -> uint8 [C, R, R]."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            side = min(im.size)
            left, top = (im.width - side) // 2, (im.height - side) // 2
            im = im.crop((left, top, left + side, top + side))
            im = im.resize((resolution, resolution), Image.Resampling.BICUBIC)
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:  # not an image, truncated, too large
        raise DataDirError(f"imagefolder: cannot read image {path}: {exc}") from exc
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


@DATASETS.register("imagefolder")
@declare_kind("image")
def imagefolder(data_seed: int = 0, data_dir: str | None = None, resolution: int = 32, channels: int = 3,
                test_fraction: float = 0.1, hflip: bool = False) -> Dataset:
    """Every .png/.jpg/.jpeg file under ``data_dir`` (recursively, within the bounds of :func:`image_files`),
    centre-cropped and resized, [N, C, R, R].

    Args:
        data_dir: the image folder; default $ODEBENCH_DATA.
        resolution: side length R after the centre crop and bicubic resize.
        channels: 3 (RGB) or 1 (greyscale).
        test_fraction: share of images held out, chosen by a permutation seeded with ``data_seed``.
        hflip: random horizontal flips of training draws.
    """
    layout = "<dir>/**/*.png|*.jpg|*.jpeg (any nesting; at least 2 images)"
    if channels not in (1, 3):
        raise ValueError(f"imagefolder: channels must be 1 or 3, got {channels}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"imagefolder: test_fraction must lie in (0, 1), got {test_fraction}")
    root = resolve_data_dir(data_dir, "imagefolder", layout)
    files = image_files(root, "imagefolder", layout)
    if len(files) < 2:
        raise DataDirError(f"imagefolder: found {len(files)} image(s) under {root}. Expected layout: "
                           f"{layout}")
    x = to_model_space(np.stack([_load_image(p, resolution, "RGB" if channels == 3 else "L") for p in files]))
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(data_seed))
    n_test = min(len(x) - 1, max(1, int(round(test_fraction * len(x)))))
    # the folder's content keys the model cache, so two folders never share a trained model
    listing = [(str(p.relative_to(root)), _size(p)) for p in files]
    name = _variant_name("imagefolder", files=hashlib.sha256(repr(listing).encode()).hexdigest(),
                         resolution=resolution, channels=channels, hflip=hflip)
    meta = {"levels": 256, "labels_available": False, "source": str(root), "resolution": resolution}
    return Dataset(name=name, kind="image", train=x[perm[n_test:]], test=x[perm[:n_test]], meta=meta,
                   hflip=hflip)
