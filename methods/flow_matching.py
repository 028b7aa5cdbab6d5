"""Flow Matching (Lipman et al., 2023) with the OT path and the VP diffusion path.

Loss: E_{t ~ U[0, t_max], x0 ~ N(0, I), x1 ~ data} || v_theta(x_t, t) - u_t(x_t | x1) ||^2, averaged over
batch and dimensions, with x_t and u_t from :mod:`methods.paths`. Sampling integrates dx/dt = v_theta from
t = 0 to t_max.
"""

from __future__ import annotations

from methods.base import Dynamics, Method, register_method, uniform_t
from methods.paths import AffinePath, OTPath, VPDiffusionPath

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

    def dynamics(self, model):
        return Dynamics(velocity=model["v"], t1=self.path.t_max)


@register_method("fm_ot")
class FlowMatchingOT(AffineFlowMatching):
    """OT path: x_t = t x1 + (1 - (1 - sigma_min) t) x0, target u = x1 - (1 - sigma_min) x0."""

    def __init__(self, sigma_min: float = 1e-4):
        super().__init__(sigma_min=float(sigma_min))
        self.path = OTPath(sigma_min)


@register_method("fm_diffusion")
class FlowMatchingDiffusion(AffineFlowMatching):
    """VP diffusion path: x_t = a(1 - t) x1 + sqrt(1 - a(1 - t)^2) x0, beta_min = 0.1, beta_max = 20."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        super().__init__(beta_min=float(beta_min), beta_max=float(beta_max))
        self.path = VPDiffusionPath(beta_min, beta_max)


