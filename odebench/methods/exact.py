"""Closed-form laws and velocity fields for Gaussian-mixture problems, in the unified time (t = 0 source x0,
t = 1 data x1). They are the exact answers the property tests compare the library against.

A Gaussian-mixture coupling is a joint law of (x0, x1) in R^D x R^D,

    pi = sum_k w_k N((x0, x1); (m0_k, m1_k), [[C00_k, C01_k], [C01_k^T, C11_k]]),   C01_k = Cov(x0, x1 | k).

It covers the independent coupling of N(0, I) and a Gaussian-mixture target (C01 = 0), the independent
coupling of two smoothed empirical laws (one component per pair of points), a set of smoothed pairs, and a
deterministic affine map x1 = b + A x0 (C01 = C00 A^T, a singular joint covariance).

For an affine path x_t = alpha_t x1 + sigma_t x0 with conditional velocity u_t = alpha'_t x1 + sigma'_t x0
(:mod:`odebench.methods.probability_paths`), (x_t, u_t) is jointly Gaussian inside each component, so

    x_t | k ~ N(mu_k, S_k),      mu_k = alpha m1_k + sigma m0_k,
                                 S_k = alpha^2 C11_k + sigma^2 C00_k + alpha sigma (C01_k + C01_k^T),
    E[u_t | x_t = x, k] = nu_k + G_k S_k^{-1} (x - mu_k),   nu_k = alpha' m1_k + sigma' m0_k,
                                 G_k = Cov(u_t, x_t | k) = alpha' alpha C11_k + sigma' sigma C00_k
                                       + alpha' sigma C01_k^T + sigma' alpha C01_k,

and the marginal velocity v(x, t) = E[u_t | x_t = x] = sum_k r_k(x) E[u_t | x_t = x, k] with the
responsibilities r_k(x) = w_k N(x; mu_k, S_k) / sum_j w_j N(x; mu_j, S_j) (a Gaussian regression per
component). With the linear path (u = x1 - x0) this is Liu et al.'s rectified velocity of the coupling.

Stochastic interpolants add latent noise, x_t = alpha_t x1 + sigma_t x0 + gamma(t) z with z ~ N(0, I)
independent of (x0, x1), and the target dI/dt + gamma'(t) z: pass ``gamma`` (t -> (gamma(t), gamma'(t)))
and S_k gains gamma^2 I, G_k gains gamma gamma' I; the denoiser is E[z | x_t = x] = -gamma grad log p_t(x).

The VP diffusion (Song et al.) is written in diffusion time s = 1 - t: x_s = a(s) x_data + sigma(s) eps with
a(s), sigma(s) = sqrt(1 - a(s)^2) and beta(s) = -2 d log a / ds from the one shared
:class:`odebench.methods.probability_paths.VPSchedule`. For Gaussian-mixture data the score of x_s is exact
(:func:`vp_score`) and so is the probability-flow ODE dx/dt = beta(1 - t) / 2 (x + grad log p_{1-t}(x))
(:func:`vp_probability_flow`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from odebench.bench.core.solvers import Field
from odebench.methods.probability_paths import AffinePath, LinearPath, VPSchedule

LatentNoise = Callable[[Tensor], tuple[Tensor, Tensor]]
"""``gamma(t) -> (gamma_t, d gamma_t / dt)``, each shaped like t: an interpolant's latent-noise scale."""

__all__ = ["GaussianMixture", "GaussianMixtureCoupling", "LatentNoise", "affine_map_coupling", "gaussian",
           "independent", "interpolant_denoiser", "marginal_log_prob", "marginal_score", "marginal_velocity",
           "path_marginal", "rectified_velocity", "smoothed_empirical", "smoothed_pairs", "vp_alpha_sigma",
           "vp_beta", "vp_marginal", "vp_probability_flow", "vp_score"]


