"""A network trained elsewhere, as a method odebench can sample and measure: the :class:`Adapter` base.

odebench's convention (docs/maths.md): time t runs over [0, 1], t = 0 is the source x0 ~ N(0, I), t = 1 the
data x1; a field is ``f(x, t) -> dx/dt`` with x: [B, *shape] and t: [B]. A network trained with another
library has its own calling convention, its own time and predicts one of four things; an adapter states all
three and converts the prediction into our velocity field. Its ``kind`` says what the network predicts at
x = x_t:

    velocity  v(x, t) = E[dx_t/dt | x_t = x], the field itself
    x1        E[x1 | x_t = x], the data prediction
    eps       E[x0 | x_t = x], the noise prediction (x0 ~ N(0, I))
    score     grad_x log p_t(x) = -E[x0 | x_t = x] / sigma_t (for x0 ~ N(0, I))

Every kind but ``velocity`` needs the affine path x_t = alpha_t x1 + sigma_t x0 the network was trained on
(``path``: a name of ``odebench.methods.probability_paths.PATHS`` or an ``AffinePath``). On it

    x1_hat = (x - sigma_t eps_hat) / alpha_t,    eps_hat = (x - alpha_t x1_hat) / sigma_t,
    v = alpha'_t x1_hat + sigma'_t eps_hat,

and, for a velocity network, x1_hat = (sigma v - sigma' x) / (sigma alpha' - sigma' alpha)
(``x1_hat_from_velocity``). With a path the dynamics also offer the data prediction and the noise schedule, so
DDIM, DPM-Solver++, UniPC, EDM's samplers and the noise-level grids run on the model; without one (allowed for
a velocity network only) every ODE solver does. Where a conversion divides by zero at an end of the interval
(x1 on a path with sigma = 0 at t = 1; eps and score on a path with alpha = 0 at t = 0) the interval stops
``t_eps`` (1e-3) short of that end.

``coupling`` says how the network's training drew its pairs (x0, x1): ``independent`` (x0 ~ N(0, I) drawn apart
from x1, every library's default) or ``ot`` (x0 re-paired with x1 by a minibatch optimal-transport plan, as
TorchCFM's ``ExactOptimalTransportConditionalFlowMatcher`` and ``SchrodingerBridgeConditionalFlowMatcher`` do).
With ``ot`` the adapter withholds ``x1_hat``, as odebench's own ``otcfm`` does (docs/decisions.md, 29): the
stochastic data-prediction samplers add Gaussian noise that keeps the marginals only when x_t given x1 is
Gaussian, so they would sample another law; the path still serves the noise-level grids.

An adapter is a :class:`odebench.methods.Method` that is never trained: the harness samples it exactly as it
samples a trained method (its ``dynamics`` take ``nn.ModuleDict({"net": network})``). A subclass writes
``call(net, x, t)``: the network's raw output for our x and t, in its own signature and time.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from odebench.bench.core.fields import Dynamics
from odebench.methods.base import GaussianPrior, Method, expand_t
from odebench.methods.probability_paths import PATHS, AffinePath, path_schedule, x1_hat_from_velocity

__all__ = ["ADAPTERS_EXTRA", "COUPLINGS", "KINDS", "Adapter", "DynamicsAdapter", "PeerMissing", "Plain", "require_peer"]

#: what a network may predict (module docstring)
KINDS = ("velocity", "x1", "eps", "score")
#: how the training paired source and data draws (module docstring)
COUPLINGS = ("independent", "ot")
#: how the optional peers are installed; every missing-peer message names it
ADAPTERS_EXTRA = "pip install 'odebench[adapters]'"
#: peers installed apart from the extra: TorchCFM declares torchdyn (-> torchvision, which pins a torch release),
#: so installing it with its dependencies would replace a CPU build of torch; its import needs none of them
PEER_INSTALL = {"torchcfm": "pip install --no-deps 'torchcfm>=1.0.7'"}


class PeerMissing(ImportError):
    """The library an adapter wraps is not installed; the message names the extra that installs it."""


def require_peer(module: str, adapter: str) -> Any:
    """Import the peer library ``module`` for ``adapter``, or raise PeerMissing naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        how = PEER_INSTALL.get(module)
        how = (f"{how} (without its declared dependencies, which would replace the installed torch; the "
               f"others come with {ADAPTERS_EXTRA})") if how else ADAPTERS_EXTRA
        raise PeerMissing(f"the {adapter} adapter needs the {module!r} package, which is not installed: "
                          f"{how}") from exc


def is_instance_of(obj: Any, module_prefix: str, class_name: str) -> bool:
    """Whether ``obj``'s class or a base of it is ``class_name`` from a module under ``module_prefix``; decided
    by name, so asking never imports the peer."""
    return any(c.__name__ == class_name and c.__module__.split(".")[0] == module_prefix for c in type(obj).__mro__)


