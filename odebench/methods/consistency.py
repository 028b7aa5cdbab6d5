"""Consistency models (Song, Dhariwal, Chen, Sutskever 2023): consistency training from scratch (CT) and
consistency distillation of a teacher's probability-flow ODE (CD).

A consistency model learns f(x, sigma): the end, at the data, of the probability-flow ODE trajectory through x at
noise level sigma, in one network call. The path is EDM's variance-exploding one, x_sigma = x1 + sigma n with
n ~ N(0, I), on EDM's noise range [sigma_min, sigma_max] = [0.002, 80], and the network F is wrapped so that the
boundary condition f(x, sigma_min) = x holds exactly, whatever F computes:

    f(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, ln(sigma) / 4)
    c_skip = sigma_data^2 / ((sigma - sigma_min)^2 + sigma_data^2)
    c_out  = sigma_data (sigma - sigma_min) / sqrt(sigma_data^2 + sigma^2),   c_in = 1 / sqrt(sigma^2 + sigma_data^2)

Unified time, as ``methods/edm.py``: sigma is affine in our time t (t = 0 the source, t = 1 the data),

    sigma(t) = sigma_max + t (sigma_min - sigma_max),   alpha_t = 1,

and the source is N(0, sigma_max^2 I) at t = 0; a training pair's source draw x0 gives the noise, n = x0 / sigma_max.

Training. Both losses compare the model at two adjacent levels sigma_hi > sigma_lo of Karras et al.'s
discretisation (N levels from sigma_max down to sigma_min, uniform in sigma^(1 / rho), rho = 7), the pair index
drawn uniformly:

    L = d( f_theta(x1 + sigma_hi n, sigma_hi),  f_target(x_lo, sigma_lo) ),   target: stop-gradient

CT takes x_lo = x1 + sigma_lo n (the same n: the unbiased one-sample estimate of the ODE's step); CD takes x_lo
from one Heun step of the teacher's probability-flow ODE from x1 + sigma_hi n (two teacher calls a step). The
target network is an EMA of the online weights with decay mu, updated after every optimiser step
(theta_target <- mu theta_target + (1 - mu) theta). CT grows N and mu with the training step k of K:

    N(k)  = ceil( sqrt( k / K ((s1 + 1)^2 - s0^2) + s0^2 ) - 1 ) + 1,      mu(k) = exp( s0 ln(mu0) / N(k) )

with the paper's CIFAR-10 settings s0 = 2, s1 = 150, mu0 = 0.9; CD keeps N = 18 and mu = 0.95 fixed. The distance
d is the squared L2 distance averaged over dimensions (``distance = "l2"``), or the pseudo-Huber distance of
improved CT, sqrt(||a - b||^2 + c^2) - c with c = 0.00054 sqrt(dim) (``"pseudo_huber"``); the paper's LPIPS
has no meaning on toy data or 8 x 8 digits (docs/decisions.md). The held-out loss of the convergence curve uses
the final discretisation N(K) with the evaluated network as its own target (its self-consistency), and leaves the
target network and the step count alone. A consistency loss is no progress measure on its own: a near-constant
random network is nearly self-consistent, so CT's curve may rise while its samples improve.

Teacher (CD). ``teacher`` names a registered method trained first as the parent (default ``edm``, the paper's
teacher); any method that offers a data prediction ``x1_hat`` and a noise schedule works (``fm_ot``, ``rf``
round 1, ``ddpm``...). Its ODE is stepped in EDM's variables: with s = sigma_t / alpha_t of the teacher's own
path and y = x / alpha_t, every Gaussian path is variance exploding, y = x1 + s n, and its probability-flow ODE
is dy/ds = (y - D(y, s)) / s with D(y, s) = x1_hat(alpha_t y, t(s)); a velocity flow's x1_hat is its velocity
converted on its path (methods/probability_paths.py). The teacher's trained networks are loaded into the
frozen ``teacher`` entry before training (``prepare``), so every teacher call is in the measured per-step cost,
and the teacher's own training is in the record's total through the parent chain. With an ``edm`` teacher the
student starts from the teacher's weights, as the paper's code does (same network, nearly the same
preconditioning); from another teacher it starts fresh.

Sampling. The model defines no velocity (ODE solvers, straightness and the likelihood are skipped with the
reason) and one flow map, the jump to the data: ``flow_map(x, r, t)`` is f(x, sigma(r)) for t = 1 and refuses
any other t (``Unsupported``): the model learned nothing about intermediate states. The ``consistency``
solver samples it: jump, re-noise with fresh noise to the next level, jump again (NFE = jumps).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from odebench.bench.core.fields import Unsupported
from odebench.bench.core.schedules import NoiseSchedule, karras_levels
from odebench.methods.base import Dynamics, GaussianPrior, Method, expand_t, get_method, register_method

__all__ = ["ConsistencyDistillation", "ConsistencyTraining", "VarianceExplodingTime", "ct_levels",
           "ct_target_decay"]

CM_CITATION = "Song, Dhariwal, Chen, Sutskever. Consistency Models. ICML 2023. arXiv:2303.01469"
#: the distances d of the consistency loss (docs/decisions.md: LPIPS is not among them)
DISTANCES = ("l2", "pseudo_huber")
#: what a CD teacher's dynamics must offer: its ODE in EDM's variables needs both
TEACHER_NEEDS = frozenset({"x1_hat", "noise_schedule"})


def ct_levels(k: int, total: int, s0: int, s1: int) -> int:
    """N(k): the number of noise levels of consistency training at step k (0-based) of ``total`` steps."""
    frac = min(k, total) / total
    return math.ceil(math.sqrt(frac * ((s1 + 1) ** 2 - s0**2) + s0**2) - 1) + 1


def ct_target_decay(k: int, total: int, s0: int, s1: int, mu0: float) -> float:
    """mu(k) = exp(s0 ln(mu0) / N(k)): the target network's EMA decay after step k of consistency training."""
    if mu0 == 0:
        return 0.0
    return math.exp(s0 * math.log(mu0) / ct_levels(k, total, s0, s1))