def _psd_sqrt(cov: Tensor) -> Tensor:
    """A square root R with R R^T = cov for symmetric PSD cov: [..., D, D] (singular allowed)."""
    vals, vecs = torch.linalg.eigh(cov)
    return vecs * vals.clamp_min(0).sqrt().unsqueeze(-2)


def _check_mixture(weights: Tensor, means: Tensor, covs: Tensor) -> None:
    if weights.dim() != 1 or means.dim() != 2 or covs.dim() != 3:
        raise ValueError(f"a Gaussian mixture needs weights [K], means [K, D], covs [K, D, D]; got shapes "
                         f"{tuple(weights.shape)}, {tuple(means.shape)}, {tuple(covs.shape)}")
    k, d = means.shape
    if len(weights) != k or covs.shape != (k, d, d):
        raise ValueError(f"inconsistent mixture shapes: weights {tuple(weights.shape)}, means {(k, d)}, "
                         f"covs {tuple(covs.shape)}; expected [K], [K, D], [K, D, D]")
    if (weights < 0).any() or abs(float(weights.sum()) - 1) > 1e-9:
        raise ValueError("mixture weights must be non-negative and sum to 1; normalise them (w / w.sum())")


# ------------------------------------------------------------------------------------------------ the laws
@dataclass(frozen=True)
class GaussianMixture:
    """sum_k w_k N(m_k, C_k) on R^D: weights [K], means [K, D], covs [K, D, D] (symmetric PSD)."""

    weights: Tensor
    means: Tensor
    covs: Tensor

    def __post_init__(self):
        _check_mixture(self.weights, self.means, self.covs)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, gen: torch.Generator | None = None) -> Tensor:
        """[n, D] draws: a component by its weight, then m_k + R_k z with R_k R_k^T = C_k."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=gen)
        z = torch.randn(n, self.dim, generator=gen, dtype=self.means.dtype)
        return self.means[k] + (_psd_sqrt(self.covs)[k] @ z.unsqueeze(-1)).squeeze(-1)

    def mean(self) -> Tensor:
        """[D] mean sum_k w_k m_k."""
        return self.weights @ self.means

    def covariance(self) -> Tensor:
        """[D, D] covariance by the law of total covariance: E_k[C_k] + Cov_k[m_k]."""
        centred = self.means - self.mean()
        within = torch.einsum("k,kij->ij", self.weights, self.covs)
        return within + torch.einsum("k,ki,kj->ij", self.weights, centred, centred)

    def log_prob(self, x: Tensor) -> Tensor:
        """[B] log-density at x: [B, D] (nats); the covariances must be non-singular."""
        return _mixture_terms(self.weights, self.means[None], self.covs[None], _single(x), x)[0]

    def score(self, x: Tensor) -> Tensor:
        """[B, D] grad_x log-density at x: [B, D]: - sum_k r_k(x) C_k^{-1} (x - m_k)."""
        return _mixture_terms(self.weights, self.means[None], self.covs[None], _single(x), x)[2]


def gaussian(mean: Tensor, cov: Tensor) -> GaussianMixture:
    """N(mean, cov) as a one-component mixture: mean [D], cov [D, D]."""
    return GaussianMixture(torch.ones(1, dtype=mean.dtype), mean.unsqueeze(0), cov.unsqueeze(0))


def smoothed_empirical(points: Tensor, eps: float) -> GaussianMixture:
    """(1/n) sum_i N(points_i, eps^2 I): the empirical law of points [n, D] smoothed by a Gaussian kernel."""
    if eps <= 0:
        raise ValueError(f"smoothing eps must be > 0 (got {eps}); the exact fields need densities")
    n, d = points.shape
    eye = torch.eye(d, dtype=points.dtype)
    weights = torch.full((n,), 1 / n, dtype=points.dtype)
    return GaussianMixture(weights, points, (eps**2 * eye).expand(n, d, d))


@dataclass(frozen=True)
class GaussianMixtureCoupling:
    """A joint law of (x0, x1) that is a mixture of jointly Gaussian components (see the module docstring).

    Attributes: weights [K]; mean0, mean1 [K, D]; cov00, cov11 [K, D, D]; cov01 [K, D, D] = Cov(x0, x1 | k).
    """

    weights: Tensor
    mean0: Tensor
    mean1: Tensor
    cov00: Tensor
    cov11: Tensor
    cov01: Tensor

    def __post_init__(self):
        _check_mixture(self.weights, self.mean0, self.cov00)
        _check_mixture(self.weights, self.mean1, self.cov11)
        if self.cov01.shape != self.cov00.shape:
            raise ValueError(f"cov01 must be [K, D, D] like cov00 {tuple(self.cov00.shape)}, "
                             f"got {tuple(self.cov01.shape)}")

    @property
    def source(self) -> GaussianMixture:
        """The law of x0."""
        return GaussianMixture(self.weights, self.mean0, self.cov00)

    @property
    def target(self) -> GaussianMixture:
        """The law of x1."""
        return GaussianMixture(self.weights, self.mean1, self.cov11)

    def sample(self, n: int, gen: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(x0, x1), each [n, D], drawn jointly (singular joint covariances allowed)."""
        d = self.mean0.shape[1]
        joint = torch.cat([torch.cat([self.cov00, self.cov01], 2),
                           torch.cat([self.cov01.transpose(1, 2), self.cov11], 2)], 1)
        both = GaussianMixture(self.weights, torch.cat([self.mean0, self.mean1], 1), joint).sample(n, gen)
        return both[:, :d], both[:, d:]


