"""Diffusion baselines of Song et al. (2021): the VP-SDE with epsilon prediction (``ddpm``) and the VE-SDE
with a noise-scaled score network (``score_ve``).

Time. Diffusion time s in [0, 1] runs from the data (s = 0) to noise (s = 1); the harness's unified time is
t = 1 - s. **Networks take the unified time t = 1 - s as their time input**, so every method's network sees
t in [0, 1] with t = 1 at the data end. Training draws s ~ U[s_eps, 1] (s_eps = 1e-5) and sampling stops at
t1 = 1 - sampling_eps, short of s = 0 where sigma(s) -> 0 makes the score singular. Song et al.'s official
code (score_sde run_lib) trains both SDEs with eps = 1e-5 but samples the VP-SDE to 1e-3 and the VE-SDE to
1e-5; ``sampling_eps`` is an hparam with those defaults. Why 1e-3 for VP: the PF-ODE velocity carries
eps_hat / sigma, and sigma(1e-5) ~ 1e-3 amplifies the network's error near the data a thousandfold; a
solver that evaluates at t1 (heun, rk4) then lands far off at small budgets.

Both families are Gaussian paths x_s = a(s) x_data + sigma(s) eps with the forward SDE
dx = f(s) x ds + g(s) dW:

    VP: a = exp(-T(s) / 2), sigma^2 = 1 - a^2, f = -beta(s) / 2, g^2 = beta(s),
        beta(s) = beta_min + (beta_max - beta_min) s
    VE: a = 1, sigma = sigma_min (sigma_max / sigma_min)^s, f = 0,
        g^2 = d sigma^2 / ds = 2 sigma^2 log(sigma_max / sigma_min)

A trained model gives eps_hat(x, s) ~ E[eps | x_s = x], hence the score grad log p_s(x) = -eps_hat / sigma(s).
With dt = -ds the samplers integrate, in unified time,

    reverse SDE    dx = (-f x + g^2 score) dt + g dW                       (solver ``euler_maruyama``, ``pc``)
    PF-ODE         dx/dt = -f x + g^2 score / 2                            (every ODE solver)
    ancestral      x_{s'} ~ q(x_{s'} | x_s, x0_hat), x0_hat = (x - sigma eps_hat) / a   (solver ``ancestral``)

Protocol of Song et al.'s official code, followed here (docs/decisions.md lists what differs):
- **Final noise removal** (hparam ``denoise``, default on): every SDE sampler (``euler_maruyama``,
  ``ancestral``, ``pc``) ends with one more network call at t1 that maps its state to Tweedie's
  E[x_data | x_s] = (x - sigma eps_hat) / a, the sample at s = 0 (their ``noise_removal``: the last
  predictor step lands on s = 0 and returns its mean). It is one NFE of the budget. ODE solvers never apply it.
- **Likelihood to s = 1e-5**: the NLL integral ends at ``nll_eps`` = 1e-5 for both SDEs (their likelihood
  code), while VP sampling stops at 1e-3.
- **VE predictor** (``score_ve`` hparam ``predictor``): the ``pc`` solver's predictor is the reverse-diffusion
  step of their VE configs by default.

The data-prediction samplers (DDIM, DPM-Solver++, UniPC, EDM's) get x1_hat = (x - sigma eps_hat) / a and the path
alpha_t = a(1 - t), sigma_t = sigma(1 - t) (capabilities ``x1_hat`` and ``noise_schedule``).

For VP these are dx/dt = beta(1-t)/2 (x - eps_hat / sigma) (PF-ODE) and
dx = beta (x/2 + score) dt + sqrt(beta) dW (reverse SDE) (docs/maths.md). The source draw x0 of a training
pair is the noise: eps = x0 / prior scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from odebench.bench.core.schedules import NoiseSchedule
from odebench.bench.core.solvers import LangevinCorrector
from odebench.methods.base import Dynamics, GaussianPrior, Method, expand_t, register_method
from odebench.methods.probability_paths import VPSchedule

__all__ = ["DDPM", "GaussianDiffusion", "Schedule", "VEScoreSDE", "song_ermon_sigma_max"]

SONG_CITATION = ("Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole. Score-Based Generative Modeling through "
                 "Stochastic Differential Equations. ICLR 2021. arXiv:2011.13456")


@dataclass(frozen=True)
class Schedule:
    """Coefficients of the path and forward SDE at diffusion times s, each shaped like s ([B]).

    Attributes:
        log_alpha: log a(s); sigma: sigma(s); f: forward drift coefficient f(s); g2: squared diffusion g(s)^2.
    """

    log_alpha: Tensor
    sigma: Tensor
    f: Tensor
    g2: Tensor


class DiffusionSchedule(NoiseSchedule):
    """A diffusion method's path in unified time: alpha_t = a(1 - t), sigma_t = sigma(1 - t)."""

    def __init__(self, method: GaussianDiffusion):
        self.method = method

    def alpha_sigma(self, t):
        sch = self.method.schedule(1 - t)
        return sch.log_alpha.exp(), sch.sigma

    def log_snr(self, t):
        sch = self.method.schedule(1 - t)
        return sch.log_alpha - torch.log(sch.sigma)

    def t_of_log_snr(self, lam, t0, t1):
        s = self.method.s_of_log_snr(lam.to(torch.float64))
        return super().t_of_log_snr(lam, t0, t1) if s is None else (1 - s).clamp(t0, t1)


