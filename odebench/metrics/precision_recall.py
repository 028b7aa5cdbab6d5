"""Improved precision and recall (Kynkäänniemi, Karras, Laine, Lehtinen, Aila 2019, arXiv:1904.06991).

Each set's manifold is the union of balls around its points, the radius of each ball being the distance to
the point's k-th nearest neighbour within its own set (k = 3 by default, as in the paper). Then

    precision = fraction of generated points inside the real manifold,
    recall    = fraction of real points inside the generated manifold.

Precision measures fidelity (samples land where data is), recall measures coverage (data is reached by
samples). Vectors are compared in their own coordinates; images in a feature space: the shipped digits
classifier's 64-d features for 8x8 digits (``features = "digits"``, the default for them), raw pixels
otherwise (``features = "raw"``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from odebench.metrics import computed_once
from odebench.metrics.registry import EvalContext, MetricUndefined, register_metric

__all__ = ["knn_radii", "manifold_coverage", "precision_recall"]


def knn_radii(x: Tensor, k: int = 3, chunk: int = 1024) -> Tensor:
    """[N] distance from each row of x: [N, F] to its k-th nearest other row."""
    if not 1 <= k < len(x):
        raise ValueError(f"k must be in [1, {len(x) - 1}] for {len(x)} points, got {k}")
    out = []
    for c in x.split(chunk):
        d = torch.cdist(c, x)
        out.append(d.kthvalue(k + 1, dim=1).values)  # the smallest distance is the point to itself
    return torch.cat(out)


def manifold_coverage(query: Tensor, support: Tensor, radii: Tensor, chunk: int = 1024) -> Tensor:
    """Fraction of query rows within radii[j] of some support row j (query: [M, F], support: [N, F])."""
    inside = [(torch.cdist(c, support) <= radii[None]).any(1) for c in query.split(chunk)]
    return torch.cat(inside).double().mean()


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """(precision, recall) of fake: [M, ...] against real: [N, ...] (flattened, float64)."""
    r, f = real.flatten(1).double(), fake.flatten(1).double()
    precision = manifold_coverage(f, r, knn_radii(r, k))
    recall = manifold_coverage(r, f, knn_radii(f, k))
    return float(precision), float(recall)


# ------------------------------------------------------------------------------------------ registry entries
def _features(ctx: EvalContext, x: Tensor, kind: str, held_out: bool) -> Tensor:
    """The features of x (the held-out set: computed once per process; the cell's samples: once per cell)."""
    if kind == "raw":
        return x.flatten(1)
    if kind == "digits":
        from odebench.metrics.digits_features import digits_features

        if held_out:
            return computed_once.per_process("digits_features", x, digits_features)
        return computed_once.per_cell(ctx.cache, "digits_features", x, digits_features)
    raise ValueError(f"precision/recall: unknown features {kind!r}; use 'raw' or 'digits'")


def _pr(ctx: EvalContext, name: str) -> tuple[float, float, dict]:
    opts = ctx.opts(name)
    unknown = set(opts) - {"k", "max_points", "features"}
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {sorted(unknown)}; allowed: features, k, max_points")
    is_digits = ctx.data_kind == "image" and tuple(ctx.samples.shape[1:]) == (1, 8, 8)
    kind = opts.get("features", "digits" if is_digits else "raw")
    k, n = int(opts.get("k", 3)), int(opts.get("max_points", 5000))
    if min(len(ctx.reference[:n]), len(ctx.samples[:n])) <= k:
        raise MetricUndefined(f"{name}: k-NN radii with k = {k} need more than {k} points per set; got "
                              f"{len(ctx.samples[:n])} samples and {len(ctx.reference[:n])} held-out points")
    key = ("precision_recall", kind, k, n)
    if key not in ctx.cache:
        real, fake = _features(ctx, ctx.reference[:n], kind, True), _features(ctx, ctx.samples[:n], kind, False)
        ctx.cache[key] = (*precision_recall(real, fake, k), {"k": k, "features": kind, "n_real": len(real),
                                                             "n_fake": len(fake)})
    return ctx.cache[key]


@register_metric("precision", higher_is_better=True, reference="arXiv:1904.06991",
                 variant="k-NN manifold, k = 3",
                 reading='Precision is a share in [0, 1], higher is better; 0 means no sample lies near the data.')
def _precision(ctx: EvalContext) -> dict:
    """Improved precision: share of samples inside the k-NN manifold of held-out data."""
    p, _, settings = _pr(ctx, "precision")
    return {"precision": p, "settings": settings}


@register_metric("recall", higher_is_better=True, reference="arXiv:1904.06991",
                 variant="k-NN manifold, k = 3",
                 reading='Recall is a share in [0, 1], higher is better; 0 means the samples cover none of the data.')
def _recall(ctx: EvalContext) -> dict:
    """Improved recall: share of held-out data inside the k-NN manifold of the samples."""
    _, r, settings = _pr(ctx, "recall")
    return {"recall": r, "settings": settings}