def independent(source: GaussianMixture, target: GaussianMixture) -> GaussianMixtureCoupling:
    """The product coupling source (x) target: one component per pair (i, j), weight w_i w_j, C01 = 0."""
    ks, kt, d = len(source.weights), len(target.weights), source.dim
    if target.dim != d:
        raise ValueError(f"source and target dimensions differ: {d} vs {target.dim}")
    rep = lambda a: a.repeat_interleave(kt, 0)  # component (i, j) sits at index i * kt + j
    til = lambda a: a.repeat(ks, *([1] * (a.dim() - 1)))
    return GaussianMixtureCoupling(
        weights=rep(source.weights) * til(target.weights), mean0=rep(source.means), mean1=til(target.means),
        cov00=rep(source.covs), cov11=til(target.covs),
        cov01=torch.zeros(ks * kt, d, d, dtype=source.means.dtype))


def smoothed_pairs(x0: Tensor, x1: Tensor, eps: float) -> GaussianMixtureCoupling:
    """(1/n) sum_i N(x0_i, eps^2 I) (x) N(x1_i, eps^2 I) for pairs x0, x1: [n, D] (e.g. reflow pairs)."""
    if x0.shape != x1.shape or x0.dim() != 2:
        raise ValueError(f"pairs must be two [n, D] tensors of one shape, got {tuple(x0.shape)}, "
                         f"{tuple(x1.shape)}")
    a, b = smoothed_empirical(x0, eps), smoothed_empirical(x1, eps)
    return GaussianMixtureCoupling(a.weights, a.means, b.means, a.covs, b.covs, torch.zeros_like(a.covs))


def affine_map_coupling(mean0: Tensor, cov0: Tensor, shift: Tensor,
                        matrix: Tensor) -> GaussianMixtureCoupling:
    """x0 ~ N(mean0, cov0) and the deterministic x1 = shift + matrix @ x0 (mean0, shift [D]; cov0, matrix
    [D, D]): Cov(x0, x1) = cov0 A^T, Cov(x1) = A cov0 A^T."""
    return GaussianMixtureCoupling(
        weights=torch.ones(1, dtype=mean0.dtype), mean0=mean0[None], mean1=(shift + matrix @ mean0)[None],
        cov00=cov0[None], cov11=(matrix @ cov0 @ matrix.T)[None], cov01=(cov0 @ matrix.T)[None])