def path_identity(path: AffinePath | None) -> dict[str, Any]:
    """The path's registered name (or class name) and its scalar settings as ``path_<setting>``, for the model's
    identity (flat: records keep method configs one level deep)."""
    if path is None:
        return {"path": None}
    name = next((n for n in PATHS.names() if type(path) is PATHS.get(n)), type(path).__name__)
    settings = {f"path_{k}": v for k, v in sorted(vars(path).items()) if isinstance(v, (int, float, str, bool))}
    return {"path": name, **settings}


def resolve_path(path: str | AffinePath | None) -> AffinePath | None:
    """An AffinePath from a registered name (default settings), an instance, or None."""
    if path is None or isinstance(path, AffinePath):
        return path
    if not isinstance(path, str) or path not in PATHS:
        raise ValueError(f"unknown path {path!r}; known: {', '.join(PATHS.names())} (or pass an AffinePath)")
    return PATHS.get(path)()


def check_coupling(coupling: str, adapter: str) -> str:
    """``coupling`` if it is one of COUPLINGS, else ValueError naming them."""
    if coupling not in COUPLINGS:
        raise ValueError(f"{adapter} adapter: coupling {coupling!r} is not one of {', '.join(COUPLINGS)} "
                         f"(ot: the training re-paired x0 with x1 by optimal transport)")
    return coupling


