"""Samplers on a data prediction: DDIM, DPM-Solver++ (2M, 3M, 2M SDE) and UniPC.

They need the ``x1_hat`` capability: a data prediction D(x, t) = E[x1 | x_t = x] and the path's alpha_t, sigma_t
(x_t = alpha_t x1 + sigma_t x0, x0 ~ N(0, I) independent of x1). On such a path the probability-flow ODE is

    dx/dt = (sigma'/sigma) x + (alpha' - sigma' alpha / sigma) D(x, t),

linear in x but for D, so its exact solution from s to t is x_t = (sigma_t / sigma_s) x_s + sigma_t times an
integral of e^lambda D over the log-SNR lambda = log(alpha / sigma). The samplers differ in how they
approximate D along the step (docs/maths.md, "Samplers on a data prediction"); with h = lambda_t - lambda_s and
E = e^-h = (alpha_s sigma_t) / (sigma_s alpha_t) (finite where alpha_s = 0 or sigma_t = 0), the first-order
step, which DDIM and DPM-Solver++ share, is

    x_t = (sigma_t / sigma_s) x_s + alpha_t (1 - E) D(x_s, s).

Every coefficient is computed once per solve, in float64 on the host, before the loop; a step then launches
only its own few operations (a scaled sum of the state and the stored predictions) besides the network call, and
never synchronises with the device. One network call per step (NFE = the number of steps); the last step adds
no noise (stochastic variants return its mean), as Euler-Maruyama does.

The order rules follow the peers' defaults (diffusers' DPMSolverMultistepScheduler and
UniPCMultistepScheduler, ``lower_order_final=True``): multistep methods warm up with lower orders, a step onto
sigma = 0 is first order, and with fewer than 15 steps the last step is first order (the last two at most
second order for 3M). UniPC lowers the order of its last step whatever the step count.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import Tensor

from odebench.bench.core.fields import CountingField, Dynamics, SolveResult
from odebench.bench.core.schedules import clean_ratios, to_device
from odebench.bench.core.solvers.base import Solver, register_solver
from odebench.bench.core.time_grids import make_grid

#: below this many steps the last step(s) drop to lower order (the peers' ``lower_order_final``)
LOWER_ORDER_FINAL_BELOW = 15


def _log(v: float) -> float:
    return math.log(v) if v > 0 else -math.inf


class DataPredictionSolver(Solver):
    """Shared loop of the samplers that step with x1_hat on the path's (alpha, sigma); subclasses write
    ``_sample``. A budget of n NFE buys n steps."""

    requires = frozenset({"x1_hat"})
    evals_per_step = 1

    def run(self, dyn, x0, *, nfe, rtol, atol, grid, gen, trajectory):
        if nfe is None:
            raise ValueError(f"fixed-step solver {self.name!r} needs an NFE budget (nfe=...)")
        # a schedule that reaches sigma = 0 beyond t1 (dyn.data_t1: a diffusers model's clean end) is where these
        # samplers end, their last step landing on the data prediction of the last grid point
        span = dyn if dyn.data_t1 is None else replace(dyn, t1=dyn.data_t1)
        ts = make_grid(grid, self.steps_for(nfe), span, dtype=torch.float64)
        return self.integrate(dyn, x0, ts, gen=gen, trajectory=trajectory)

    def integrate(self, dyn: Dynamics, x0: Tensor, ts: Tensor, *, gen: torch.Generator | None = None,
                  trajectory: bool = False) -> SolveResult:
        """Sample from x0 at ts[0] through the increasing times ``ts`` [n + 1] of the method's time (any spacing,
        e.g. a peer's time steps); the schedule is read at ``ts`` in float64."""
        self.check(dyn)
        ts64 = ts.detach().to(device="cpu", dtype=torch.float64)
        alpha, sigma = dyn.schedule.alpha_sigma(ts64)
        a = alpha.tolist()
        s = clean_ratios(a, sigma.tolist())
        lam = [_log(ai) - _log(si) for ai, si in zip(a, s, strict=True)]
        n = len(a) - 1
        t_dev = to_device(ts64, x0.device, x0.dtype)
        t_in = t_dev[:, None].expand(n + 1, x0.shape[0]).unbind(0)  # views made once, before the loop
        f = CountingField(dyn.x1_hat)
        states = [x0] if trajectory else None
        x = self._sample(f, x0, t_in, a, s, lam, gen, states)
        traj = torch.stack(states) if states is not None else None
        return SolveResult(x=x, nfe=f.nfe, t=t_dev, trajectory=traj)

    def _sample(self, f, x, t_in, a: list[float], s: list[float], lam: list[float],
                gen: torch.Generator | None, states: list[Tensor] | None) -> Tensor:
        raise NotImplementedError