# ------------------------------------------------------------------------------------- per-component algebra
def _single(x: Tensor) -> Tensor:
    return torch.zeros(len(x), dtype=torch.long, device=x.device)


def _mixture_terms(weights: Tensor, means: Tensor, covs: Tensor, inv: Tensor,
                   x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Log-density, responsibilities, score and the whitened residuals of a mixture at x.

    The mixture differs per time: sample b uses means[inv[b]] and covs[inv[b]], so the Cholesky factors are
    computed once per distinct time, not once per sample.

    Args:
        weights: [K]; means: [U, K, D]; covs: [U, K, D, D] (positive definite); inv: [B] indices into U;
            x: [B, D].

    Returns:
        log p(x) [B]; r_k(x) [B, K]; grad log p(x) [B, D]; C_k^{-1} (x - m_k) [B, K, D].
    """
    d = x.shape[1]
    chol = torch.linalg.cholesky(covs)
    eye = torch.eye(d, dtype=covs.dtype, device=covs.device).expand_as(covs)
    chol_inv = torch.linalg.solve_triangular(chol, eye, upper=False)  # L^{-1}
    half_logdet = chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # [U, K]
    # one distinct time (a solver step) broadcasts instead of gathering a copy per sample
    pick = (lambda a: a[0].unsqueeze(0)) if len(covs) == 1 else (lambda a: a[inv])
    diff = x[:, None, :] - pick(means)  # [B, K, D]
    # D is tiny: elementwise products and sums beat batched matmuls of 2 x 2 matrices
    white = (pick(chol_inv) * diff.unsqueeze(-2)).sum(-1)  # L^{-1} (x - m)
    log_n = -0.5 * white.pow(2).sum(-1) - pick(half_logdet) - 0.5 * d * math.log(2 * math.pi)
    joint = torch.log(weights) + log_n  # log w_k + log N(x; m_k, C_k)
    log_p = torch.logsumexp(joint, 1)
    resp = torch.softmax(joint, 1)
    prec_diff = (pick(chol_inv) * white.unsqueeze(-1)).sum(-2)  # L^{-T} L^{-1} (x - m) = C^{-1} (x - m)
    score = -(resp.unsqueeze(-1) * prec_diff).sum(1)
    return log_p, resp, score, prec_diff


@dataclass(frozen=True)
class _PathStats:
    """Per distinct time u and component k: mean and covariance of x_t, mean of u_t, Cov(u_t, x_t)."""

    mean_x: Tensor  # [U, K, D]
    cov_x: Tensor  # [U, K, D, D]
    mean_u: Tensor  # [U, K, D]
    cov_ux: Tensor  # [U, K, D, D]


def _path_stats(pi: GaussianMixtureCoupling, path: AffinePath, t: Tensor,
                gamma: LatentNoise | None = None) -> _PathStats:
    """The Gaussian statistics of (x_t, u_t) in every component at the times t: [U] (plus latent noise)."""
    c = path.coefficients(t.to(pi.mean0.dtype))
    a, s, da, ds = (v.reshape(-1, 1, 1) for v in (c.alpha_t, c.sigma_t, c.d_alpha_t, c.d_sigma_t))
    m0, m1 = pi.mean0[None], pi.mean1[None]
    c00, c11, c01 = pi.cov00[None], pi.cov11[None], pi.cov01[None]
    c10 = c01.transpose(-1, -2)  # Cov(x1, x0)
    a4, s4, da4, ds4 = (v[..., None] for v in (a, s, da, ds))
    cov_x = a4**2 * c11 + s4**2 * c00 + a4 * s4 * (c01 + c10)
    cov_ux = da4 * a4 * c11 + ds4 * s4 * c00 + da4 * s4 * c10 + ds4 * a4 * c01
    if gamma is not None:  # + gamma z in x_t, + gamma' z in u_t, z independent: + gamma^2 I, + gamma gamma' I
        g, dg = (v.to(pi.mean0.dtype).reshape(-1, 1, 1, 1) for v in gamma(t.to(pi.mean0.dtype)))
        eye = torch.eye(pi.mean0.shape[1], dtype=pi.mean0.dtype)
        cov_x, cov_ux = cov_x + g**2 * eye, cov_ux + g * dg * eye
    return _PathStats(mean_x=a * m1 + s * m0, cov_x=cov_x, mean_u=da * m1 + ds * m0, cov_ux=cov_ux)


def _distinct_times(t: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    if t.shape != (x.shape[0],) or x.dim() != 2:
        raise ValueError(f"expected x [B, D] and t [B], got {tuple(x.shape)} and {tuple(t.shape)}")
    if len(t) == 1:  # one sample (e.g. per-sample Jacobians under torch.func.vmap, where unique cannot run)
        return t, torch.zeros(1, dtype=torch.long, device=t.device)
    return torch.unique(t.detach(), return_inverse=True)


# ----------------------------------------------------------------------------------------- the exact fields
def marginal_velocity(pi: GaussianMixtureCoupling, path: AffinePath, x: Tensor, t: Tensor,
                      gamma: LatentNoise | None = None) -> Tensor:
    """v(x, t) = E[u_t | x_t = x] for x_t = alpha_t x1 + sigma_t x0 (+ gamma(t) z), (x0, x1) ~ pi.

    Args:
        pi: the coupling; path: an affine path from :mod:`odebench.methods.probability_paths`; x: [B, D]; t: [B];
            gamma: optional latent noise (then u_t = alpha' x1 + sigma' x0 + gamma' z).

    Returns:
        [B, D]: sum_k r_k(x) (nu_k + G_k S_k^{-1} (x - mu_k)) (module docstring). Needs S_k non-singular,
        i.e. x_t must have a density (true for 0 < t < 1 whenever some noise or smoothing is present).
    """
    tu, inv = _distinct_times(t, x)
    st = _path_stats(pi, path, tu, gamma)
    _, resp, _, prec_diff = _mixture_terms(pi.weights, st.mean_x, st.cov_x, inv, x)
    pick = (lambda a: a[0].unsqueeze(0)) if len(tu) == 1 else (lambda a: a[inv])
    cond = pick(st.mean_u) + (pick(st.cov_ux) * prec_diff.unsqueeze(-2)).sum(-1)  # E[u | x, k]
    return (resp.unsqueeze(-1) * cond).sum(1)


def rectified_velocity(pi: GaussianMixtureCoupling, x: Tensor, t: Tensor) -> Tensor:
    """Liu et al.'s rectified velocity E[X1 - X0 | X_t = x], X_t = t X1 + (1 - t) X0: x [B, D], t [B]."""
    return marginal_velocity(pi, LinearPath(), x, t)


def marginal_log_prob(pi: GaussianMixtureCoupling, path: AffinePath, x: Tensor, t: Tensor,
                      gamma: LatentNoise | None = None) -> Tensor:
    """[B] log-density of x_t at x: [B, D], t: [B] (a Gaussian mixture with components N(mu_k, S_k))."""
    tu, inv = _distinct_times(t, x)
    st = _path_stats(pi, path, tu, gamma)
    return _mixture_terms(pi.weights, st.mean_x, st.cov_x, inv, x)[0]


def marginal_score(pi: GaussianMixtureCoupling, path: AffinePath, x: Tensor, t: Tensor,
                   gamma: LatentNoise | None = None) -> Tensor:
    """[B, D] grad_x log-density of x_t at x: [B, D], t: [B]."""
    tu, inv = _distinct_times(t, x)
    st = _path_stats(pi, path, tu, gamma)
    return _mixture_terms(pi.weights, st.mean_x, st.cov_x, inv, x)[2]


def interpolant_denoiser(pi: GaussianMixtureCoupling, path: AffinePath, x: Tensor, t: Tensor,
                         gamma: LatentNoise) -> Tensor:
    """[B, D] eta(x, t) = E[z | x_t = x] = -gamma(t) grad log p_t(x) for x_t = I + gamma z (Cov(z, x_t) =
    gamma I in every component); x: [B, D], t: [B]."""
    g = gamma(t.to(x.dtype))[0].unsqueeze(-1)
    return -g * marginal_score(pi, path, x, t, gamma)


def path_marginal(pi: GaussianMixtureCoupling, path: AffinePath, t: float,
                  gamma: LatentNoise | None = None) -> GaussianMixture:
    """The law of x_t at one time t, as a Gaussian mixture."""
    st = _path_stats(pi, path, torch.tensor([float(t)], dtype=pi.mean0.dtype), gamma)
    return GaussianMixture(pi.weights, st.mean_x[0], st.cov_x[0])


# -------------------------------------------------------------------------------------------- VP diffusion
def vp_beta(s: Tensor, beta_min: float = 0.1, beta_max: float = 20.0) -> Tensor:
    """beta(s) of the shared :class:`VPSchedule` (diffusion time s)."""
    return VPSchedule(beta_min, beta_max).beta(s)


def vp_alpha_sigma(s: Tensor, beta_min: float = 0.1, beta_max: float = 20.0) -> tuple[Tensor, Tensor]:
    """(a(s), sigma(s)) of the shared :class:`VPSchedule`."""
    return VPSchedule(beta_min, beta_max).alpha_sigma(s)


def _vp_components(data: GaussianMixture, s: Tensor, beta_min: float,
                   beta_max: float) -> tuple[Tensor, Tensor]:
    """Means [U, K, D] and covariances [U, K, D, D] of x_s = a x_data + sigma eps at the times s: [U]."""
    a, sig = vp_alpha_sigma(s.to(data.means.dtype), beta_min, beta_max)
    a3, sig3 = a.reshape(-1, 1, 1), sig.reshape(-1, 1, 1, 1)
    eye = torch.eye(data.dim, dtype=data.means.dtype)
    return a3 * data.means[None], a3[..., None] ** 2 * data.covs[None] + sig3**2 * eye


def vp_marginal(data: GaussianMixture, s: float, beta_min: float = 0.1,
                beta_max: float = 20.0) -> GaussianMixture:
    """The law of x_s = a(s) x_data + sigma(s) eps for Gaussian-mixture data, at one diffusion time s."""
    m, c = _vp_components(data, torch.tensor([float(s)], dtype=data.means.dtype), beta_min, beta_max)
    return GaussianMixture(data.weights, m[0], c[0])


def vp_score(data: GaussianMixture, x: Tensor, s: Tensor, beta_min: float = 0.1,
             beta_max: float = 20.0) -> Tensor:
    """[B, D] exact score grad log p_s(x) of the VP marginal for Gaussian-mixture data; x [B, D], s [B]."""
    su, inv = _distinct_times(s, x)
    m, c = _vp_components(data, su, beta_min, beta_max)
    return _mixture_terms(data.weights, m, c, inv, x)[2]


def vp_probability_flow(data: GaussianMixture, beta_min: float = 0.1, beta_max: float = 20.0) -> Field:
    """The probability-flow ODE of the VP-SDE with the exact score, in unified time:
    dx/dt = beta(1 - t) / 2 * (x + grad log p_{1-t}(x)), a field f(x [B, D], t [B]) -> [B, D]."""

    def field(x: Tensor, t: Tensor) -> Tensor:
        s = 1 - t
        half_beta = 0.5 * vp_beta(s, beta_min, beta_max).to(x.dtype).unsqueeze(-1)
        return half_beta * (x + vp_score(data, x, s, beta_min, beta_max))

    return field
