"""FID plumbing with a tiny extractor, the weights checks, fd_digits, and the Fréchet distance itself."""

import hashlib
import json

import numpy as np
import pytest
import torch

from odebench.metrics import METRICS, EvalContext
from odebench.metrics import fid as fid_mod
from odebench.metrics.digits_features import DIGITS_CNN_SHA256, digits_features, sha256_of, weights_path
from odebench.metrics.quality import frechet_distance
from odebench.metrics.registry import split_output


def tiny_extractor(path=None, device="cpu"):
    """Average-pool to 4x4 after a nearest resize to 8x8, then a fixed random projection to 5 features."""
    proj = torch.randn(48, 5, generator=torch.Generator().manual_seed(0))
    resize = lambda img: np.repeat(np.repeat(img.astype(np.float32), 2, 0), 2, 1)[:8, :8]
    features = lambda x: torch.nn.functional.avg_pool2d(x / 255, 2).flatten(1) @ proj
    return fid_mod.FeatureExtractor("tiny test extractor", "0" * 64, features, resize, "nearest-x2")


def images(n, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 4, 4, generator=g) * 2 - 1 + shift).clamp(-1, 1)


def test_pipeline_quantizes_resizes_and_extracts():
    x = torch.tensor([-1.0, -0.999, 0.0, 1.0, 1.5]).reshape(1, 1, 1, 5).expand(1, 1, 5, 5)
    u8 = fid_mod.to_uint8(x)
    assert u8.shape == (1, 5, 5, 3) and u8.dtype == np.uint8
    assert u8[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255]  # (x + 1) * 127.5 rounded, clamped
    feats = fid_mod.image_features(images(7, 0), tiny_extractor(), batch_size=3)
    assert feats.shape == (7, 5) and feats.dtype == np.float64


def test_fid_metric_end_to_end_with_cached_reference_stats(tmp_path, monkeypatch):
    monkeypatch.setitem(fid_mod.EXTRACTORS, "clean", tiny_extractor)
    ref, same, other = images(300, 0), images(300, 1), images(300, 2, shift=0.6)
    opts = {"fid": {"stats_dir": str(tmp_path), "reference": "test"}}
    fid = METRICS.get("fid").fn
    run = lambda s: split_output("fid", fid(EvalContext(s, ref, data_kind="image", options=opts)))
    (near, settings), (far, _) = run(same), run(other)
    assert 0 <= near["fid"] < 0.2 * far["fid"]
    files = list(tmp_path.glob("fid_ref_*.npz"))
    assert len(files) == 1 and settings["reference_stats"] == files[0].name
    with np.load(files[0]) as z:
        meta = json.loads(str(z["meta"]))
    assert meta["count"] == 300 and meta["resize_mode"] == "nearest-x2"
    assert meta["extractor_sha256"] == "0" * 64
    assert settings["extractor_sha256"] == "0" * 64 and settings["n_reference"] == 300
    # the second call read the cache: it gives the same reference statistics without recomputing
    calls = []
    counting = lambda x, e, b=100: calls.append(len(x)) or np.zeros((len(x), 5))
    monkeypatch.setattr(fid_mod, "image_features", counting)
    fid_mod.reference_stats(ref, tiny_extractor(), tmp_path)
    assert calls == []


def test_missing_and_wrong_inception_weights(tmp_path, monkeypatch):
    monkeypatch.delenv(fid_mod.INCEPTION_ENV, raising=False)
    with pytest.raises(FileNotFoundError) as err:
        fid_mod.inception_weights()
    msg = str(err.value)
    assert fid_mod.INCEPTION_URL in msg and fid_mod.INCEPTION_ENV in msg and fid_mod.INCEPTION_SHA256 in msg
    monkeypatch.setenv(fid_mod.INCEPTION_ENV, str(tmp_path / "nowhere" / fid_mod.INCEPTION_FILE))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fid_mod.inception_weights()
    fake = tmp_path / fid_mod.INCEPTION_FILE
    fake.write_bytes(b"not the network")
    with pytest.raises(ValueError, match="SHA-256"):
        fid_mod.inception_weights(fake)
    with pytest.raises(FileNotFoundError, match=fid_mod.INCEPTION_ENV):
        METRICS.get("fid").fn(EvalContext(samples=images(3, 0), reference=images(3, 1), data_kind="image",
                                          options={"fid": {"inception": str(tmp_path / "missing.pt")}}))