def _ratio(a: list[float], s: list[float], i: int) -> float:
    """E = e^-h of step i (from point i to i + 1) as (alpha_i sigma_{i+1}) / (sigma_i alpha_{i+1})."""
    return a[i] * s[i + 1] / (s[i] * a[i + 1])


def _noise(x: Tensor, gen) -> Tensor:
    return torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)


class DDIM(DataPredictionSolver):
    """DDIM (Song, Meng, Ermon) on x1_hat: x_t = alpha_t D + sqrt(sigma_t^2 - c^2) eps_hat + c z with
    eps_hat = (x_s - alpha_s D) / sigma_s and c = eta sigma_t sqrt(1 - E^2); eta = 0 is deterministic, eta = 1
    the DDPM posterior step (SDE-DPM-Solver++ of first order)."""

    eta: float = 0.0

    def _sample(self, f, x, t_in, a, s, lam, gen, states):
        n = len(a) - 1
        for i in range(n):
            e = _ratio(a, s, i)
            c = self.eta * s[i + 1] * math.sqrt(max(1.0 - e * e, 0.0))
            k = math.sqrt(max(s[i + 1] ** 2 - c * c, 0.0))  # scale of eps_hat in x_t
            d = f(x, t_in[i])
            x_next = x.mul(k / s[i]).add_(d, alpha=a[i + 1] - k * a[i] / s[i])
            if c > 0 and i < n - 1:  # the last step returns the mean
                x_next.add_(_noise(x, gen), alpha=c)
            x = x_next
            if states is not None:
                states.append(x)
        return x


@register_solver("ddim")
class DDIMDeterministic(DDIM):
    description = "DDIM with eta = 0 on the data prediction (deterministic; first-order exponential integrator)"


@register_solver("ddim_eta1")
class DDIMAncestral(DDIM):
    description = "DDIM with eta = 1 on the data prediction (the DDPM posterior step; the last returns its mean)"
    kind = "sde"
    eta = 1.0


def dpm_orders(n: int, order: int, final_sigma_zero: bool) -> list[int]:
    """The order of each of n DPM-Solver++ steps (the peers' warm-up and ``lower_order_final`` rule)."""
    out = []
    for i in range(n):
        last = i == n - 1 and (n < LOWER_ORDER_FINAL_BELOW or final_sigma_zero)
        second_last = i == n - 2 and n < LOWER_ORDER_FINAL_BELOW
        if order == 1 or i < 1 or last:
            out.append(1)
        elif order == 2 or i < 2 or second_last:
            out.append(2)
        else:
            out.append(3)
    return out


