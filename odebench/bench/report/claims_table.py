"""The claims ``odebench claims`` checks, as data: which cells each compares and what it says about them.

Each :class:`Check` is one measured comparison of a claim (a claim with several parts has several checks); the
engine (odebench.bench.report.claims) evaluates it on every dataset of the sweep its ``where`` admits and
judges it by the one rule of odebench.bench.report.verdict. Sides name cells by method, hparams, solver and
budget; ``budget`` is an NFE (fixed-step solvers), ``TIGHT`` (the adaptive solver at its tightest tolerance:
the most accurate solve) or ``EACH_TOL`` (one check per tolerance the records hold). ``metric`` is a record
column, ``HEADLINE`` (the dataset's headline metric: W2 for point sets, fd_digits for digits), ``NFE`` (the
NFE actually used) or ``NFE_TO_10`` (per seed, the smallest Euler NFE whose headline value is within 10 % of the
same model's own value at dopri5's tightest tolerance).

Relations (the claimed interval of d = A - B, lower is better):
  ``below``        d < 0;
  ``not_above``    d < m, with m = REL_MARGIN x |mean of B| (path metrics and NLL, which have no floor);
  ``floor_above``  d < m, with m = FLOOR_MARGIN x the floor's std (sample quality);
  ``same_floor``   -m < d < m, m as above;
  ``at_floor``     A - floor mean < m (no B: A against the dataset's two-sample floor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HEADLINE, NFE, NFE_TO_10 = "headline", "nfe", "nfe_to_10pct"
TIGHT, EACH_TOL = "tight", "each_tol"
#: non-inferiority margin where no floor exists, relative to B's mean
REL_MARGIN = 0.05
#: margin of the floor relations, in units of the floor's standard deviation over draws
FLOOR_MARGIN = 2.0
#: costs within this factor of each other count as matched training compute (claim 11)
COST_MATCH = 1.25
#: the fixed budgets of claim 11's rankings
RANK_NFE = (4, 16)


@dataclass(frozen=True)
class Side:
    """Cells of one method configuration: ``method`` name, ``hp`` values that must match, solver and budget
    (None: any; with ``budget=None`` the most accurate solve the records hold is used)."""

    method: str
    hp: dict[str, Any] = field(default_factory=dict)
    solver: str | None = None
    budget: Any = None

    def text(self) -> str:
        hp = ", ".join(f"{k}={v}" for k, v in self.hp.items())
        where = f"{self.solver or ''}" + (f"@{self.budget}" if self.budget is not None else "")
        return f"{self.method}{f'({hp})' if hp else ''}" + (f" {where}" if where else "")


@dataclass(frozen=True)
class Check:
    """One comparison of a claim (see the module docstring for ``metric``, ``relation`` and ``where``:
    "any" dataset, "gaussian" source, "transfer" (a source dataset), "image" target)."""

    claim: int
    part: str
    statement: str
    paper_of: str  # the method whose paper makes the claim (its citation names it)
    a: Side
    b: Side | None
    metric: str
    relation: str
    where: str = "any"


RF1, RF2, RF3 = Side("rf", {"k": 1, "distill": False}), Side("rf", {"k": 2, "distill": False}), \
    Side("rf", {"k": 3, "distill": False})
EULER1 = {"solver": "euler", "budget": 1}


def _at(side: Side, **where) -> Side:
    return Side(side.method, side.hp, where.get("solver"), where.get("budget"))


CHECKS: tuple[Check, ...] = (
    Check(1, "a", "Rectification does not increase the transport cost: 2-RF vs 1-RF", "rf", RF2, RF1,
          "transport_cost", "not_above"),
    Check(1, "b", "Rectification does not increase the transport cost: 3-RF vs 2-RF", "rf", RF3, RF2,
          "transport_cost", "not_above"),
    Check(2, "a", "Reflow straightens the flow: straightness of 2-RF below 1-RF", "rf", RF2, RF1,
          "straightness", "below"),
    Check(2, "b", "Reflow straightens the flow: straightness of 3-RF not above 2-RF", "rf", RF3, RF2,
          "straightness", "not_above"),
    Check(3, "", "One Euler step gets better with reflow: 2-RF below 1-RF at NFE 1", "rf", _at(RF2, **EULER1),
          _at(RF1, **EULER1), HEADLINE, "below"),
    Check(4, "", "Distilled 2-RF beats one Euler step of the same 2-RF", "rf",
          Side("rf", {"k": 2, "distill": True}, "euler", 1), _at(RF2, **EULER1), HEADLINE, "below"),
    Check(5, "rf", "Rectified flow carries any source to any target: 1-RF at dopri5 reaches the floor", "rf",
          _at(RF1, solver="dopri5", budget=TIGHT), None, HEADLINE, "at_floor", "transfer"),
    Check(5, "interpolant", "Interpolants carry any source to any target: at dopri5 they reach the floor",
          "interpolant", Side("interpolant", {}, "dopri5", TIGHT), None, HEADLINE, "at_floor", "transfer"),
    Check(6, "a", "Curvature-minimizing forward process: curvature below 1-RF (independent coupling)",
          "curvature_min", Side("curvature_min"), RF1, "curvature", "below", "gaussian"),
    *(Check(6, f"b NFE {n}", f"Curvature-minimizing forward process: Euler at NFE {n} better than 1-RF",
            "curvature_min", Side("curvature_min", {}, "euler", n), _at(RF1, solver="euler", budget=n), HEADLINE,
            "below", "gaussian") for n in (1, 2, 4)),
    Check(6, "c", "Curvature-minimizing forward process: dopri5 quality within the margin of 1-RF's",
          "curvature_min", Side("curvature_min", {}, "dopri5", TIGHT), _at(RF1, solver="dopri5", budget=TIGHT),
          HEADLINE, "floor_above", "gaussian"),
    Check(7, "a", "OT path needs fewer function evaluations than the diffusion path: dopri5 NFE at equal "
          "tolerance", "fm_ot", Side("fm_ot", {}, "dopri5", EACH_TOL), Side("fm_diffusion", {}, "dopri5", EACH_TOL),
          NFE, "below", "gaussian"),
    Check(7, "b", "OT path needs fewer function evaluations: smallest Euler NFE within 10 % of its own dopri5",
          "fm_ot", Side("fm_ot", {}, "euler"), Side("fm_diffusion", {}, "euler"), NFE_TO_10, "below", "gaussian"),
    Check(8, "", "The OT path is straighter than the diffusion path", "fm_ot", Side("fm_ot"), Side("fm_diffusion"),
          "straightness", "below", "gaussian"),
    Check(9, "ddpm", "Flow matching's likelihood is at least as good as DDPM's (bits/dim)", "fm_ot", Side("fm_ot"),
          Side("ddpm"), "nll.bpd", "not_above", "image"),
    Check(9, "edm", "Flow matching's likelihood is at least as good as EDM's (bits/dim)", "fm_ot", Side("fm_ot"),
          Side("edm"), "nll.bpd", "not_above", "image"),
    Check(10, "", "A stochastic interpolant's ODE and SDE samplers give the same law (distance to the data, NFE 64)",
          "interpolant", Side("interpolant", {}, "euler_maruyama", 64), Side("interpolant", {}, "euler", 64),
          HEADLINE, "same_floor"),
)

#: claim 11 is a measurement, not a comparison: its rows rank the methods (odebench.bench.report.claims)
RANKING = (11, "At matched training compute, the ranking of methods at NFE 4 and 16", "fm_ot")

#: the few-step frontier (claims 12 and 13): the flow-map methods sampled through their map (solver flow_map), one
#: network call per jump; at NFE 128 the shortcut model's jumps are its finest level (flow matching), which its
#: paper compares its one step with. The rf sides are one Euler step (matched steps: the compute column shows the
#: reflow and distillation rounds behind them).
FLOW_MAP1 = {"solver": "flow_map", "budget": 1}
CHECKS += (
    Check(12, "", "A shortcut model's one step is within the floor margin of its own 128 steps", "shortcut",
          Side("shortcut", {}, **FLOW_MAP1), Side("shortcut", {}, "flow_map", 128), HEADLINE, "floor_above"),
    Check(13, "rf", "MeanFlow's one step beats one Euler step of 2-RF", "meanflow", Side("meanflow", {}, **FLOW_MAP1),
          _at(RF2, **EULER1), HEADLINE, "below"),
    Check(13, "distilled", "MeanFlow's one step is no worse than distilled 2-RF's (one network call each)",
          "meanflow", Side("meanflow", {}, **FLOW_MAP1), Side("rf", {"k": 2, "distill": True}, "euler", 1), HEADLINE,
          "floor_above"),
)
