"""Metrics: pure functions of tensors (and of a velocity field where needed), plus their registry.

Importing this package registers the built-in metrics.
"""

from metrics.registry import METRICS, EvalContext, Metric, register_metric

from metrics import fid, likelihood, paths, precision_recall, quality  # noqa: E402,F401  isort: skip

__all__ = ["METRICS", "EvalContext", "Metric", "register_metric"]
