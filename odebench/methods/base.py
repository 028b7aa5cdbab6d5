"""The Method interface every family implements, the default Gaussian prior, and the method registry.

Time runs from the source (t = 0) to the data (t = 1). A method owns its training objective (``loss``),
its sampling dynamics (``dynamics``), its source law (``prior``), and optionally a parent stage it is trained
from (reflow, distillation) plus extra trainable parts (an encoder). The harness owns everything else:
data, optimisation, caching, solving and measuring.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from odebench.bench.core.registry import Registry
from odebench.bench.core.solvers import Dynamics

__all__ = ["METHODS", "Dynamics", "GaussianPrior", "Method", "Prior", "get_method", "register_method"]

NetFactory = Callable[..., nn.Module]
"""``make_net(out_mult=1, width=1.0, depth=1.0) -> nn.Module`` mapping (x [B, *shape], t [B]) ->
[B, out_mult * C, ...]; ``width`` / ``depth`` < 1 give a smaller network of the spec's kind (e.g. an encoder)."""


class Prior(ABC):
    """A source law on [*shape]: draws and log-density."""

    @abstractmethod
    def sample(self, n: int, gen: torch.Generator | None = None, device=None) -> Tensor:
        """[n, *shape] draws."""

    @abstractmethod
    def log_prob(self, x: Tensor) -> Tensor:
        """[B] log-density of x: [B, *shape] (nats)."""


class GaussianPrior(Prior):
    """N(0, scale^2 I) on [*shape]."""

    def __init__(self, shape: tuple[int, ...], scale: float = 1.0):
        self.shape = tuple(shape)
        self.scale = float(scale)

    def sample(self, n, gen=None, device=None):
        return self.scale * torch.randn((n, *self.shape), generator=gen, device=device)

    def log_prob(self, x):
        d = math.prod(self.shape)
        sq = x.flatten(1).pow(2).sum(1) / self.scale**2
        return -0.5 * sq - 0.5 * d * math.log(2 * math.pi * self.scale**2)