class DPMSolverPP(DataPredictionSolver):
    """DPM-Solver++ multistep (Lu et al.) in data prediction, order 2 ("midpoint" form) or 3, ODE or SDE.

    With h = lambda_t - lambda_s, E = e^-h and r_k = h_{i-k} / h (the previous log-SNR steps over this one):

        2M:      x_t = (sigma_t/sigma_s) x + alpha_t (1 - E) (D_i + (D_i - D_{i-1}) / (2 r_1))
        3M:      x_t = (sigma_t/sigma_s) x + alpha_t (1 - E) D0 + alpha_t ((E - 1)/h + 1) D1
                       - alpha_t ((E - 1 + h)/h^2 - 1/2) D2
                 D1_0 = (D_i - D_{i-1}) / r_1, D1_1 = (D_{i-1} - D_{i-2}) / r_2,
                 D1 = D1_0 + r_1 / (r_1 + r_2) (D1_0 - D1_1), D2 = (D1_0 - D1_1) / (r_1 + r_2)
        2M SDE:  x_t = (sigma_t/sigma_s) E x + alpha_t (1 - E^2) (D_i + (D_i - D_{i-1}) / (2 r_1))
                       + sigma_t sqrt(1 - E^2) z
    """

    order: int = 2
    sde: bool = False

    def _sample(self, f, x, t_in, a, s, lam, gen, states):
        n = len(a) - 1
        orders = dpm_orders(n, self.order, s[-1] == 0.0)
        hist: list[Tensor] = []  # D at the last points, newest first
        for i in range(n):
            d = f(x, t_in[i])
            hist = [d, *hist[:2]]
            coef_x, coefs = self._coefficients(i, orders[i], a, s, lam)
            x_next = x.mul(coef_x)
            for c, m in zip(coefs, hist, strict=False):
                if c != 0.0:
                    x_next.add_(m, alpha=c)
            if self.sde and i < n - 1:
                e = _ratio(a, s, i)
                x_next.add_(_noise(x, gen), alpha=s[i + 1] * math.sqrt(max(1.0 - e * e, 0.0)))
            x = x_next
            if states is not None:
                states.append(x)
        return x

    def _coefficients(self, i: int, order: int, a, s, lam) -> tuple[float, list[float]]:
        """(coefficient of x, coefficients of D_i, D_{i-1}, D_{i-2}) of step i at the given order."""
        e = _ratio(a, s, i)
        if self.sde:
            coef_x, phi1 = s[i + 1] / s[i] * e, a[i + 1] * (1.0 - e * e)
        else:
            coef_x, phi1 = s[i + 1] / s[i], a[i + 1] * (1.0 - e)
        if order == 1:
            return coef_x, [phi1]
        h = lam[i + 1] - lam[i]
        p = h / (lam[i] - lam[i - 1])  # 1 / r_1 (0 after an infinite first step)
        if order == 2:
            return coef_x, [phi1 * (1 + 0.5 * p), -phi1 * 0.5 * p]
        r0, r1 = 1 / p if p else math.inf, (lam[i - 1] - lam[i - 2]) / h
        q = 1 / r1
        w = r0 / (r0 + r1) if math.isfinite(r1) else 0.0
        u = 1 / (r0 + r1)
        em1 = math.expm1(-h)  # E - 1, accurate for small h
        phi2 = a[i + 1] * (em1 / h + 1.0)
        phi3 = a[i + 1] * ((em1 + h) / h**2 - 0.5)
        # D1 = (1 + w) p (D_i - D_{i-1}) - w q (D_{i-1} - D_{i-2});  D2 = u p (D_i - D_{i-1}) - u q (D_{i-1} - D_{i-2})
        c0 = phi1 + phi2 * (1 + w) * p - phi3 * u * p
        c1 = -phi2 * ((1 + w) * p + w * q) + phi3 * u * (p + q)
        c2 = phi2 * w * q - phi3 * u * q
        return coef_x, [c0, c1, c2]


@register_solver("dpmpp_2m")
class DPMSolverPP2M(DPMSolverPP):
    description = "DPM-Solver++(2M): second-order multistep exponential integrator on the data prediction"


@register_solver("dpmpp_3m")
class DPMSolverPP3M(DPMSolverPP):
    description = "DPM-Solver++(3M): third-order multistep exponential integrator on the data prediction"
    order = 3


