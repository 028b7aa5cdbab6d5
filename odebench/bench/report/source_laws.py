"""The source law (t = 0) each record's paths start from, so the path metrics are compared within one law only.

Straightness, curvature and transport cost are sizes of the paths from a source draw X0 to a sample X1:
E||X1 - X0||^2 from N(0, 80^2 I) (EDM, whose sampling starts at sigma_max = 80) is of another order than from
N(0, I), whatever the model's quality. The report therefore shows the path metrics of each source law in a
table of its own (N(0, I) first), never two laws in one column.

The law: the source dataset's name where the cell has one, else the method's own prior (``Method.prior``):
``N(0, I)``, or ``N(0, s^2 I)`` for a Gaussian of scale s. A method the registry does not know (an adapter's
model) counts as N(0, I), the prior every adapter in the suite samples from.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

#: the law most methods start from; its table comes first and keeps the plain title
STANDARD = "N(0, I)"


def law_text(scale: float) -> str:
    """'N(0, I)' for unit scale, 'N(0, 80^2 I)' otherwise."""
    return STANDARD if scale == 1.0 else f"N(0, {scale:g}^2 I)"


@lru_cache(maxsize=256)
def _prior_law(method_json: str) -> str:
    from odebench.methods import METHODS, get_method
    from odebench.methods.base import GaussianPrior

    method = json.loads(method_json)
    name = method.get("name")
    if name not in METHODS:
        return STANDARD
    if any(method.get(k) == "data" for k in METHODS.get(name).data_hparams):
        return f"{name}'s prior, scaled by each data draw"  # resolved per seed (tables.drawn_hparams_as_data)
    try:
        prior = get_method(name, **{k: v for k, v in method.items() if k != "name"}).prior((1,))
    except Exception:  # a config this version refuses (an old record): its class default is the best guess
        try:
            prior = METHODS.get(name)().prior((1,))
        except Exception:
            return STANDARD
    return law_text(prior.scale) if isinstance(prior, GaussianPrior) else type(prior).__name__


def source_law(config: dict[str, Any]) -> str:
    """The source law of a record's config (module docstring)."""
    if config.get("source", "gaussian") != "gaussian":
        return str(config["source"])
    return _prior_law(json.dumps(config.get("method") or {}, sort_keys=True, default=str))