class Method(ABC):
    """Base of every method family.

    Subclasses set ``name`` (registry key), ``reference`` and ``citation``, declare their hyperparameters as
    keyword arguments of ``__init__`` (they must be JSON-serialisable: they key the model cache and go into
    every record), and implement ``loss`` and ``dynamics``.
    """

    name: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    #: True if the method only works from N(0, I) (its maths assumes it); specs pairing it with another
    #: source fail validation.
    needs_gaussian_source: ClassVar[bool] = True
    #: hparams that act only when sampling (a Langevin corrector's steps, where sampling stops): they are in
    #: every record's config but not in the trained model's cache key, so sweeping them reuses one model
    sampling_hparams: ClassVar[tuple[str, ...]] = ()
    #: hparams whose value "data" the harness replaces, before any training, by ``resolve_data_hparam`` of the
    #: training split (name -> what is computed); the resolved number keys the cache and goes into records
    data_hparams: ClassVar[dict[str, str]] = {}
    #: time grids (odebench.bench.core.time_grids) on which the method's fixed-step samplers are meant to run,
    #: and why (empty: any grid). A cell on another grid is still run and shown, but the report's best-solver pick
    #: and claim 11's ranking leave it out and say so (odebench.bench.report.suitability)
    suitable_grids: ClassVar[tuple[str, ...]] = ()
    grid_note: ClassVar[str] = ""
    #: why the method's loss on held-out data is no measure of training progress ('' where it is one): its
    #: target moves with the network (a self-consistency or a derivative of the network itself), so a flat or
    #: rising curve says nothing about the samples. Such a model's convergence is not judged (None, with this
    #: reason) and ``train.until_converged`` trains it the whole budget (odebench.bench.harness.training)
    heldout_not_progress: ClassVar[str] = ""

    def __init__(self, **hparams: Any):
        self.hparams: dict[str, Any] = dict(hparams)

    @classmethod
    def resolve_data_hparam(cls, name: str, train: Tensor) -> Any:
        """The value of data hparam ``name`` (a key of ``data_hparams``) for the training split train: [N, *shape]."""
        raise NotImplementedError(f"{cls.name} declares data hparam {name!r} but does not compute it")

    # -------------------------------------------------------------------------------- what the harness calls
    def config(self) -> dict[str, Any]:
        """The resolved method config (name + hparams) that keys the cache and goes into records."""
        return {"name": self.name, **self.hparams}

    def training_config(self) -> dict[str, Any]:
        """``config()`` without the sampling-only hparams: what the trained model depends on (its cache key)."""
        return {k: v for k, v in self.config().items() if k not in self.sampling_hparams}

    def networks(self, make_net: NetFactory, shape: tuple[int, ...]) -> nn.ModuleDict:
        """All trainable parts. Default: one velocity network ``v``."""
        return nn.ModuleDict({"v": make_net()})

    @abstractmethod
    def loss(self, model: nn.ModuleDict, x0: Tensor, x1: Tensor, gen: torch.Generator | None) -> Tensor:
        """Scalar training loss on a batch: x0 [B, *shape] from the source, x1 [B, *shape] from the data."""

    @abstractmethod
    def dynamics(self, model: nn.ModuleDict) -> Dynamics:
        """Sampling dynamics of a trained model, from t = 0 (source) to t = 1 (data)."""

    def offers(self) -> frozenset[str]:
        """The capabilities its ``dynamics`` fill in (keys of ``odebench.bench.core.fields.CAPABILITIES``).

        Declared, not probed: the plan skips a solver whose ``requires`` this lacks without building a network,
        and the contract tests check that ``dynamics(model).offers()`` says the same. Default: the ODE only.
        """
        return frozenset({"velocity"})

    def refuses(self, solver: str, nfe: int | None) -> str | None:
        """Why this configuration cannot be sampled by ``solver`` at ``nfe`` (None: an adaptive solve), where
        that is known from the configuration alone (a distilled one-step map refuses any time but t = 0); None
        where it can. The plan skips such a cell without training (``odebench run --dry-run`` counts it), with the
        message its dynamics would raise when sampled. Default: nothing refused beyond :meth:`offers`."""
        return None

    def prior(self, shape: tuple[int, ...]) -> Prior:
        """The source law used when the spec names no source dataset."""
        return GaussianPrior(shape)

    def parent(self) -> Method | None:
        """A stage this method is trained from (its trained model is passed to ``make_pairs``)."""
        return None

    def init_from_parent(self) -> bool:
        """Whether training starts from the parent's trained weights (fine-tuning) instead of a fresh network.

        Only asked when ``parent()`` is set; the networks of both stages must then have the same layout.
        """
        return False

    def trains_on_pairs(self) -> bool:
        """Under a parent: whether the harness trains on the parent's pairs (``n_pairs`` and ``make_pairs``: reflow,
        one-step distillation), the default, or on the independent coupling of source and data, the parent's trained
        networks reaching the method through ``prepare`` (a teacher the loss calls: consistency distillation)."""
        return True

    def prepare(self, model: nn.ModuleDict, steps: int, parent_model: nn.ModuleDict | None) -> None:
        """Called on freshly built networks before their training (never on a cached model): ``steps`` is the number
        of optimisation steps the training will run, ``parent_model`` the trained parent (None without one).

        A method whose loss follows a schedule over the training (consistency training's curriculum) or calls a
        teacher (consistency distillation) stores what it needs in ``model`` here. Default: nothing.
        """
        return None

    def n_pairs(self) -> int:
        """How many source draws the harness pairs through ``make_pairs`` (only asked when ``parent()`` is set)."""
        raise NotImplementedError(f"{self.name} has a parent but does not say how many pairs it trains on")

    def make_pairs(self, parent_model: nn.ModuleDict, x0: Tensor, gen: torch.Generator | None) -> Tensor:
        """For coupled training (reflow, distillation): the data-side partner of each source draw x0.

        Only called when ``parent()`` is not None; returns x1 [N, *shape].
        """
        raise NotImplementedError(f"{self.name} has a parent but does not define make_pairs")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())
        return f"{type(self).__name__}({args})"


class MethodRegistry(Registry[type[Method]]):
    """The method registry: an entry point may point straight at an undecorated Method subclass, which then
    takes its entry-point name (a class that inherits ``name`` from a registered parent must not keep it)."""

    def add(self, name: str, obj: type[Method]) -> None:
        if isinstance(obj, type) and issubclass(obj, Method) and "name" not in vars(obj):
            obj.name = name
        super().add(name, obj)


METHODS: Registry[type[Method]] = MethodRegistry("method", "odebench.methods", builtin="odebench.methods")


def register_method(name: str):
    """Class decorator: ``@register_method("fm_ot")`` registers a Method subclass under ``name``."""

    def deco(cls: type[Method]) -> type[Method]:
        cls.name = name
        METHODS.add(name, cls)
        return cls

    return deco


def get_method(name: str, **hparams: Any) -> Method:
    """Instantiate a registered method; unknown hparams raise with the accepted ones."""
    cls = METHODS.get(name)
    try:
        return cls(**hparams)
    except TypeError as exc:
        import inspect

        accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        raise ValueError(f"method {name!r}: {exc}. Accepted hparams: {accepted}") from exc


def field_of(net: nn.Module) -> Callable[[Tensor, Tensor], Tensor]:
    """The network itself as a field f(x, t); a named helper keeps ``dynamics`` readable."""
    return lambda x, t: net(x, t)


def expand_t(t: Tensor, like: Tensor) -> Tensor:
    """Reshape t: [B] to [B, 1, ..., 1] so it broadcasts against ``like``: [B, *shape]."""
    return t.reshape(-1, *([1] * (like.dim() - 1)))


def uniform_t(n: int, gen: torch.Generator | None, device, eps: float = 0.0) -> Tensor:
    """[n] training times drawn uniformly from [eps, 1 - eps]."""
    return eps + (1 - 2 * eps) * torch.rand(n, generator=gen, device=device)


