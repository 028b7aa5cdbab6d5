"""FID through clean-fid's Inception pipeline, and ``fd_digits``, a Fréchet distance that runs offline.

Both are the Fréchet distance |mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)) between Gaussian fits of
features (:func:`odebench.metrics.quality.frechet_distance`); they differ only in the feature space.

FID (Heusel et al. 2017) in one of clean-fid's two modes (Parmar, Zhang, Zhu 2022), chosen by
``eval.metric_options.fid.mode`` and recorded with every value (``settings.mode``). Images in [-1, 1] become
uint8 by (x + 1) * 127.5 rounded and clamped (grey images repeat to 3 channels) and go through clean-fid's
``InceptionV3W``, the TorchScript port of TensorFlow's 2015-12-05 Inception, 2048-d pool features, resized to
299x299 either

- ``"clean"`` (the default): by clean-fid's PIL bicubic resizer (``cleanfid.resize.build_resizer("clean")``)
  before the network, antialiased; or
- ``"legacy_tensorflow"``: inside the network, by the TensorFlow graph's own bilinear resize
  (``InceptionV3W(resize_inside=True)``, ``build_resizer("legacy_tensorflow")`` leaves the images as they are):
  the pipeline of TensorFlow's FID code, with which the published CIFAR-10 numbers (DDPM, score SDE, EDM, flow
  matching) were measured. Only this mode is comparable with those numbers; "clean" values differ from them
  (clean-fid reports the two modes apart for CIFAR-10). As in the
papers whose numbers a benchmark is compared with (Song et al., Karras et al.: 50,000 samples against the
statistics of the CIFAR-10 training set), the reference is the target's training split by default
(``reference = "train"``; ``"test"`` compares with the held-out split); the sample count is the spec's
``eval.n_samples`` (the ``cifar10`` spec asks for 50,000) and both are recorded with every value. The
weights file is never downloaded here: give its path with ``eval.metric_options.fid.inception`` or the
environment variable ``ODEBENCH_INCEPTION``; it is checked against :data:`INCEPTION_SHA256` before use.
clean-fid publishes no checksum; the pinned SHA-256 is the digest that k-diffusion (crowsonkb/k-diffusion,
``k_diffusion/evaluation.py``) verifies for the same URL. Reference statistics (mu, Sigma of the held-out
images) are computed locally once and cached as .npz, keyed and labelled by the reference data's hash, the
extractor's hash, the count and the resize mode. In a run the cache is ``<out>/.cache/fid_stats``, inside the
folder the user named like everything else a run writes; ``eval.metric_options.fid.stats_dir`` (or
``$ODEBENCH_FID_STATS``) puts it where the user says. Either way the record names it
(``settings.reference_stats_dir``). Outside a run (an EvalContext without ``cache_dir``) it is
``~/.cache/odebench/fid_stats``.

clean-fid is the optional extra ``fid`` (``pip install odebench[fid]``) and is imported only when FID runs.

``fd_digits``: the same distance in the 64-d penultimate features of a small CNN classifier of the 8x8
``digits`` whose weights ship with odebench (:mod:`odebench.metrics.digits_features`). It needs no download and no GPU,
and it is not comparable with FID: it is never called FID.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from odebench.bench.core import budgets
from odebench.metrics import computed_once
from odebench.metrics.digits_features import DIGITS_CNN_SHA256, digits_features
from odebench.metrics.quality import frechet_distance
from odebench.metrics.registry import EvalContext, MetricUndefined, register_metric

INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_SHA256 = "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4"
INCEPTION_ENV = "ODEBENCH_INCEPTION"
STATS_ENV = "ODEBENCH_FID_STATS"


@dataclass(frozen=True)
class FeatureExtractor:
    """An image feature extractor as FID uses it.

    Attributes:
        name: what it is; sha256: hash of its weights (goes into records and the stats cache key).
        features: [B, 3, S, S] float images with values in [0, 255] -> [B, F] features.
        resize: one [H, W, 3] uint8 image -> [S, S, 3] float32 image in [0, 255].
        resize_mode: a label for ``resize`` (clean-fid's mode name).
    """

    name: str
    sha256: str
    features: Callable[[Tensor], Tensor]
    resize: Callable[[np.ndarray], np.ndarray]
    resize_mode: str


# -------------------------------------------------------------------------------------------- the weights
def _missing_weights_message(problem: str) -> str:
    return (f"FID needs clean-fid's Inception weights: {problem}. Download {INCEPTION_URL} "
            f"(95.6 MB, SHA-256 {INCEPTION_SHA256}), e.g. `curl -L -o ~/.cache/odebench/{INCEPTION_FILE} "
            f"{INCEPTION_URL}`, keep the file name {INCEPTION_FILE!r}, and point the environment variable "
            f"{INCEPTION_ENV} at the file (or set eval.metric_options.fid.inception in the spec). "
            "Without it, use fd_digits (digits) or fd.")


def inception_weights(path: str | Path | None = None) -> Path:
    """The verified Inception weights file: ``path``, else $ODEBENCH_INCEPTION; raises if missing or wrong."""
    given = path or os.environ.get(INCEPTION_ENV)
    if not given:
        raise FileNotFoundError(_missing_weights_message(f"no path given and ${INCEPTION_ENV} is not set"))
    p = Path(given).expanduser()
    if p.is_dir():
        p = p / INCEPTION_FILE
    if not p.is_file():
        raise FileNotFoundError(_missing_weights_message(f"{p} does not exist"))
    if p.name != INCEPTION_FILE:
        raise ValueError(f"clean-fid loads the Inception weights by the file name {INCEPTION_FILE!r}; "
                         f"rename {p}")
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    if digest != INCEPTION_SHA256:
        raise ValueError(_missing_weights_message(f"{p} has SHA-256 {digest}, not the published file's"))
    return p


def clean_inception(path: str | Path | None = None, device: str = "cpu") -> FeatureExtractor:
    """clean-fid's "clean" pipeline: PIL bicubic resize to 299 and InceptionV3W (2048-d pool features)."""
    return clean_fid_inception("clean", path, device)


def legacy_tensorflow_inception(path: str | Path | None = None, device: str = "cpu") -> FeatureExtractor:
    """clean-fid's "legacy_tensorflow" pipeline: images at their own size into InceptionV3W, which resizes them to
    299 inside with TensorFlow's bilinear resize (the published numbers' protocol)."""
    return clean_fid_inception("legacy_tensorflow", path, device)


def clean_fid_inception(mode: str, path: str | Path | None = None, device: str = "cpu") -> FeatureExtractor:
    """clean-fid's feature extractor of ``mode`` ("clean" or "legacy_tensorflow"), as its own
    ``build_feature_extractor`` and ``build_resizer`` set it up: the network resizes inside only in
    "legacy_tensorflow"."""
    weights = inception_weights(path)
    try:
        from cleanfid.inception_torchscript import InceptionV3W
        from cleanfid.resize import build_resizer
    except ImportError as exc:
        raise ImportError("FID needs clean-fid: `pip install 'odebench[fid]'`") from exc
    model = InceptionV3W(str(weights.parent), download=False,
                         resize_inside=mode == "legacy_tensorflow").to(device).eval()

    def features(x: Tensor) -> Tensor:
        with torch.no_grad():
            return model(x.to(device)).cpu()

    return FeatureExtractor("clean-fid InceptionV3W (TF 2015-12-05)", INCEPTION_SHA256, features,
                            build_resizer(mode), mode)


# ------------------------------------------------------------------------------------------ the pipeline
def to_uint8(x: Tensor) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> [N, H, W, 3] uint8: (x + 1) * 127.5 rounded, clamped; grey -> 3 channels."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"FID needs images [N, 1 or 3, H, W], got shape {tuple(x.shape)}")
    u8 = ((x.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    if u8.shape[1] == 1:
        u8 = u8.expand(-1, 3, -1, -1)
    return u8.permute(0, 2, 3, 1).contiguous().numpy()


def image_features(x: Tensor, extractor: FeatureExtractor, batch_size: int = 100) -> np.ndarray:
    """[N, C, H, W] images in [-1, 1] -> [N, F] float64 features (the extractor's resize, then network)."""
    imgs = to_uint8(x)
    out = []
    for start in range(0, len(imgs), batch_size):
        budgets.check_deadline()  # 50,000 images take long: the cell's wall-clock budget covers them
        batch = np.stack([extractor.resize(img) for img in imgs[start:start + batch_size]])
        out.append(extractor.features(torch.from_numpy(batch.astype(np.float32)).permute(0, 3, 1, 2)))
    return torch.cat(out).double().numpy()


def stats_of(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [F] and unbiased covariance [F, F] of features [N, F]; N >= 2 (else MetricUndefined)."""
    if len(feats) < 2:
        raise MetricUndefined(f"a Fréchet distance needs at least 2 points per set; got {len(feats)} "
                              f"(raise eval.n_samples)")
    return feats.mean(0), np.atleast_2d(np.cov(feats, rowvar=False))


def reference_stats(reference: Tensor, extractor: FeatureExtractor, cache_dir: str | Path,
                    batch_size: int = 100) -> tuple[np.ndarray, np.ndarray, Path]:
    """(mu, Sigma, path) of the reference images' features, computed once and cached as .npz with metadata."""
    data_hash = hashlib.sha256(reference.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()
    meta = {"data_sha256": data_hash, "extractor": extractor.name, "extractor_sha256": extractor.sha256,
            "count": len(reference), "resize_mode": extractor.resize_mode, "shape": list(reference.shape[1:])}
    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:20]
    path = Path(cache_dir).expanduser() / f"fid_ref_{key}.npz"
    if path.exists():
        with np.load(path) as z:
            if json.loads(str(z["meta"])) == meta:
                return z["mu"], z["sigma"], path
    mu, sigma = stats_of(image_features(reference, extractor, batch_size))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, mu=mu, sigma=sigma, meta=json.dumps(meta, sort_keys=True))
    os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    return mu, sigma, path


def fid_from_images(samples: Tensor, reference: Tensor, extractor: FeatureExtractor, cache_dir: str | Path,
                    batch_size: int = 100) -> tuple[float, Path]:
    """Fréchet distance of samples vs reference in the extractor's features; the reference side is cached."""
    mu_r, sigma_r, path = reference_stats(reference, extractor, cache_dir, batch_size)
    mu_s, sigma_s = stats_of(image_features(samples, extractor, batch_size))
    return frechet_distance(mu_s, sigma_s, mu_r, sigma_r), path


# ------------------------------------------------------------------------------------------ registry entries
#: how the ``fid`` metric builds its extractor, by clean-fid mode; tests substitute a tiny one
EXTRACTORS: dict[str, Callable[..., FeatureExtractor]] = {"clean": clean_inception,
                                                          "legacy_tensorflow": legacy_tensorflow_inception}


#: the stats folder inside a run's cache folder (EvalContext.cache_dir): ``<out>/.cache/fid_stats``
STATS_SUBDIR = "fid_stats"


def stats_dir(ctx: EvalContext, opts: dict) -> tuple[Path, str]:
    """(the folder FID's reference statistics are cached in, how the record names it): the ``stats_dir`` option
    or ``$ODEBENCH_FID_STATS`` as the user gave it, else ``<out>/.cache/fid_stats`` in a run, else
    ``~/.cache/odebench/fid_stats``."""
    given = opts.get("stats_dir") or os.environ.get(STATS_ENV)
    if given:
        return Path(given).expanduser(), str(given)
    if ctx.cache_dir is not None:
        return Path(ctx.cache_dir) / STATS_SUBDIR, f"<out>/.cache/{STATS_SUBDIR}"
    return Path("~/.cache/odebench/fid_stats").expanduser(), "~/.cache/odebench/fid_stats"


@register_metric("fid", higher_is_better=False, reference="arXiv:1706.08500; clean-fid arXiv:2104.11222",
                 variant="clean-fid 'clean' (default) or 'legacy_tensorflow' mode, TF Inception 2015-12-05 "
                         "(torchscript)", kinds=("image",),
                 headline_rank=1,
                 reading=('FID is >= 0 with a floor above 0 at a finite sample size; compare values only at '
                          'equal sample counts.'))
def _fid(ctx: EvalContext) -> dict:
    """FID (clean-fid's Inception, its 'clean' or 'legacy_tensorflow' mode) of samples vs the training split (or
    held-out data); needs the weights file."""
    opts = ctx.opts("fid")
    unknown = set(opts) - {"inception", "stats_dir", "max_points", "batch_size", "device", "mode", "reference"}
    if unknown:
        raise ValueError(f"fid: unknown option(s) {sorted(unknown)}; allowed: inception, stats_dir, "
                         "max_points, batch_size, device, mode, reference")
    mode = opts.get("mode", "clean")
    if mode not in EXTRACTORS:
        raise ValueError(f"fid: mode {mode!r} not supported; supported: {sorted(EXTRACTORS)} "
                         "('legacy_tensorflow' is the protocol of the published numbers)")
    extractor = EXTRACTORS[mode](opts.get("inception"), opts.get("device", "cpu"))
    split = opts.get("reference", "train")
    if split not in ("train", "test"):
        raise ValueError(f"fid: reference must be 'train' (the papers' protocol) or 'test'; got {split!r}")
    reference = ctx.reference if split == "test" else ctx.train_reference
    if reference is None:
        raise ValueError("fid: reference = 'train' needs the training split, which this evaluation was not given; "
                         "pass EvalContext(train_reference=...) or set eval.metric_options.fid.reference = 'test'")
    n = int(opts.get("max_points", len(ctx.samples)))
    samples = ctx.samples[:n]
    folder, named = stats_dir(ctx, opts)
    value, path = fid_from_images(samples, reference, extractor, folder, int(opts.get("batch_size", 100)))
    return {"fid": value, "settings": {"mode": mode, "extractor": extractor.name, "extractor_sha256": extractor.sha256,
                                       "resize_mode": extractor.resize_mode, "n_samples": len(samples),
                                       "n_reference": len(reference), "reference_split": split,
                                       "reference_stats": path.name, "reference_stats_dir": named}}


@register_metric("fd_digits", higher_is_better=False, reference="odebench digits CNN (not Inception)",
                 variant="Fréchet distance in a digits classifier's 64-d features", kinds=("image",), headline_rank=0,
                 reading=('FD in digits-CNN features is >= 0 with a floor above 0 at a finite sample size; it '
                          'is not FID and not comparable with published FIDs.'))
def _fd_digits(ctx: EvalContext) -> dict:
    """Fréchet distance in the 64-d features of odebench's digits classifier (offline, CPU; not FID)."""
    opts = ctx.opts("fd_digits")
    if set(opts) - {"max_points"}:
        raise ValueError(f"fd_digits: unknown option(s) {sorted(set(opts) - {'max_points'})}; "
                         "allowed: max_points")
    n = int(opts.get("max_points", len(ctx.samples)))
    # features once per sample set: the cell's samples per cell (precision / recall read them too), the held-out
    # set once per process
    fs = computed_once.per_cell(ctx.cache, "digits_features", ctx.samples[:n], digits_features).double().numpy()
    fr = computed_once.per_process("digits_features", ctx.reference, digits_features).double().numpy()
    return {"fd_digits": frechet_distance(*stats_of(fs), *stats_of(fr)),
            "settings": {"extractor": "DigitsCNN penultimate (64-d)", "extractor_sha256": DIGITS_CNN_SHA256,
                         "n_samples": len(fs), "n_reference": len(fr)}}