class VarianceExplodingTime(NoiseSchedule):
    """EDM's variance-exploding path in unified time: alpha_t = 1, sigma_t = sigma_max + t (sigma_min - sigma_max)."""

    def __init__(self, sigma_min: float, sigma_max: float):
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)

    def sigma(self, t: Tensor) -> Tensor:
        # written from the data end, so that t = 1 gives sigma_min exactly (the boundary condition's level)
        return self.sigma_min + (1 - t) * (self.sigma_max - self.sigma_min)

    def time_of(self, sigma: Tensor) -> Tensor:
        return (self.sigma_max - sigma) / (self.sigma_max - self.sigma_min)

    def alpha_sigma(self, t):
        return torch.ones_like(t), self.sigma(t)

    def t_of_log_snr(self, lam, t0, t1):
        return self.time_of(torch.exp(-lam.to(torch.float64))).clamp(float(t0), float(t1))


class TrainingClock(nn.Module):
    """The training's step count and length, kept with the weights (buffers: saved, never averaged)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))
        self.register_buffer("total", torch.zeros((), dtype=torch.int64))


class Frozen(nn.Module):
    """Networks that are never trained and always in eval mode (the CD teacher): ``nets`` is a ModuleDict."""

    def __init__(self, nets: nn.ModuleDict):
        super().__init__()
        self.nets = nets.requires_grad_(False)

    def train(self, mode: bool = True):
        return super().train(False)


class ConsistencyModel(Method):
    """What CT and CD share: the parametrisation, the target network, the loss around ``lower_state`` and the
    dynamics. Networks: ``F`` (the online network), ``target`` (its EMA, stop-gradient), ``clock``."""

    reference = "arXiv:2303.01469"
    citation = CM_CITATION
    needs_gaussian_source = True
    heldout_not_progress = ("a consistency loss compares the network with itself at the next level: a "
                            "near-constant network is nearly self-consistent (decision 63)")

    def __init__(self, **hparams):
        problems = []
        if not hparams["sigma_data"] > 0:
            problems.append(f"sigma_data must be positive (the data's standard deviation), got {hparams['sigma_data']}")
        if not 0 < hparams["sigma_min"] < hparams["sigma_max"]:
            problems.append(f"need 0 < sigma_min < sigma_max, got {hparams['sigma_min']}, {hparams['sigma_max']}")
        if not hparams["rho"] > 0:
            problems.append(f"rho must be positive, got {hparams['rho']}")
        if hparams["distance"] not in DISTANCES:
            problems.append(f"distance must be one of {DISTANCES}, got {hparams['distance']!r}")
        problems += self.check(hparams)
        if problems:
            raise ValueError(f"{self.name}: " + "; ".join(problems))
        super().__init__(**hparams)
        self.time = VarianceExplodingTime(hparams["sigma_min"], hparams["sigma_max"])

    def check(self, hparams) -> list[str]:
        """Problems with the hparams of the subclass."""
        return []

    # ------------------------------------------------------------------------------------------ the model
    def networks(self, make_net, shape):
        target = make_net().requires_grad_(False)
        return nn.ModuleDict({"F": make_net(), "target": target, "clock": TrainingClock()})

    def prior(self, shape):
        return GaussianPrior(shape, scale=self.hparams["sigma_max"])

    def consistency(self, net: nn.Module, x: Tensor, sigma: Tensor) -> Tensor:
        """f(x, sigma) = c_skip x + c_out F(c_in x, ln(sigma) / 4); x: [B, *shape], sigma: [B]."""
        sd, s_min = self.hparams["sigma_data"], self.hparams["sigma_min"]
        total = sigma**2 + sd**2
        c_skip = expand_t(sd**2 / ((sigma - s_min) ** 2 + sd**2), x)
        c_out = expand_t(sd * (sigma - s_min) / total.sqrt(), x)
        c_in = expand_t(total.rsqrt(), x)
        return c_skip * x + c_out * net(c_in * x, sigma.log() / 4)

    def prepare(self, model, steps, parent_model):
        model["clock"].total.fill_(steps)

    # --------------------------------------------------------------------------------------- the schedule
    def n_levels(self, k: int, total: int) -> int:
        """N at training step k of ``total``."""
        raise NotImplementedError

    def target_decay(self, k: int, total: int) -> float:
        """mu after training step k of ``total``."""
        raise NotImplementedError

    def lower_state(self, model: nn.ModuleDict, x_hi: Tensor, x1: Tensor, noise: Tensor, sigma_hi: Tensor,
                    sigma_lo: Tensor, idx: Tensor, n_levels: int) -> Tensor:
        """The state at sigma_lo the target is evaluated at, given x_hi = x1 + sigma_hi noise ([B, *shape])."""
        raise NotImplementedError

    def levels(self, n: int) -> Tensor:
        """The N noise levels of the discretisation, [N] float64, from sigma_max down to sigma_min."""
        h = self.hparams
        return karras_levels(n - 1, h["sigma_max"], h["sigma_min"], h["rho"])

    @torch.no_grad()
    def advance_target(self, model: nn.ModuleDict) -> None:
        """The target update of the step before this one, then count this step (training calls only)."""
        clock = model["clock"]
        k, total = int(clock.step), int(clock.total)
        online, target = list(model["F"].parameters()), list(model["target"].parameters())
        if k == 0:  # the target starts as the online network
            torch._foreach_copy_(target, online)
        else:
            mu = self.target_decay(k - 1, total)
            torch._foreach_lerp_(target, online, 1 - mu)
        clock.step += 1

    def loss(self, model, x0, x1, gen):
        """d(f(x1 + sigma_hi n, sigma_hi), f_target(x_lo, sigma_lo)) averaged over the batch, n = x0 / sigma_max."""
        h = self.hparams
        clock = model["clock"]
        total = int(clock.total)
        if total < 1:
            raise RuntimeError(f"{self.name}: the model was not prepared for training (its step count is unknown"
                               f"{' and its teacher not loaded' if self.parent() else ''}); train it through "
                               f"odebench's harness, which calls prepare(model, steps, parent_model) first")
        training = torch.is_grad_enabled() and model.training
        k = int(clock.step)
        n = self.n_levels(k, total) if training else self.n_levels(total, total)
        if training:
            self.advance_target(model)
        levels = self.levels(n).to(device=x1.device, dtype=x1.dtype)
        idx = torch.randint(n - 1, (x1.shape[0],), generator=gen, device=x1.device)
        sigma_hi, sigma_lo = levels[idx], levels[idx + 1]
        noise = x0 / h["sigma_max"]
        x_hi = x1 + expand_t(sigma_hi, x1) * noise
        online = self.consistency(model["F"], x_hi, sigma_hi)
        with torch.no_grad():
            x_lo = self.lower_state(model, x_hi, x1, noise, sigma_hi, sigma_lo, idx, n)
            # a held-out evaluation asks how consistent the evaluated network is with itself
            target = self.consistency(model["target" if training else "F"], x_lo, sigma_lo)
        return self.distance(online, target)

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        """The mean over the batch of d(a, b), a and b: [B, *shape]."""
        sq = (a - b).flatten(1).pow(2)
        if self.hparams["distance"] == "l2":
            return sq.mean()
        c = 0.00054 * math.sqrt(sq.shape[1])
        return (sq.sum(1) + c**2).sqrt().sub(c).mean()

    # ------------------------------------------------------------------------------------------ sampling
    def dynamics(self, model):
        net = model["F"]
        time = self.time

        def flow_map(x: Tensor, r: Tensor, t: Tensor) -> Tensor:
            if bool((t != 1).any()):
                raise Unsupported(f"a consistency model maps only to the data end (t = 1), asked for t = "
                                  f"{float(t.min()):g}; sample it with solver 'consistency' (jump, re-noise, jump)")
            return self.consistency(net, x, time.sigma(r))

        return Dynamics(flow_map=flow_map, schedule=time)

    def offers(self):
        return frozenset({"flow_map", "noise_schedule"})


@register_method("consistency_training")
class ConsistencyTraining(ConsistencyModel):
    """Consistency training from scratch (CT): the N(k) curriculum and the mu(k) target decay of the paper."""

    def __init__(self, sigma_data: float = 0.5, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                 distance: str = "l2", s0: int = 2, s1: int = 150, mu0: float = 0.9):
        super().__init__(sigma_data=float(sigma_data), sigma_min=float(sigma_min), sigma_max=float(sigma_max),
                         rho=float(rho), distance=str(distance), s0=int(s0), s1=int(s1), mu0=float(mu0))

    def check(self, hparams):
        if not 2 <= hparams["s0"] <= hparams["s1"]:
            return [f"need 2 <= s0 <= s1 (the curriculum's first and last level counts), got {hparams['s0']}, "
                    f"{hparams['s1']}"]
        if not 0 <= hparams["mu0"] < 1:
            return [f"mu0 must be in [0, 1) (the target network's first EMA decay), got {hparams['mu0']}"]
        return []

    def n_levels(self, k, total):
        h = self.hparams
        return ct_levels(k, total, h["s0"], h["s1"])

    def target_decay(self, k, total):
        h = self.hparams
        return ct_target_decay(k, total, h["s0"], h["s1"], h["mu0"])

    def lower_state(self, model, x_hi, x1, noise, sigma_hi, sigma_lo, idx, n_levels):
        return x1 + expand_t(sigma_lo, x1) * noise


@register_method("consistency_distillation")
class ConsistencyDistillation(ConsistencyModel):
    """Consistency distillation (CD) of the ``teacher``'s probability-flow ODE, one Heun step between levels."""

    def __init__(self, sigma_data: float = 0.5, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                 distance: str = "l2", teacher: str = "edm", n_levels: int = 18, mu: float = 0.95):
        super().__init__(sigma_data=float(sigma_data), sigma_min=float(sigma_min), sigma_max=float(sigma_max),
                         rho=float(rho), distance=str(distance), teacher=str(teacher), n_levels=int(n_levels),
                         mu=float(mu))
        self._teacher_times: dict[tuple[int, torch.dtype, str], tuple[Tensor, Tensor]] = {}

    def check(self, hparams):
        problems = []
        if hparams["n_levels"] < 2:
            problems.append(f"n_levels must be >= 2 (the discretisation's noise levels), got {hparams['n_levels']}")
        if not 0 <= hparams["mu"] < 1:
            problems.append(f"mu must be in [0, 1) (the target network's EMA decay), got {hparams['mu']}")
        try:
            teacher = get_method(hparams["teacher"])
        except (KeyError, ValueError) as exc:
            problems.append(f"teacher: {exc}")
        else:
            missing = TEACHER_NEEDS - teacher.offers()
            if missing:
                problems.append(f"teacher {hparams['teacher']!r} offers no {' and '.join(sorted(missing))}, which its "
                                f"ODE step needs; use a teacher on a Gaussian path such as 'edm' or 'fm_ot'")
        return problems

    def parent(self):
        return get_method(self.hparams["teacher"])

    def trains_on_pairs(self):
        return False

    def networks(self, make_net, shape):
        nets = super().networks(make_net, shape)
        nets["teacher"] = Frozen(self.parent().networks(make_net, shape))
        return nets

    def prepare(self, model, steps, parent_model):
        super().prepare(model, steps, parent_model)
        if parent_model is None:
            raise ValueError(f"{self.name}: distillation needs its trained teacher ({self.hparams['teacher']})")
        model["teacher"].nets.load_state_dict(parent_model.state_dict())
        if self.hparams["teacher"] == "edm":  # the paper's code starts the student from its EDM teacher
            model["F"].load_state_dict(parent_model["F"].state_dict())
            model["target"].load_state_dict(parent_model["F"].state_dict())

    def n_levels(self, k, total):
        return self.hparams["n_levels"]

    def target_decay(self, k, total):
        return self.hparams["mu"]

    def teacher_times(self, n: int, schedule: NoiseSchedule, t0: float, t1: float,
                      like: Tensor) -> tuple[Tensor, Tensor]:
        """(t, alpha_t) of the teacher's path at the N levels' noise-to-signal ratios, [N] each (cached)."""
        key = (n, like.dtype, str(like.device))
        if key not in self._teacher_times:
            t = schedule.t_of_log_snr(-torch.log(self.levels(n)), t0, t1)
            alpha = schedule.alpha_sigma(t)[0]
            self._teacher_times[key] = (t.to(device=like.device, dtype=like.dtype),
                                        alpha.to(device=like.device, dtype=like.dtype))
        return self._teacher_times[key]

    def lower_state(self, model, x_hi, x1, noise, sigma_hi, sigma_lo, idx, n_levels):
        """One Heun step of the teacher's ODE dy/ds = (y - D(y, s)) / s from sigma_hi to sigma_lo."""
        dyn = self.parent().dynamics(model["teacher"].nets)
        times, alphas = self.teacher_times(n_levels, dyn.schedule, dyn.t0, dyn.t1, x_hi)

        def slope(y: Tensor, s: Tensor, i: Tensor) -> Tensor:
            a = expand_t(alphas[i], y)
            return (y - dyn.x1_hat(a * y, times[i])) / expand_t(s, y)

        ds = expand_t(sigma_lo - sigma_hi, x_hi)
        d = slope(x_hi, sigma_hi, idx)
        y_euler = x_hi + ds * d
        return x_hi + ds * 0.5 * (d + slope(y_euler, sigma_lo, idx + 1))