@register_solver("dpmpp_2m_sde")
class DPMSolverPP2MSDE(DPMSolverPP):
    description = "SDE-DPM-Solver++(2M): second-order multistep solver of the reverse SDE on the data prediction"
    kind = "sde"
    sde = True


def unipc_orders(n: int, order: int = 2) -> list[int]:
    """UniPC's predictor order at each of n steps: warm-up, then ``order``, the last step(s) lowered."""
    return [min(order, i + 1, n - i) for i in range(n)]


@register_solver("unipc")
class UniPC(DataPredictionSolver):
    """UniPC (Zhao et al.), order 2, B(h) = e^h - 1 ("bh2"), data prediction, as diffusers' default.

    Each step i evaluates D_i at the predicted point, corrects that point with UniC (from the corrected point
    i - 1, D_{i-1}, D_{i-2} and D_i itself: no extra network call), then predicts point i + 1 with UniP (which,
    at order 2 with bh2, is DPM-Solver++(2M)). The corrected point's prediction is the uncorrected one's (the
    network is not called again). Coefficients: docs/maths.md, "Samplers on a data prediction".
    """

    description = "UniPC-2 (bh2): predictor-corrector multistep solver on the data prediction, one NFE per step"
    order = 2

    def _sample(self, f, x, t_in, a, s, lam, gen, states):
        n = len(a) - 1
        orders = unipc_orders(n, self.order)
        hist: list[Tensor] = []  # D at the last points, newest first
        last = x
        for i in range(n):
            d = f(x, t_in[i])
            if i >= 1:  # UniC: correct the point i just evaluated, from the corrected point i - 1
                coef_x, c = self._corrector(i, orders[i - 1], a, s, lam)
                x = last.mul(coef_x).add_(hist[0], alpha=c[0]).add_(d, alpha=c[2])
                if c[1] != 0.0:
                    x.add_(hist[1], alpha=c[1])
                if states is not None:
                    states[-1] = x
            hist = [d, *hist[:1]]
            last = x
            phi1 = a[i + 1] * (1.0 - _ratio(a, s, i))  # UniP: at order 2 with bh2 this is DPM-Solver++(2M)
            if orders[i] == 1:
                x = x.mul(s[i + 1] / s[i]).add_(d, alpha=phi1)
            else:
                p = (lam[i + 1] - lam[i]) / (lam[i] - lam[i - 1])
                x = x.mul(s[i + 1] / s[i]).add_(d, alpha=phi1 * (1 + 0.5 * p)).add_(hist[1], alpha=-phi1 * 0.5 * p)
            if states is not None:
                states.append(x)
        return x

    @staticmethod
    def _corrector(i: int, order: int, a, s, lam) -> tuple[float, list[float]]:
        """UniC-bh2 from point i - 1 to point i: (coefficient of the corrected point i - 1, coefficients of
        D_{i-1}, D_{i-2}, D_i)."""
        h = lam[i] - lam[i - 1]
        hh = -h
        em1 = math.expm1(hh)  # h phi_1 in the peers' notation, and B(h) for bh2
        phi_k = em1 / hh - 1.0
        b1 = phi_k / em1
        b2 = (phi_k / hh - 0.5) * 2.0 / em1
        if order == 1:
            rho_a, rho_b, inv_r = 0.0, 0.5, 0.0
        else:
            r = (lam[i - 2] - lam[i - 1]) / h
            rho_a = (b1 - b2) / (1.0 - r)  # the 2 x 2 system R rho = b, solved in closed form
            rho_b = b1 - rho_a
            inv_r = 1.0 / r
        at = a[i]
        c_prev2 = -at * em1 * rho_a * inv_r  # on D_{i-2}
        c_new = -at * em1 * rho_b  # on D_i
        c_prev = -at * em1 + at * em1 * (rho_a * inv_r + rho_b)  # on D_{i-1}
        return s[i] / s[i - 1], [c_prev, c_prev2, c_new]