class GaussianDiffusion(Method):
    """Shared maths of the VP and VE families; subclasses give ``schedule`` and ``eps_hat``."""

    reference = "arXiv:2011.13456"
    citation = SONG_CITATION
    needs_gaussian_source = True
    #: smallest diffusion time trained on (Song et al.'s eps); sampling stops at ``sampling_eps``
    s_eps: float = 1e-5
    sampling_eps: float = 1e-5
    #: standard deviation of the prior N(0, scale^2 I) at s = 1
    prior_scale: float = 1.0
    #: where the likelihood integral stops (Song et al.'s likelihood code: 1e-5, for VP and VE alike)
    nll_eps: float = 1e-5

    def schedule(self, s: Tensor) -> Schedule:
        raise NotImplementedError

    def eps_hat(self, model: nn.ModuleDict, x: Tensor, s: Tensor) -> Tensor:
        """Predicted noise E[eps | x_s = x], [B, *shape], for x: [B, *shape] and diffusion times s: [B]."""
        raise NotImplementedError

    def s_of_log_snr(self, lam: Tensor) -> Tensor | None:
        """The diffusion time of log-SNR lam in closed form, or None (bisection)."""
        return None

    def prior(self, shape):
        return GaussianPrior(shape, self.prior_scale)

    # ------------------------------------------------------------------------------------------ training
    def loss(self, model, x0, x1, gen):
        """E || eps_hat(x_s, s) - eps ||^2, s ~ U[s_eps, 1], x_s = a(s) x1 + sigma(s) eps, eps = x0 / scale.

        Averaged over batch and dimensions. For VE this is denoising score matching weighted by sigma^2.
        """
        s = self.s_eps + (1 - self.s_eps) * torch.rand(x1.shape[0], generator=gen, device=x1.device)
        sch = self.schedule(s)
        eps = x0 / self.prior_scale
        x_s = expand_t(sch.log_alpha.exp(), x1) * x1 + expand_t(sch.sigma, x1) * eps
        return (self.eps_hat(model, x_s, s) - eps).pow(2).mean()

    # ------------------------------------------------------------------------------------------ sampling
    def score(self, model: nn.ModuleDict):
        """grad_x log p_t(x) = -eps_hat(x, 1 - t) / sigma(1 - t) as a field in unified time."""

        def score(x: Tensor, t: Tensor) -> Tensor:
            s = 1 - t
            return -self.eps_hat(model, x, s) / expand_t(self.schedule(s).sigma, x)

        return score

    def x1_hat(self, model: nn.ModuleDict):
        """E[x_data | x_t = x] = (x - sigma eps_hat) / a as a field in unified time."""

        def x1_hat(x: Tensor, t: Tensor) -> Tensor:
            s = 1 - t
            sch = self.schedule(s)
            return (x - expand_t(sch.sigma, x) * self.eps_hat(model, x, s)) / expand_t(sch.log_alpha.exp(), x)

        return x1_hat

    def dynamics(self, model):
        def reverse_terms(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
            # (-f x, g^2 score) in unified time; the score is -eps_hat / sigma
            s = 1 - t
            sch = self.schedule(s)
            g2_score = -expand_t(sch.g2 / sch.sigma, x) * self.eps_hat(model, x, s)
            return -expand_t(sch.f, x) * x, g2_score

        def velocity(x, t):  # probability-flow ODE
            linear, g2_score = reverse_terms(x, t)
            return linear + 0.5 * g2_score

        def drift(x, t):  # reverse-time SDE
            linear, g2_score = reverse_terms(x, t)
            return linear + g2_score

        x1_hat = self.x1_hat(model)
        return Dynamics(
            velocity=velocity, drift=drift, diffusion=lambda t: self.schedule(1 - t).g2.sqrt(),
            ancestral_net=lambda x, t: self.eps_hat(model, x, 1 - t), ancestral_step=self.ancestral_step,
            corrector=self.corrector(model), t0=0.0, t1=1 - self.sampling_eps,
            x1_hat=x1_hat, schedule=DiffusionSchedule(self),
            denoise=x1_hat if self.hparams.get("denoise", False) else None,
            predictor_step=self.reverse_diffusion_step if self.hparams.get("predictor") == "reverse_diffusion"
            else None,
            nll_t1=1 - self.nll_eps)

    def offers(self):
        return frozenset({"velocity", "sde", "ancestral", "noise_schedule", "x1_hat"})

    def corrector(self, model: nn.ModuleDict) -> LangevinCorrector | None:
        """The Langevin corrector of the ``pc`` solver; None (the default) if the method defines none."""
        return None

    def ancestral_step(self, x: Tensor, eps: Tensor, t: Tensor, t_next: Tensor, gen: torch.Generator | None,
                       last: bool = False) -> Tensor:
        """One draw from the Gaussian posterior q(x_{s'} | x_s, x0_hat), s = 1 - t > s' = 1 - t_next.

        With r = a(s) / a(s') and v = sigma(s)^2 - r^2 sigma(s')^2 (the variance of x_s given x_{s'}), and
        x0_hat = (x - sigma(s) eps) / a(s), the posterior has mean (x - v eps / sigma(s)) / r and variance
        v sigma(s')^2 / sigma(s)^2 -- Ho et al.'s DDPM step for VP (between arbitrary grid times, with the
        continuous-time alpha-bar a(s)^2) and Song et al.'s SMLD ancestral step for VE (r = 1).

        Args:
            x: [B, *shape] state at t; eps: [B, *shape] the network's eps_hat(x, 1 - t); t, t_next: [B];
            gen: noise generator; last: the step onto t1 returns the mean (no noise).
        """
        now, nxt = self.schedule(1 - t), self.schedule(1 - t_next)
        r = (now.log_alpha - nxt.log_alpha).exp()
        v = (now.sigma**2 - r**2 * nxt.sigma**2).clamp_min(0.0)
        mean = (x - expand_t(v / now.sigma, x) * eps) / expand_t(r, x)
        if last:
            return mean
        std = v.sqrt() * nxt.sigma / now.sigma
        z = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        return mean + expand_t(std, x) * z

    def reverse_diffusion_step(self, x: Tensor, eps: Tensor, t: Tensor, t_next: Tensor,
                               gen: torch.Generator | None, last: bool = False) -> Tensor:
        """Song et al.'s reverse-diffusion predictor between diffusion times s = 1 - t > s' = 1 - t_next.

        The forward chain that the predictor reverses is the path's exact transition x_s = r x_{s'} + sqrt(v) z
        (r = a(s) / a(s'), v = sigma(s)^2 - r^2 sigma(s')^2); reversing the discretised SDE gives
        x_{s'} = (2 - r) x + v score + sqrt(v) z, score = -eps / sigma(s). For VE (r = 1) this is their
        predictor exactly (v = sigma(s)^2 - sigma(s')^2); for VP with DDPM's discrete betas, r = sqrt(1 - beta_i)
        and v = beta_i, also theirs. Arguments as :meth:`ancestral_step`; ``last`` returns the mean.
        """
        now, nxt = self.schedule(1 - t), self.schedule(1 - t_next)
        r = (now.log_alpha - nxt.log_alpha).exp()
        v = (now.sigma**2 - r**2 * nxt.sigma**2).clamp_min(0.0)
        mean = expand_t(2 - r, x) * x - expand_t(v / now.sigma, x) * eps
        if last:
            return mean
        z = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        return mean + expand_t(v.sqrt(), x) * z


@register_method("ddpm")
class DDPM(GaussianDiffusion):
    """VP-SDE with epsilon prediction: beta(s) = beta_min + (beta_max - beta_min) s, continuous time.

    The network (key ``"eps"``) predicts eps from (x_s, t = 1 - s). Samplers: ``ancestral`` (DDPM),
    ``euler_maruyama`` (reverse SDE) and every ODE solver (probability-flow ODE); no Langevin corrector.
    """

    reference = "arXiv:2006.11239; arXiv:2011.13456"
    citation = ("Ho, Jain, Abbeel. Denoising Diffusion Probabilistic Models. NeurIPS 2020. arXiv:2006.11239; "
                + SONG_CITATION)

    sampling_hparams = ("sampling_eps", "denoise")

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, sampling_eps: float = 1e-3,
                 denoise: bool = True):
        if not 0 < beta_min < beta_max:
            raise ValueError(f"ddpm needs 0 < beta_min < beta_max, got {beta_min}, {beta_max}")
        self.sampling_eps = check_sampling_eps(sampling_eps, self.s_eps)
        super().__init__(beta_min=float(beta_min), beta_max=float(beta_max), sampling_eps=self.sampling_eps,
                         denoise=check_flag(denoise, "ddpm", "denoise"))
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)
        self.vp = VPSchedule(self.beta_min, self.beta_max)

    def networks(self, make_net, shape):
        return nn.ModuleDict({"eps": make_net()})

    def schedule(self, s):
        beta = self.vp.beta(s)
        return Schedule(log_alpha=self.vp.log_alpha(s), sigma=self.vp.alpha_sigma(s)[1], f=-beta / 2, g2=beta)

    def eps_hat(self, model, x, s):
        return model["eps"](x, 1 - s)

    def s_of_log_snr(self, lam):
        return self.vp.s_of_log_snr(lam)


