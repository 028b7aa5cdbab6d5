"""Networks too large to build are refused before any training.

Each key of a spec has its own bound, but a combination of them (``hidden = 65536`` with ``depth = 256``) can
still ask for more parameters than any machine holds; building that network would exhaust memory, or get
the process killed, at the start of its training. So the plan's networks are built first on the meta device
(no memory is allocated), their parameters counted, and a run whose networks pass the policy bound
``parameters`` (spec.limits.POLICY) stops before any work, with the bound and how to raise it.
"""

from __future__ import annotations

import torch

from odebench.bench.harness.execution.plan import Plan, method_at, problem_of
from odebench.bench.harness.guards.errors import RunRefused
from odebench.bench.harness.spec import limits as lim
from odebench.bench.harness.training.train import build_model


class ModelTooLarge(RunRefused):
    """A training of the plan would build networks above the parameter bound."""


def parameter_count(job) -> int | None:
    """Parameters of the networks a training job builds, counted on the meta device (None: cannot tell)."""
    try:
        with torch.device("meta"):
            model = build_model(method_at(job.cell, job.depth), problem_of(job.cell))
    except Exception:  # a configuration the network refuses: its training reports the reason
        return None
    return sum(p.numel() for p in model.parameters())


def check_model_sizes(plan: Plan, limits: dict[str, int]) -> None:
    """Raise ModelTooLarge naming the first training whose networks pass the ``parameters`` bound."""
    with lim.policy(limits):
        bound = lim.bound("parameters")
        for job in plan.trainings:
            n = None if job.cached else parameter_count(job)
            if n is not None and n > bound:
                raise ModelTooLarge(f"training {job.label} would build networks of {n:,} parameters. "
                                    f"{lim.raise_hint('parameters')}; or make net smaller")
