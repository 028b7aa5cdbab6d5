"""Flow Matching (Lipman et al., 2023) with the OT path and the VP diffusion path, and OT-CFM.

Loss: E_{t ~ U[0, t_max], x0 ~ N(0, I), x1 ~ data} || v_theta(x_t, t) - u_t(x_t | x1) ||^2, averaged over
batch and dimensions, with x_t and u_t from :mod:`odebench.methods.probability_paths`. Sampling integrates dx/dt =
v_theta from t = 0 to t_max. The path's alpha_t, sigma_t are the ``noise_schedule`` (noise-level time grids), and
for fm_ot and fm_diffusion the data prediction x1_hat = (sigma v - sigma' x) / (sigma alpha' - sigma' alpha) is
``x1_hat`` (DDIM, DPM-Solver++, UniPC, EDM's samplers); otcfm's re-paired coupling offers the schedule only.

Facts checked against the paper and the authors' code (Lipman et al. write time the same way as we do:
t = 0 noise, t = 1 data):

- OT path (paper Sec. 4.1, eq. 20): mu_t = t x1, sigma_t = 1 - (1 - sigma_min) t, so
  x_t = t x1 + (1 - (1 - sigma_min) t) x0 and u_t = x1 - (1 - sigma_min) x0. The paper keeps sigma_min as
  a small constant; the authors' library ``facebookresearch/flow_matching`` implements the OT path as
  ``CondOTProbPath`` with alpha_t = t, sigma_t = 1 - t, i.e. sigma_min = 0. We keep sigma_min = 1e-4 as the
  default (the value most re-implementations use): it keeps p_1(. | x1) a proper Gaussian and makes fm_ot
  differ from 1-rectified flow only by that constant, which is negligible at our W2 scales.
- VP path (paper eq. 18-19): mu_t = alpha_{1-t} x1, sigma_t = sqrt(1 - alpha_{1-t}^2), alpha_s =
  exp(-T(s)/2), T(s) = int_0^s beta, beta linear from 0.1 to 20. sigma_t -> 0 at t = 1 makes d sigma / dt
  singular there, so the path stops at t_max = 1 - 1e-5 (see
  :class:`odebench.methods.probability_paths.VPDiffusionPath`).

OT-CFM (Tong et al., 2024; Pooladian et al., 2023): the independent coupling re-paired inside each
minibatch by exact OT (:func:`odebench.methods.couplings.minibatch_ot_pairs`), then the linear path. It never uses
that the source is Gaussian, so it accepts any source dataset.
"""

from __future__ import annotations

import torch

from odebench.methods.base import Dynamics, Method, register_method, uniform_t
from odebench.methods.couplings import minibatch_ot_pairs
from odebench.methods.probability_paths import (
    AffinePath,
    LinearPath,
    OTPath,
    VPDiffusionPath,
    path_schedule,
    x1_hat_from_velocity,
)

LIPMAN_CITATION = (
    "Lipman, Chen, Ben-Hamu, Nickel, Le. Flow Matching for Generative Modeling. ICLR 2023. arXiv:2210.02747"
)


class AffineFlowMatching(Method):
    """Conditional flow matching on an affine Gaussian path (subclasses pick the path)."""

    reference = "arXiv:2210.02747"
    citation = LIPMAN_CITATION
    path: AffinePath

    def loss(self, model, x0, x1, gen):
        t = self.path.t_max * uniform_t(x1.shape[0], gen, x1.device)
        ps = self.path.sample(x0, x1, t)
        return (model["v"](ps.x_t, t) - ps.dx_t).pow(2).mean()

    #: with x0 ~ N(0, I) drawn independently of x1, x_t is the data blurred by Gaussian noise, and the marginal
    #: velocity yields E[x1 | x_t] (the data-prediction samplers); a coupling that pairs x0 with x1 does not
    independent_gaussian_coupling: bool = True

    def dynamics(self, model):
        coefficients = self.path.coefficients
        x1_hat = x1_hat_from_velocity(model["v"], coefficients) if self.independent_gaussian_coupling else None
        return Dynamics(velocity=model["v"], t1=self.path.t_max, schedule=path_schedule(self.path), x1_hat=x1_hat)

    def offers(self):
        if self.independent_gaussian_coupling:
            return frozenset({"velocity", "noise_schedule", "x1_hat"})
        return frozenset({"velocity", "noise_schedule"})


@register_method("fm_ot")
class FlowMatchingOT(AffineFlowMatching):
    """OT path: x_t = t x1 + (1 - (1 - sigma_min) t) x0, target u = x1 - (1 - sigma_min) x0."""

    def __init__(self, sigma_min: float = 1e-4):
        if not 0.0 <= float(sigma_min) < 1.0:
            raise ValueError(f"fm_ot: sigma_min must be in [0, 1), got {sigma_min}")
        super().__init__(sigma_min=float(sigma_min))
        self.path = OTPath(sigma_min)


@register_method("fm_diffusion")
class FlowMatchingDiffusion(AffineFlowMatching):
    """VP diffusion path: x_t = a(1 - t) x1 + sqrt(1 - a(1 - t)^2) x0, beta_min = 0.1, beta_max = 20."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        if not 0.0 < float(beta_min) < float(beta_max):
            raise ValueError(f"fm_diffusion: need 0 < beta_min < beta_max, got {beta_min}, {beta_max}")
        super().__init__(beta_min=float(beta_min), beta_max=float(beta_max))
        self.path = VPDiffusionPath(beta_min, beta_max)


#: how otcfm turns a batch's OT plan into training pairs
PAIRINGS = ("sample", "permutation")


@register_method("otcfm")
class OTConditionalFlowMatching(AffineFlowMatching):
    """Minibatch-OT flow matching: re-pair each batch by exact OT (POT ``ot.emd``), then the linear path.

    Training batches of size B are re-paired by the B x B assignment with squared-Euclidean cost, so the
    pairing approaches the OT coupling as B grows and the learned paths straighten; the batch size is part
    of the method (it is the training config's ``batch_size``).

    ``pairing = "sample"`` (the default, as TorchCFM's ``OTPlanSampler``) draws B pairs from the plan with
    replacement; ``"permutation"`` keeps the plan's B pairs, each once.
    """

    reference = "arXiv:2302.00482"
    citation = ("Tong, Fatras, Malkin, Huguet, Zhang, Rector-Brooks, Wolf, Bengio. Improving and "
                "Generalizing Flow-Based Generative Models with Minibatch Optimal Transport. TMLR 2024. "
                "arXiv:2302.00482")
    needs_gaussian_source = False
    # the minibatch-OT pairing makes x0 depend on x1: x_t given x1 is not Gaussian, so the data-prediction
    # samplers (which add or assume Gaussian noise around alpha_t x1) do not apply
    independent_gaussian_coupling = False

    def __init__(self, pairing: str = "sample"):
        if pairing not in PAIRINGS:
            raise ValueError(f"otcfm: pairing must be one of {PAIRINGS}, got {pairing!r}")
        super().__init__(pairing=pairing)
        self.path = LinearPath()

    def loss(self, model, x0, x1, gen):
        x0, x1 = minibatch_ot_pairs(x0, x1)
        if self.hparams["pairing"] == "sample":  # B draws from the plan (uniform over its B pairs), with replacement
            idx = torch.randint(x0.shape[0], (x0.shape[0],), generator=gen, device=x0.device)
            x0, x1 = x0[idx], x1[idx]
        return super().loss(model, x0, x1, gen)
