"""The claims ``odebench claims`` checks, as data: which cells each compares and what it says about them.

Each :class:`Check` is one measured comparison of a claim (a claim with several parts has several checks); the
engine (odebench.bench.report.claims) evaluates it on every dataset of the sweep its ``where`` admits and
judges it by the one rule of odebench.bench.report.verdict. Sides name cells by method, hparams, solver and
budget; ``budget`` is an NFE (fixed-step solvers), ``TIGHT`` (the adaptive solver at its tightest tolerance:
the most accurate solve) or ``EACH_TOL`` (one check per tolerance the records hold). ``metric`` is a record
column, ``HEADLINE`` (the dataset's headline metric: W2 for point sets, fd_digits for digits), ``NFE`` (the
NFE actually used) or ``NFE_TO_10`` (per seed, the smallest Euler NFE whose headline value is within 10 % of a
threshold common to both sides: the better of the two models' values at dopri5's tightest tolerance, or the
dataset's two-sample floor mean where that is higher; censored above the largest budget when none is).

Relations (the claimed interval of d = A - B, lower is better; m the quantity's margin in ``MARGINS``):
  ``below``        d < 0 (no margin);
  ``not_above``    d < m (non-inferiority: path metrics and NLL);
  ``floor_above``  d < m (non-inferiority of sample quality);
  ``same_floor``   -m < d < m (equivalence, judged by two one-sided tests);
  ``at_floor``     A - floor mean < m (no B: A against the dataset's two-sample floor).

``MARGINS`` is the one table of margins: per quantity, the smallest difference a reader of the claim would act on,
stated before any result was read (docs/claims.md gives each reason). A margin is an amount in the quantity's own
units, or a stated fraction of a number fixed by the dataset alone (W2^2 between the source and data laws, the
two-sample floor's mean), never of a measured method value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HEADLINE, NFE, NFE_TO_10 = "headline", "nfe", "nfe_to_10pct"
TIGHT, EACH_TOL = "tight", "each_tol"
#: a margin's unit: the quantity's own units, a fraction of W2^2(source law, data law) (the record's
#: ``transport_cost.reference``), or a fraction of the dataset's two-sample floor mean
ABSOLUTE, OF_REFERENCE, OF_FLOOR = "absolute", "of W2^2(source, data)", "of the two-sample floor mean"
#: the relations that carry a margin (non-inferiority and equivalence); ``below`` claims a plain improvement
MARGIN_RELATIONS = ("not_above", "floor_above", "same_floor", "at_floor")
#: ``same_floor`` is an equivalence (two-sided) claim; the others are one-sided
EQUIVALENCE = "same_floor"


@dataclass(frozen=True)
class Margin:
    """The smallest effect of interest of one quantity: ``amount`` in ``unit`` (see ABSOLUTE, ...), and why."""

    amount: float
    unit: str
    reason: str


#: the margins, per quantity (the one place; docs/claims.md repeats the table with the same reasons). A quantity
#: without an entry has no stated margin, and a margin relation on it reads "not measured".
MARGINS: dict[str, Margin] = {
    "transport_cost": Margin(0.01, OF_REFERENCE, "an increase of the cost E|Z1 - Z0|^2 by 1 % of the optimal cost "
                             "W2^2(source, data) is the smallest a reader of 'rectification does not increase the "
                             "transport cost' would count; it is also below the estimate's own resolution (the "
                             "reference's finite-sample bias is about 2 %)"),
    "straightness": Margin(0.001, OF_REFERENCE, "straightness is a mean squared deviation from the straight path and "
                           "bounds the squared error of one Euler step; 0.1 % of W2^2(source, data) is an rms "
                           "one-step error of about 3 % of the distance the flow carries mass"),
    "w2": Margin(0.05, ABSOLUTE, "W2 is in the data's units; 0.05 is half the noise width of the thinnest structure "
                 "of the toy sets (the moons' and spirals' noise, standard deviation 0.1): a displacement of the "
                 "samples by less than that is not visible in them"),
    "sliced_w": Margin(0.05, ABSOLUTE, "in the data's units like W2 (and never above it): the same 0.05"),
    "fd_digits": Margin(0.10, OF_FLOOR, "a Frechet distance in a classifier's features has no unit of its own; a "
                        "tenth of the distance between two independent draws of the data at the same sample size is "
                        "the smallest difference a reader would call a difference in quality"),
    "fd": Margin(0.10, OF_FLOOR, "as fd_digits: a tenth of the data-vs-data distance at the same sample size"),
    "nll.bpd": Margin(0.05, ABSOLUTE, "0.05 bits/dim is a likelihood ratio of 2^0.05 = 1.035 per dimension, about "
                      "1 % of the uniform bound log2(levels) on 8-bit and 17-level images: the smallest gap a "
                      "likelihood table separates models by"),
}
#: the margin factors of the sensitivity table in claims.md (0: every margin relation read strictly)
SENSITIVITY = (0.0, 1.0, 2.0)
#: a seed's value more than this many times the smallest finite value of the same side (or non-finite) has diverged
DIVERGED_FACTOR = 10.0
#: claim 7b: a budget reaches the quality when its headline is within this factor of the common threshold
WITHIN = 1.10
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
    Check(7, "b", "OT path needs fewer function evaluations: smallest Euler NFE within 10 % of the pair's better "
          "dopri5 quality", "fm_ot", Side("fm_ot", {}, "euler"), Side("fm_diffusion", {}, "euler"), NFE_TO_10,
          "below", "gaussian"),
    *(Check(7, f"c NFE {n}", f"OT path gives better samples at few steps: Euler at NFE {n} better than the diffusion "
            "path", "fm_ot", Side("fm_ot", {}, "euler", n), Side("fm_diffusion", {}, "euler", n), HEADLINE, "below",
            "gaussian") for n in (1, 2, 4, 8)),
    Check(8, "", "The OT path is straighter than the diffusion path", "fm_ot", Side("fm_ot"), Side("fm_diffusion"),
          "straightness", "below", "gaussian"),
    Check(9, "ddpm", "Flow matching's likelihood is at least as good as DDPM's (bits/dim)", "fm_ot", Side("fm_ot"),
          Side("ddpm"), "nll.bpd", "not_above", "image"),
    Check(9, "score_ve", "Flow matching's likelihood is at least as good as the score SDE's (bits/dim)", "fm_ot",
          Side("fm_ot"), Side("score_ve"), "nll.bpd", "not_above", "image"),
    Check(10, "", "A stochastic interpolant's ODE and SDE samplers give the same law (distance to the data, NFE 64)",
          "interpolant", Side("interpolant", {}, "euler_maruyama", 64), Side("interpolant", {}, "euler", 64),
          HEADLINE, "same_floor"),
    *(Check(12, teacher, f"Consistency distillation's one step beats one Euler step of its teacher ({teacher})",
            "consistency_distillation", Side("consistency_distillation", {"teacher": teacher}, "consistency/edm", 1),
            Side(teacher, {}, "euler", 1), HEADLINE, "below", "gaussian") for teacher in ("edm", "fm_ot")),
)

#: claim 11 is a measurement, not a comparison: its rows rank the methods (odebench.bench.report.claims)
RANKING = (11, "At matched training compute, the ranking of methods at NFE 4 and 16", "fm_ot")

#: the few-step frontier (claims 13 and 14): the flow-map methods sampled through their map (solver flow_map), one
#: network call per jump; at NFE 128 the shortcut model's jumps are its finest level (flow matching), which its
#: paper compares its one step with. The rf sides are one Euler step (matched steps: the compute column shows the
#: reflow and distillation rounds behind them).
FLOW_MAP1 = {"solver": "flow_map", "budget": 1}
CHECKS += (
    Check(13, "", "A shortcut model's one step is no worse than its own 128 steps (within the margin)", "shortcut",
          Side("shortcut", {}, **FLOW_MAP1), Side("shortcut", {}, "flow_map", 128), HEADLINE, "floor_above"),
    Check(14, "rf", "MeanFlow's one step beats one Euler step of 2-RF", "meanflow", Side("meanflow", {}, **FLOW_MAP1),
          _at(RF2, **EULER1), HEADLINE, "below"),
    Check(14, "distilled", "MeanFlow's one step is no worse than distilled 2-RF's (one network call each)",
          "meanflow", Side("meanflow", {}, **FLOW_MAP1), Side("rf", {"k": 2, "distill": True}, "euler", 1), HEADLINE,
          "floor_above"),
)