def test_fd_digits_weights_are_pinned_and_separate_real_from_noise():
    assert sha256_of(weights_path()) == DIGITS_CNN_SHA256
    assert weights_path().stat().st_size < 1_000_000
    from odebench.bench.data import load_dataset

    ds = load_dataset("digits", 0)
    noise = torch.rand(len(ds.test), 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fd = lambda s, r: split_output("fd_digits", METRICS.get("fd_digits").fn(
        EvalContext(samples=s, reference=r, data_kind="image")))[0]["fd_digits"]
    real, fake = fd(ds.test, ds.train), fd(noise, ds.test)
    assert real < 0.05 * fake, (real, fake)
    assert digits_features(ds.test[:5]).shape == (5, 64)
    with pytest.raises(ValueError, match="8, 8"):
        digits_features(torch.zeros(2, 1, 4, 4))


def test_fd_digits_rejects_tampered_weights(tmp_path, monkeypatch):
    from odebench.metrics import digits_features as dmod

    bad = tmp_path / "digits_cnn.pt"
    bad.write_bytes(weights_path().read_bytes() + b"\0")
    monkeypatch.setattr(dmod, "weights_path", lambda: bad)
    dmod.load_digits_cnn.cache_clear()
    try:
        with pytest.raises(ValueError, match="SHA-256"):
            dmod.load_digits_cnn()
    finally:
        dmod.load_digits_cnn.cache_clear()


def _spd(d, seed):
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_frechet_distance_closed_forms():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([2.0, 2.0, 1.5])
    # diagonal (commuting) covariances: |mu1 - mu2|^2 + sum (s1 - s2)^2
    fd = frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2))
    assert fd == pytest.approx(5.0 + 2.0, abs=1e-10)
    # general: tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2), by symmetric eigendecompositions
    c1, c2 = _spd(4, 0), _spd(4, 1)

    def sqrt_psd(c):
        w, v = np.linalg.eigh(c)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    r1 = sqrt_psd(c1)
    expected = np.trace(c1 + c2 - 2 * sqrt_psd(r1 @ c2 @ r1))
    assert frechet_distance(np.zeros(4), c1, np.zeros(4), c2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(np.zeros(4), c1, np.zeros(4), c1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_agrees_with_clean_fid():
    try:
        cfid = pytest.importorskip("cleanfid.fid")
    except ImportError as exc:  # clean-fid installed without torchvision
        pytest.skip(f"cleanfid.fid not importable: {exc}")
    c1, c2 = _spd(5, 2), _spd(5, 3)
    mu1, mu2 = np.arange(5.0), np.ones(5)
    theirs = cfid.frechet_distance(mu1, c1, mu2, c2)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(theirs, rel=1e-8)


def test_reference_stats_key_changes_with_the_extractor(tmp_path):
    ref = images(50, 0)
    _, _, p1 = fid_mod.reference_stats(ref, tiny_extractor(), tmp_path)
    other = tiny_extractor()
    other = fid_mod.FeatureExtractor(other.name, "1" * 64, other.features, other.resize, other.resize_mode)
    _, _, p2 = fid_mod.reference_stats(ref, other, tmp_path)
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()
    assert p1 != p2 and digest(p1) != digest(p2)


def test_fid_compares_with_the_training_split_by_default(tmp_path, monkeypatch):
    """The papers' protocol: statistics of the training set, not of the held-out split."""
    monkeypatch.setitem(fid_mod.EXTRACTORS, "clean", tiny_extractor)
    train, test, samples = images(200, 0), images(50, 1, shift=0.5), images(100, 2)
    fid = METRICS.get("fid").fn
    ctx = lambda **o: EvalContext(samples, test, data_kind="image", train_reference=train,
                                  options={"fid": {"stats_dir": str(tmp_path), **o}})
    by_default, settings = split_output("fid", fid(ctx()))
    on_train, _ = split_output("fid", fid(ctx(reference="train")))
    on_test, test_settings = split_output("fid", fid(ctx(reference="test")))
    assert by_default == on_train != on_test
    assert settings["reference_split"] == "train" and settings["n_reference"] == 200
    assert test_settings["reference_split"] == "test" and test_settings["n_reference"] == 50
    with pytest.raises(ValueError, match="training split"):
        fid(EvalContext(samples, test, data_kind="image", options={"fid": {"stats_dir": str(tmp_path)}}))
    with pytest.raises(ValueError, match="reference must be"):
        fid(ctx(reference="val"))


@pytest.fixture
def fake_clean_fid(monkeypatch, tmp_path):
    """clean-fid's two entry points FID calls, recorded instead of run (no weights, no clean-fid here):
    ``calls`` receives ("resizer", mode) and ("inception", resize_inside)."""
    import sys
    import types

    calls = []

    class InceptionV3W(torch.nn.Module):
        def __init__(self, path, download, resize_inside):
            super().__init__()
            calls.append(("inception", resize_inside))

        def forward(self, x):
            return x.mean((2, 3))

    def build_resizer(mode):
        calls.append(("resizer", mode))
        return lambda img: img

    package = types.ModuleType("cleanfid")
    torchscript, resize = types.ModuleType("cleanfid.inception_torchscript"), types.ModuleType("cleanfid.resize")
    torchscript.InceptionV3W, resize.build_resizer = InceptionV3W, build_resizer
    for name, module in (("cleanfid", package), ("cleanfid.inception_torchscript", torchscript),
                         ("cleanfid.resize", resize)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(fid_mod, "inception_weights", lambda path=None: tmp_path / fid_mod.INCEPTION_FILE)
    return calls


@pytest.mark.parametrize("mode, inside", [("clean", False), ("legacy_tensorflow", True)])
def test_the_spec_chooses_clean_fids_mode_and_the_record_carries_it(tmp_path, fake_clean_fid, mode, inside):
    """'legacy_tensorflow' (the published numbers' protocol) resizes inside the network with TensorFlow's resize
    and leaves the images as they are outside; 'clean' resizes outside with PIL and not inside."""
    fid = METRICS.get("fid").fn
    ctx = EvalContext(images(20, 2), images(30, 1), data_kind="image", options={"fid": {
        "stats_dir": str(tmp_path), "reference": "test", "mode": mode}})
    value, settings = split_output("fid", fid(ctx))
    assert fake_clean_fid == [("inception", inside), ("resizer", mode)]
    assert settings["mode"] == mode and settings["resize_mode"] == mode and np.isfinite(value["fid"])


def test_an_unknown_fid_mode_is_refused_with_the_choices(tmp_path):
    fid = METRICS.get("fid").fn
    with pytest.raises(ValueError, match="legacy_tensorflow"):
        fid(EvalContext(images(20, 2), images(30, 1), data_kind="image",
                        options={"fid": {"stats_dir": str(tmp_path), "reference": "test", "mode": "tensorflow"}}))
    from harness_tiny import tiny_spec

    from odebench.bench.harness.spec.sweep import SpecError, parse_spec

    raw = tiny_spec()
    raw["eval"] = {**raw["eval"], "metric_options": {"fid": {"mode": "tensorflow"}}}
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert any("mode" in p and "legacy_tensorflow" in p for p in info.value.problems)
