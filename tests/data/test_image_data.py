"""Image loaders on tiny fake directories: CIFAR-10's python batches and a folder of PNG/JPEG files."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from odebench.bench.data import DATASETS, Dataset, load_dataset
from odebench.bench.data.images import CIFAR_TEST, CIFAR_TRAIN, DataDirError
from odebench.metrics.images import to_uint8


def write_fake_cifar(root, per_batch=4, n_test=3, seed=0, protocol=pickle.DEFAULT_PROTOCOL):
    """root/cifar-10-batches-py/{data_batch_1..5, test_batch} holding random uint8 rows [N, 3072]."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rows = {}
    for name, n in [*((b, per_batch) for b in CIFAR_TRAIN), (CIFAR_TEST, n_test)]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as fh:
            pickle.dump({b"batch_label": name.encode(), b"labels": [0] * n, b"data": data,
                         b"filenames": [b"x.png"] * n}, fh, protocol=protocol)
        rows[name] = data
    return rows


@pytest.mark.parametrize("protocol", [2, 4, 5])  # the official files are protocol 2 (Python 2's cPickle)
def test_cifar_layout_and_scaling(tmp_path, protocol):
    rows = write_fake_cifar(tmp_path, protocol=protocol)
    ds = load_dataset("cifar10", data_dir=str(tmp_path))
    assert ds.kind == "image" and ds.train.shape == (20, 3, 32, 32) and ds.test.shape == (3, 3, 32, 32)
    assert ds.meta["levels"] == 256 and ds.hflip and ds.name == "cifar10"
    row = rows["data_batch_1"][0]
    # a row is 1024 red, then 1024 green, then 1024 blue values, each image row-major; x = k / 127.5 - 1
    assert ds.train[0, 1, 2, 3].item() == pytest.approx(row[1024 + 2 * 32 + 3] / 127.5 - 1)
    assert np.array_equal(to_uint8(ds.train[:4]).flatten(1).numpy(), rows["data_batch_1"])  # exact round trip
    # the folder itself works too, and so does $ODEBENCH_DATA
    assert torch.equal(load_dataset("cifar10", data_dir=str(tmp_path / "cifar-10-batches-py")).test, ds.test)


def test_cifar_from_env_and_subsets(tmp_path, monkeypatch):
    write_fake_cifar(tmp_path)
    monkeypatch.setenv("ODEBENCH_DATA", str(tmp_path))
    a = load_dataset("cifar10", data_seed=1, n_train=5, hflip=False)
    b = load_dataset("cifar10", data_seed=1, n_train=5, hflip=False)
    assert a.train.shape[0] == 5 and torch.equal(a.train, b.train)
    assert a.name != "cifar10" and not a.hflip  # other content, other cache key


def test_missing_directory_names_the_layout(tmp_path, monkeypatch):
    monkeypatch.delenv("ODEBENCH_DATA", raising=False)
    with pytest.raises(DataDirError, match="--data-dir.*cifar-10-batches-py"):
        load_dataset("cifar10")
    with pytest.raises(DataDirError, match="does not exist.*data_batch_1"):
        load_dataset("cifar10", data_dir=str(tmp_path / "nowhere"))
    write_fake_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataDirError, match="lacks data_batch_3"):
        load_dataset("cifar10", data_dir=str(tmp_path))


def test_malformed_or_hostile_batches_are_refused(tmp_path):
    write_fake_cifar(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataDirError, match="not a CIFAR-10 python batch"):
        load_dataset("cifar10", data_dir=str(tmp_path))

    marker = tmp_path / "pwned"

    class Hostile:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({b"data": Hostile()}, fh)
    with pytest.raises(DataDirError, match="refusing to load"):
        load_dataset("cifar10", data_dir=str(tmp_path))
    assert not marker.exists()


def write_fake_folder(root, n=10):
    rng = np.random.default_rng(0)
    (root / "nested").mkdir(parents=True)
    for i in range(n):
        arr = rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)  # not square: centre-cropped
        path = root / ("nested" if i % 2 else ".") / f"img{i}.{'jpg' if i == 3 else 'png'}"
        Image.fromarray(arr).save(path)
    (root / "notes.txt").write_text("ignored")


def test_imagefolder(tmp_path):
    write_fake_folder(tmp_path)
    ds = load_dataset("imagefolder", data_seed=0, data_dir=str(tmp_path), resolution=16, test_fraction=0.2)
    assert ds.train.shape == (8, 3, 16, 16) and ds.test.shape == (2, 3, 16, 16)
    assert ds.train.min() >= -1 and ds.train.max() <= 1 and ds.meta["levels"] == 256
    grey = load_dataset("imagefolder", data_seed=0, data_dir=str(tmp_path), resolution=8, channels=1)
    assert grey.shape == (1, 8, 8)
    other = load_dataset("imagefolder", data_seed=1, data_dir=str(tmp_path), resolution=16, test_fraction=0.2)
    assert not torch.equal(other.test, ds.test)  # the split follows data_seed
    assert ds.name == other.name and ds.name != grey.name  # the cache key follows the content
    (tmp_path / "img0.png").unlink()
    fewer = load_dataset("imagefolder", data_dir=str(tmp_path), resolution=16)
    assert fewer.name != ds.name


def test_imagefolder_without_images(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataDirError, match=r"found 0 image\(s\).*\*\.png"):
        load_dataset("imagefolder", data_dir=str(tmp_path))


def test_hflip_is_drawn_from_the_generator():
    img = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 2, 4).contiguous()
    ds = Dataset("t", "image", train=img, test=img, hflip=True)
    draws = ds.sample(64, torch.Generator().manual_seed(0))
    flipped = (draws == img.flip(-1)).flatten(1).all(1)
    kept = (draws == img).flatten(1).all(1)
    assert (flipped | kept).all() and 10 < flipped.sum() < 54
    assert torch.equal(draws, ds.sample(64, torch.Generator().manual_seed(0)))
    plain = Dataset("t", "image", train=img, test=img)
    assert (plain.sample(16, torch.Generator().manual_seed(0)) == img).all()


def test_loaders_are_registered():
    assert {"cifar10", "imagefolder", "digits"} <= set(DATASETS.names())