class Adapter(Method):
    """A given network ``net`` predicting ``kind`` on ``path``, sampled in odebench's time (module docstring).

    Subclasses set ``adapter`` (their name in records), write ``call`` and may restrict ``kinds``.
    """

    name = "given"
    reference = "odebench.adapters"
    citation = ""
    needs_gaussian_source = False
    #: the adapter's name in records and on the command line
    adapter: ClassVar[str] = "plain"
    #: the kinds this adapter converts
    kinds: ClassVar[tuple[str, ...]] = KINDS
    #: how the network's training paired x0 with x1 (module docstring); an instance may say ``ot``
    coupling: str = "independent"

    def __init__(self, net: nn.Module, kind: str = "velocity", path: str | AffinePath | None = None,
                 t_eps: float = 1e-3, coupling: str = "independent"):
        self.coupling = check_coupling(coupling, self.adapter)
        if kind not in self.kinds:
            raise ValueError(f"{self.adapter} adapter: kind {kind!r} is not one of {', '.join(self.kinds)}")
        if not isinstance(net, nn.Module):
            raise TypeError(f"{self.adapter} adapter: expected a torch.nn.Module, got {type(net).__name__}")
        self.net, self.kind, self.path = net, kind, resolve_path(path)
        if self.path is None and kind != "velocity":
            raise ValueError(f"{self.adapter} adapter: a network predicting {kind!r} needs the path it was trained "
                             f"on to give a velocity; pass path=... ({', '.join(PATHS.names())})")
        self.t0, self.t1 = self._interval(float(t_eps))
        super().__init__(**self.identity())

    # ----------------------------------------------------------------------------------- what subclasses write
    def call(self, net: nn.Module, x: Tensor, t: Tensor) -> Tensor:
        """The network's raw prediction at x: [B, *shape], our time t: [B]; [B, *shape]. Plain: ``net(x, t)``."""
        return net(x, t)

    def settings(self) -> dict[str, Any]:
        """Settings of the subclass that change what the network computes (they join the identity)."""
        return {}

    # ------------------------------------------------------------------------------------------------ identity
    def identity(self) -> dict[str, Any]:
        """What, besides the weights and the factory, decides the field: adapter, kind, path, interval, and the
        coupling where it is not the independent one (so the identities of independent models stay as they
        were)."""
        coupling = {"coupling": self.coupling} if self.coupling != "independent" else {}
        return {"adapter": self.adapter, "kind": self.kind, **path_identity(self.path), "t0": self.t0,
                "t1": self.t1, **coupling, **self.settings()}

    def module(self) -> nn.Module:
        """The network a checkpoint fills (its state dict is the checkpoint's)."""
        return self.net

    def model(self) -> nn.ModuleDict:
        """The network in the form the harness hands to ``dynamics``."""
        return nn.ModuleDict({"net": self.module()})

    # --------------------------------------------------------------------------------------------- the method
    def _interval(self, t_eps: float) -> tuple[float, float]:
        t0, t1 = 0.0, self.path.t_max if self.path is not None else 1.0
        if self.path is not None:
            ends = self.path.coefficients(torch.tensor([t0, t1], dtype=torch.float64))
            if self.kind == "x1" and float(ends.sigma_t[1]) == 0.0:
                t1 = t1 - t_eps  # v = alpha' x1 + sigma' (x - alpha x1) / sigma
            if self.kind in ("eps", "score") and float(ends.alpha_t[0]) == 0.0:
                t0 = t0 + t_eps  # x1 = (x - sigma eps) / alpha
        return t0, t1

    @property
    def independent_gaussian_coupling(self) -> bool:
        """Whether x0 ~ N(0, I) was drawn independently of x1 in training: what ``x1_hat`` rests on."""
        return self.coupling == "independent"

    def offers(self) -> frozenset[str]:
        base = {"velocity"}
        if self.path is None:
            return frozenset(base)
        return frozenset(base | ({"noise_schedule", "x1_hat"} if self.independent_gaussian_coupling
                                 else {"noise_schedule"}))

    def prior(self, shape: tuple[int, ...]) -> GaussianPrior:
        return GaussianPrior(shape)

    def loss(self, model, x0, x1, gen):
        raise NotImplementedError("a given model is evaluated as it is, never trained by odebench")

    def dynamics(self, model: nn.ModuleDict) -> Dynamics:
        net = model["net"]
        raw = lambda x, t: self.call(net, x, t)  # noqa: E731 - one network call per field call
        if self.path is None:
            return Dynamics(velocity=raw, t0=self.t0, t1=self.t1)
        coefficients = self.path.coefficients

        def parts(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
            """(x1_hat, eps_hat, alpha', sigma') from one network call, for kinds other than velocity."""
            c = coefficients(t.to(x.dtype))
            a, s = expand_t(c.alpha_t, x), expand_t(c.sigma_t, x)
            out = raw(x, t)
            if self.kind == "x1":
                x1_hat, eps_hat = out, (x - a * out) / s
            else:
                eps_hat = out if self.kind == "eps" else -s * out  # score = -eps / sigma
                x1_hat = (x - s * eps_hat) / a
            return x1_hat, eps_hat, expand_t(c.d_alpha_t, x), expand_t(c.d_sigma_t, x)

        if self.kind == "velocity":
            velocity, x1_hat = raw, x1_hat_from_velocity(raw, coefficients)
        else:
            def velocity(x: Tensor, t: Tensor) -> Tensor:
                x1_hat, eps_hat, da, ds = parts(x, t)
                return da * x1_hat + ds * eps_hat

            def x1_hat(x: Tensor, t: Tensor) -> Tensor:
                return parts(x, t)[0]

        if not self.independent_gaussian_coupling:
            x1_hat = None  # an OT-coupled model: the stochastic data-prediction samplers would sample another law
        return Dynamics(velocity=velocity, t0=self.t0, t1=self.t1, x1_hat=x1_hat, schedule=path_schedule(self.path))

    def __repr__(self) -> str:
        path = path_identity(self.path)["path"]
        return f"{type(self).__name__}({type(self.net).__name__}, kind={self.kind!r}, path={path!r})"


class Plain(Adapter):
    """A network in odebench's own convention: ``net(x, t)`` with x: [B, *shape], t: [B] in our time (t = 0
    source, t = 1 data), predicting ``kind`` on ``path``; the output has x's shape."""

    adapter = "plain"


class DynamicsAdapter(Adapter):
    """Ready-made :class:`Dynamics` (already in our convention): sampled as given. Its weights cannot be found
    from the functions it holds, so its identity is the ``model_id`` its owner gives; ``module`` is the network
    (or None) whose parameters the report counts."""

    adapter = "dynamics"
    kinds = ("velocity",)

    def __init__(self, dyn: Dynamics, model_id: str, module: nn.Module | None = None,
                 coupling: str = "independent"):
        if not isinstance(dyn, Dynamics):
            raise TypeError(f"expected odebench Dynamics, got {type(dyn).__name__}")
        if not isinstance(model_id, str) or not model_id:
            raise ValueError("ready-made Dynamics carry no weights odebench can hash: give model_id='...', a name "
                             "that changes whenever the model does (it keys the records, and re-runs skip cells "
                             "finished under the same id)")
        self.dyn, self.model_id = dyn, model_id
        super().__init__(module if module is not None else nn.Module(), "velocity", None, coupling=coupling)
        if not self.independent_gaussian_coupling:
            self.dyn = dataclasses.replace(dyn, x1_hat=None)  # as Adapter.dynamics withholds it
        self.t0, self.t1 = dyn.t0, dyn.t1
        self.hparams = self.identity()

    def settings(self) -> dict[str, Any]:
        return {"model_id": self.model_id}

    def offers(self) -> frozenset[str]:
        return self.dyn.offers()

    def dynamics(self, model: nn.ModuleDict) -> Dynamics:
        return self.dyn

