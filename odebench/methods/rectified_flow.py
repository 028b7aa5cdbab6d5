"""Rectified flow (Liu, Gong, Liu, 2023): k rounds of reflow and one-step distillation.

Round 1 trains the linear-path loss E || v(x_t, t) - (x1 - x0) ||^2 on the independent coupling
(x0 from the source, x1 from the data). Round k + 1 draws fresh Z0 from the source, sets Z1 = ODE_k(Z0)
with an accurate solver (``pair_solver``, tolerances ``pair_rtol``/``pair_atol``), and trains the same loss
on (Z0, Z1). ``distill=True`` trains instead E || Z1 - (Z0 + v(Z0, 0)) ||^2 on round k's pairs, so that one
Euler step samples. Each round's model is the parent artifact of the next and is cached, never retrained.

The pair settings (``n_pairs``, ``pair_solver``, tolerances / ``pair_nfe``) are hparams, so they key the
model cache and appear in every record of a round k >= 2 or distilled model; round 1 ignores them and keeps
them out of its key, so every later round shares one round-1 model. Defaults: ``n_pairs = 10000`` fresh pairs
per round (half a toy training split, enough that a round is not data-starved at the study's step counts),
solved by ``dopri5`` at ``pair_rtol = pair_atol = 1e-5``; ``pair_nfe = 100`` is the step count used only when
``pair_solver`` is a fixed-step solver.

A distilled model is a one-step map x1 = x0 + v(x0, 0): its network was never trained at t > 0, so its
dynamics refuse any other time (``Unsupported``: a cell with another solver or budget is "skipped" with the
reason). Sample it with ``euler`` at NFE 1.
"""

from __future__ import annotations

import torch

from odebench.bench.core.solvers import SOLVERS, Unsupported, sample
from odebench.methods.base import Dynamics, Method, register_method, uniform_t
from odebench.methods.probability_paths import LinearPath, path_schedule, x1_hat_from_velocity

#: where round k + 1 (or the distilled model) starts: the parent's weights, fine-tuned as in Liu et al.'s reflow
#: code (the default), or a fresh network
INITS = ("parent", "scratch")


@register_method("rf")
class RectifiedFlow(Method):
    """k-rectified flow; ``distill`` adds one-step distillation of the k-th flow."""

    reference = "arXiv:2209.03003"
    citation = ("Liu, Gong, Liu. Flow Straight and Fast: Learning to Generate and Transfer Data with "
                "Rectified Flow. ICLR 2023. arXiv:2209.03003")
    needs_gaussian_source = False  # the linear path and reflow work between any two laws

    def __init__(self, k: int = 1, distill: bool = False, n_pairs: int = 10000, pair_solver: str = "dopri5",
                 pair_rtol: float = 1e-5, pair_atol: float = 1e-5, pair_nfe: int = 100, init: str = "parent"):
        if int(k) < 1:
            raise ValueError(f"rf: k must be >= 1 (number of rectifications), got {k}")
        if init not in INITS:
            raise ValueError(f"rf: init must be one of {INITS} (where round k + 1 starts), got {init!r}")
        super().__init__(k=int(k), distill=bool(distill), n_pairs=int(n_pairs), pair_solver=str(pair_solver),
                         pair_rtol=float(pair_rtol), pair_atol=float(pair_atol), pair_nfe=int(pair_nfe),
                         init=str(init))
        self.path = LinearPath()

    def parent(self):
        h = dict(self.hparams)
        if h["distill"]:
            return RectifiedFlow(**{**h, "distill": False})
        if h["k"] > 1:
            return RectifiedFlow(**{**h, "k": h["k"] - 1})
        return None

    def n_pairs(self):
        return self.hparams["n_pairs"]

    def init_from_parent(self):
        return self.hparams["init"] == "parent"

    def config(self):
        h = self.hparams
        if h["k"] == 1 and not h["distill"]:  # pair and init settings do not affect round 1: keep them out of its key
            return {"name": self.name, "k": 1, "distill": False}
        return super().config()

    @torch.no_grad()
    def make_pairs(self, parent_model, x0, gen):
        """Z1 = ODE_parent(Z0) for Z0 = x0: [N, *shape], solved with the pair solver."""
        h = self.hparams
        adaptive = SOLVERS.get(h["pair_solver"]).adaptive
        res = sample(self.dynamics_of(parent_model), x0, h["pair_solver"],
                     nfe=None if adaptive else h["pair_nfe"],
                     rtol=h["pair_rtol"] if adaptive else None, atol=h["pair_atol"] if adaptive else None)
        return res.x

    def loss(self, model, x0, x1, gen):
        v = model["v"]
        if self.hparams["distill"]:
            t0 = torch.zeros(x0.shape[0], device=x0.device)
            return (x1 - (x0 + v(x0, t0))).pow(2).mean()
        t = uniform_t(x1.shape[0], gen, x1.device)
        ps = self.path.sample(x0, x1, t)
        return (v(ps.x_t, t) - ps.dx_t).pow(2).mean()

    @staticmethod
    def dynamics_of(model):
        return Dynamics(velocity=model["v"])

    def dynamics(self, model):
        if self.hparams["distill"]:
            return Dynamics(velocity=one_step_field(model["v"]))
        x1_hat = x1_hat_from_velocity(model["v"], self.path.coefficients) if self.hparams["k"] == 1 else None
        return Dynamics(velocity=model["v"], schedule=path_schedule(self.path), x1_hat=x1_hat)

    def refuses(self, solver, nfe):
        if self.hparams["distill"] and (solver, nfe) != ("euler", 1):
            return ONE_STEP_ONLY
        return None

    def offers(self):
        """Round 1 (independent coupling from N(0, I)): the linear path's schedule and the data prediction;
        reflow rounds pair Z0 with Z1 = ODE(Z0), so x_t given x1 is no longer Gaussian: the schedule only; a
        distilled model is a one-step map: the velocity only."""
        if self.hparams["distill"]:
            return frozenset({"velocity"})
        if self.hparams["k"] == 1:
            return frozenset({"velocity", "noise_schedule", "x1_hat"})
        return frozenset({"velocity", "noise_schedule"})


#: why a distilled rectified flow refuses every sampler but one Euler step
ONE_STEP_ONLY = ("a distilled rectified flow is a one-step map trained only at t = 0; sample it with solver "
                 "'euler' at nfe = 1")


def one_step_field(net):
    """The distilled net as a field that may only be queried at t = 0 (one Euler step from the source)."""

    def field(x, t):
        if bool((t != 0).any()):
            raise Unsupported(ONE_STEP_ONLY)
        return net(x, t)

    return field
