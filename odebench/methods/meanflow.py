"""MeanFlow (Geng, Deng, Bai, Kolter, He 2025): an average-velocity network trained through the MeanFlow identity.

Time. The paper's time runs from the data (t = 0) to the noise (t = 1), with z_t = (1 - t) x + t e, and its
network u(z_t, r, t) (r <= t) is the average velocity that carries z_t back to z_r = z_t - (t - r) u. odebench's
time runs the other way (s = 0 source, s = 1 data); with s = 1 - t the paper's pair (r, t) becomes the odebench
jump from s_r = 1 - t to s_t = 1 - r (s_r <= s_t, the same length t - r), and odebench's average velocity is
U(x, s_r, s_t) = -u(x, 1 - s_t, 1 - s_r), the network's input x sitting at s_r. Everything below is in odebench's
time: x_s = (1 - s) x0 + s x1 on the linear path, conditional velocity v = x1 - x0, and for r <= t

    U(x_r, r, t) = 1 / (t - r) integral_r^t v(x_s, s) ds,        X(x, r, t) = x + (t - r) U(x, r, t),

the flow map, one network call per jump. Differentiating (t - r) U = integral_r^t v ds in r along the flow (t held)
gives the MeanFlow identity in odebench's time (the paper's u = v - (t - r) du/dt with the signs of s = 1 - t):

    U(x_r, r, t) = v(x_r, r) + (t - r) dU/dr,      dU/dr = v . grad_x U + d_r U,

where dU/dr is one Jacobian-vector product of the network with the tangent (v, 1, 0) in (x, r, t)
(``torch.func.jvp``). The loss regresses U on the stop-gradient target v + (t - r) dU/dr (the conditional velocity
in place of the marginal one, as in the paper), squared error summed over the dimensions, weighted adaptively as
the official code does: each sample's error is divided by (error.detach() + norm_eps)^norm_p. At r = t the target
is v: the flow-matching loss. The velocity of the dynamics is U at r = t (the instantaneous velocity), so the ODE
solvers, the NLL and the straightness apply to the same network.

Times (the official PyTorch code's sampler, ``tr_sampler``): two logit-normal draws in the paper's time,
t_p = sigmoid(N(p_mean_t, p_std_t^2)), r_p = sigmoid(N(p_mean_r, p_std_r^2)); with probability 1 - ``ratio`` the
pair is set to r_p = t_p (a flow-matching sample); "v1" then takes r_p = min(t_p, r_p), "v0" (the paper's) orders
the two draws before the ratio. The odebench jump is then r = 1 - t_p, t = 1 - r_p. Defaults: the official code's
improved CIFAR-10 recipe (``cifar10_v1.sh``, whose checkpoint its README demonstrates): v1, (-0.6, 1.6) for t_p,
(-4.0, 1.6) for r_p, ratio 0.75, norm_p 0.75, norm_eps 1e-3. The network sees (the time of x, the jump length) =
(r, t - r), the official code's (t, t - r) in odebench's time, through :class:`TwoTimeNet`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from odebench.methods.base import Dynamics, Method, expand_t, register_method
from odebench.methods.probability_paths import LinearPath, path_schedule, x1_hat_from_velocity
from odebench.methods.two_time import TwoTimeNet

#: the official code's joint (t, r) samplers: v1 (its default and improved recipe), v0 (the paper's)
TR_SAMPLERS = ("v1", "v0")


def meanflow_target(net: nn.Module, x_r: Tensor, r: Tensor, t: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """(U(x_r, r, t), the stop-gradient target v + (t - r) dU/dr), both [B, *shape].

    x_r, v: [B, *shape] (the state at r and the conditional velocity there); r, t: [B] with r <= t. dU/dr is the
    total derivative along the flow, one forward-mode product of ``net(x, r, t - r)`` with the tangent (v, 1, 0)
    in (x, r, t); U keeps its graph for the loss's gradient, the target does not.
    """

    def average_velocity(x: Tensor, r_: Tensor, t_: Tensor) -> Tensor:
        return net(x, r_, t_ - r_)

    u, du_dr = torch.func.jvp(average_velocity, (x_r, r, t), (v, torch.ones_like(r), torch.zeros_like(t)))
    return u, (v + expand_t(t - r, v) * du_dr).detach()


@register_method("meanflow")
class MeanFlow(Method):
    """MeanFlow: one network U(x, r, t) of the average velocity over [r, t]; flow map X = x + (t - r) U."""

    reference = "arXiv:2505.13447"
    citation = ("Geng, Deng, Bai, Kolter, He. Mean Flows for One-step Generative Modeling. NeurIPS 2025. "
                "arXiv:2505.13447")
    needs_gaussian_source = False  # the identity holds on the linear path between any two laws
    heldout_not_progress = ("MeanFlow's target carries the network's own derivative along the flow, whose spread "
                            "grows as the network learns it (decision 69)")

    def __init__(self, tr_sampler: str = "v1", p_mean_t: float = -0.6, p_std_t: float = 1.6,
                 p_mean_r: float = -4.0, p_std_r: float = 1.6, ratio: float = 0.75, norm_p: float = 0.75,
                 norm_eps: float = 1e-3):
        if tr_sampler not in TR_SAMPLERS:
            raise ValueError(f"meanflow: tr_sampler must be one of {TR_SAMPLERS} (the official code's (t, r) "
                             f"samplers), got {tr_sampler!r}")
        if not 0.0 <= float(ratio) <= 1.0:
            raise ValueError(f"meanflow: ratio is the fraction of pairs drawn with r != t (before v1 folds r to "
                             f"min(t, r)), in [0, 1]; got {ratio}")
        if float(p_std_t) <= 0 or float(p_std_r) <= 0:
            raise ValueError(f"meanflow: p_std_t and p_std_r must be > 0; got {p_std_t}, {p_std_r}")
        if float(norm_eps) <= 0 or float(norm_p) < 0:
            raise ValueError(f"meanflow: norm_eps must be > 0 and norm_p >= 0 (0: no adaptive weight); got "
                             f"{norm_eps}, {norm_p}")
        super().__init__(tr_sampler=str(tr_sampler), p_mean_t=float(p_mean_t), p_std_t=float(p_std_t),
                         p_mean_r=float(p_mean_r), p_std_r=float(p_std_r), ratio=float(ratio),
                         norm_p=float(norm_p), norm_eps=float(norm_eps))
        self.path = LinearPath()

    def networks(self, make_net, shape):
        return nn.ModuleDict({"u": TwoTimeNet(make_net())})

    def sample_times(self, n: int, gen: torch.Generator | None, device) -> tuple[Tensor, Tensor]:
        """(r, t): [n] each, r <= t, in odebench's time, from the official sampler in the paper's time."""
        h = self.hparams
        normal = torch.randn(2, n, generator=gen, device=device)
        t_p = torch.sigmoid(normal[0] * h["p_std_t"] + h["p_mean_t"])
        r_p = torch.sigmoid(normal[1] * h["p_std_r"] + h["p_mean_r"])
        if h["tr_sampler"] == "v0":
            t_p, r_p = torch.maximum(t_p, r_p), torch.minimum(t_p, r_p)
        same = torch.rand(n, generator=gen, device=device) < 1 - h["ratio"]
        r_p = torch.where(same, t_p, r_p)
        if h["tr_sampler"] == "v1":
            r_p = torch.minimum(t_p, r_p)
        return 1 - t_p, 1 - r_p

    def loss(self, model, x0, x1, gen):
        r, t = self.sample_times(x1.shape[0], gen, x1.device)
        ps = self.path.sample(x0, x1, r)  # x at the jump's start r, v = x1 - x0
        # the JVP, its target and the loss in full precision even under a bf16 run: the target is a difference
        # of a velocity and a small multiple of a derivative, which bf16 would round away (the official code
        # disables autocast here too)
        with torch.autocast(device_type=x1.device.type, enabled=False):
            u, target = meanflow_target(model["u"], ps.x_t, r, t, ps.dx_t)
            err = (u - target).pow(2).flatten(1).sum(1)
            weight = (err.detach() + self.hparams["norm_eps"]).pow(self.hparams["norm_p"])
            return (err / weight).mean()

    def dynamics(self, model):
        net = model["u"]

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            return net(x, t, torch.zeros_like(t))  # U at r = t: the instantaneous velocity

        def flow_map(x: Tensor, r: Tensor, t: Tensor) -> Tensor:
            return x + expand_t(t - r, x) * net(x, r, t - r)

        return Dynamics(velocity=velocity, flow_map=flow_map, schedule=path_schedule(self.path),
                        x1_hat=x1_hat_from_velocity(velocity, self.path.coefficients))

    def offers(self):
        """The flow map, its velocity at r = t, and (the linear path from an independent source) the path's
        schedule and data prediction."""
        return frozenset({"velocity", "flow_map", "noise_schedule", "x1_hat"})