@register_method("score_ve")
class VEScoreSDE(GaussianDiffusion):
    """VE-SDE (NCSN / SMLD): sigma(s) = sigma_min (sigma_max / sigma_min)^s, prior N(0, sigma_max^2 I).

    Parameterisation (NCSN++'s ``scale_by_sigma``): the network (key ``"score"``) outputs
    n(x, t) = sigma(s) * score(x, s) ~ -eps, so score = n / sigma and eps_hat = -n. The loss
    E || n + eps ||^2 = E sigma^2 || score_theta - grad log q(x_s | x) ||^2 is denoising score matching with
    Song et al.'s weighting lambda(s) = sigma(s)^2.

    ``sigma_max = "data"`` (the default) applies Song & Ermon's rule ("Improved techniques", technique 1):
    sigma_max is the largest pairwise distance of the training split (:func:`song_ermon_sigma_max`, rounded
    to 4 significant digits). The harness resolves it before anything is trained
    (``odebench.bench.harness.execution.data_hparams``), so the number itself keys the model cache, is written into
    every record and is printed by ``--dry-run``; a number given in the spec is used as it is. The built-in sets
    give moons 6.6, spirals 6.7, swissroll 6.0, circles 7.6, 8gaussians 8.1, digits 9.5, checkerboard 11.3.

    Sampling (hparams that do not touch the trained model): the ``pc`` solver runs ``corrector_steps``
    Langevin steps per grid time with target ``snr``, then the ``predictor``: ``"reverse_diffusion"`` (Song et
    al.'s VE configs; :meth:`reverse_diffusion_step`) or ``"euler_maruyama"``. From their official code: the
    corrector runs before the predictor at each time; the Langevin step size is e = 2 alpha (snr ||z|| /
    ||score||)^2 with the norms averaged over the batch (alpha = 1 for VE); the update is
    x + e score + sqrt(2 e) z; the defaults are snr = 0.16 and one corrector step (CIFAR-10 configs).
    ``denoise`` ends every SDE sampler with the noise-removal call (module docstring).
    """

    reference = "arXiv:2011.13456; arXiv:2006.09011"
    citation = (SONG_CITATION + "; Song, Ermon. Improved Techniques for Training Score-Based Generative "
                "Models. NeurIPS 2020. arXiv:2006.09011")

    sampling_hparams = ("corrector_steps", "snr", "sampling_eps", "predictor", "denoise")
    #: hparams the harness computes from the training split when the spec leaves them at "data"
    data_hparams = {"sigma_max": "largest pairwise distance of the training split (Song & Ermon's rule)"}
    PREDICTORS = ("reverse_diffusion", "euler_maruyama")

    def __init__(self, sigma_min: float = 0.01, sigma_max: float | str = "data", corrector_steps: int = 1,
                 snr: float = 0.16, sampling_eps: float = 1e-5, predictor: str = "reverse_diffusion",
                 denoise: bool = True):
        if sigma_max != "data" and not 0 < sigma_min < sigma_max:
            raise ValueError(f"score_ve needs 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}; set "
                             f"sigma_max to about the largest pairwise distance of the data (sigma_max = "
                             f"\"data\" computes it)")
        if int(corrector_steps) != corrector_steps or corrector_steps < 0:
            raise ValueError(f"score_ve corrector_steps must be an integer >= 0, got {corrector_steps!r}")
        if snr <= 0:
            raise ValueError(f"score_ve snr must be positive, got {snr}")
        if predictor not in self.PREDICTORS:
            raise ValueError(f"score_ve predictor must be one of {', '.join(self.PREDICTORS)}; got {predictor!r}")
        self.sampling_eps = check_sampling_eps(sampling_eps, self.s_eps)
        super().__init__(sigma_min=float(sigma_min), sigma_max=sigma_max if sigma_max == "data" else float(sigma_max),
                         corrector_steps=int(corrector_steps), snr=float(snr), sampling_eps=self.sampling_eps,
                         predictor=predictor, denoise=check_flag(denoise, "score_ve", "denoise"))
        self.sigma_min = float(sigma_min)
        if sigma_max != "data":
            self.sigma_max = float(sigma_max)
            self.log_ratio = math.log(self.sigma_max / self.sigma_min)

    @classmethod
    def resolve_data_hparam(cls, name: str, train: Tensor) -> float:
        """The value of data hparam ``name`` for a training split train: [N, *shape]."""
        if name != "sigma_max":
            raise KeyError(name)
        return float(f"{song_ermon_sigma_max(train):.4g}")

    def __getattr__(self, name):
        # sigma_max = "data" must be resolved by the harness before the method is trained or sampled
        if name in ("sigma_max", "log_ratio"):
            raise RuntimeError('score_ve: sigma_max = "data" has not been resolved from a training split; '
                               "run it through the harness (odebench run) or give sigma_max a number")
        raise AttributeError(name)

    @property
    def prior_scale(self) -> float:
        return self.sigma_max

    def networks(self, make_net, shape):
        return nn.ModuleDict({"score": make_net()})

    def schedule(self, s):
        sigma = self.sigma_min * torch.exp(self.log_ratio * s)
        return Schedule(log_alpha=torch.zeros_like(s), sigma=sigma, f=torch.zeros_like(s),
                        g2=2 * self.log_ratio * sigma**2)

    def eps_hat(self, model, x, s):
        return -model["score"](x, 1 - s)

    def s_of_log_snr(self, lam):
        return (-lam - math.log(self.sigma_min)) / self.log_ratio  # sigma = e^-lam

    def offers(self):
        return frozenset({"velocity", "sde", "ancestral", "corrector", "noise_schedule", "x1_hat"})

    def corrector(self, model):
        # with corrector_steps = 0 the pc solver is its predictor alone
        return LangevinCorrector(self.score(model), self.hparams["corrector_steps"], self.hparams["snr"])


def check_flag(value, method: str, name: str) -> bool:
    """``value`` if it is a bool, else raise naming the hparam."""
    if not isinstance(value, bool):
        raise ValueError(f"{method} {name} must be true or false, got {value!r}")
    return value


def check_sampling_eps(value: float, s_eps: float) -> float:
    """``value`` as a float if s_eps <= value < 1 (the network is trained on s >= s_eps only), else raise."""
    if not s_eps <= value < 1:
        raise ValueError(f"sampling_eps must lie in [{s_eps}, 1) (networks are trained on s >= {s_eps}); "
                         f"got {value}")
    return float(value)


def song_ermon_sigma_max(x: Tensor, chunk: int = 4096) -> float:
    """Largest pairwise Euclidean distance of x: [N, *shape] (Song & Ermon's rule for sigma_max).

    Computed exactly in chunks of rows, so memory stays O(chunk * N).
    """
    flat = x.flatten(1).float()
    best = 0.0
    for block in flat.split(chunk):
        best = max(best, torch.cdist(block, flat).max().item())
    return best
