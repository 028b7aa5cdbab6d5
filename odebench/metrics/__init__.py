"""Metrics: pure functions of tensors (and of a velocity field where needed), plus their registry.

The built-in metrics are the modules of this package; the registry imports them the first time it is asked for
a name, so a new module with a ``@register_metric`` function is found without an edit here. Third-party
metrics join through the ``odebench.metrics`` entry-point group.
"""

from odebench.metrics.registry import METRICS, EvalContext, Metric, MetricUndefined, register_metric

__all__ = ["METRICS", "EvalContext", "Metric", "MetricUndefined", "register_metric"]
