"""Where does a diffusion model's probability-flow ODE go wrong? Swap in a Gaussian's exact eps at high noise.

For a ``ddpm`` (or ``score_ve``) cell of a spec, this loads the trained model (training it if it is not in the
cache), then samples the probability-flow ODE (unified time t: source noise at 0, data at 1) with the learned
eps, and again with eps replaced, for diffusion times s = 1 - t >= s_cut, by the exact eps of a Gaussian fitted
to the training data. Where a(s) is small, x_s is almost all noise and that Gaussian eps is nearly the true
E[eps | x_s]; if the swap repairs the samples, the ODE's failure comes from the network's error at high noise,
amplified by the ODE, and not from the sampler. Prints the Fréchet distance in raw coordinates to the test
split for each cut.

    python3 scripts/diagnose_pf_ode.py SPEC --out results --method ddpm --cuts 2 0.9 0.7 0.5
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from odebench.bench.core.solvers import sample
from odebench.bench.harness.execution.plan import problem_of
from odebench.bench.harness.spec.sweep import load_spec
from odebench.bench.harness.store.artifacts import ArtifactStore
from odebench.bench.harness.training.train import TrainConfig, train_model
from odebench.methods import get_method
from odebench.metrics.quality import frechet_from_samples


class GaussianAboveCut(nn.Module):
    """eps network: the learned one for s < cut, the exact eps of N(mean, cov) for s >= cut (flattened data)."""

    def __init__(self, method, learned: nn.Module, mean: torch.Tensor, cov: torch.Tensor, cut: float):
        super().__init__()
        self.method, self.learned, self.mean, self.cov, self.cut = method, learned, mean, cov, cut

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        s = 1 - t[0].item()  # every solver calls the field with one time per batch
        if s < self.cut:
            return self.learned(x, t)
        sch = self.method.schedule(1 - t)
        a, sig = sch.log_alpha.exp()[0].double(), sch.sigma[0].double()
        system = a**2 * self.cov + sig**2 * torch.eye(len(self.mean), dtype=torch.float64)
        flat = x.reshape(len(x), -1).double()
        eps = sig * torch.linalg.solve(system, (flat - a * self.mean).T).T
        return eps.to(x.dtype).reshape(x.shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--out", default="results", help="the sweep's --out folder (its model cache is reused)")
    parser.add_argument("--method", default="ddpm", choices=["ddpm", "score_ve"])
    parser.add_argument("--cuts", type=float, nargs="+", default=[2.0, 0.9, 0.7, 0.5],
                        help="diffusion times s above which the Gaussian eps is used (2 = never)")
    parser.add_argument("--n", type=int, default=500, help="samples per run")
    parser.add_argument("--nfe", type=int, default=100, help="Euler steps (dopri5 at 1e-5 is run as well)")
    args = parser.parse_args()

    cell = next(c for c in load_spec(args.spec).cells if c.method["name"] == args.method)
    method, problem = get_method(**cell.method), problem_of(cell)
    trained = train_model(method, problem, TrainConfig(**cell.train), cell.seed,
                          ArtifactStore(f"{args.out}/.cache/models"))
    key = "eps" if args.method == "ddpm" else "score"
    sign = 1.0 if args.method == "ddpm" else -1.0  # score_ve's network outputs -eps
    train = problem.target.train.reshape(len(problem.target.train), -1).double()
    mean, cov = train.mean(0), torch.cov(train.T)
    test = problem.target.test.reshape(len(problem.target.test), -1)

    for cut in args.cuts:
        swapped = GaussianAboveCut(method, lambda x, t: sign * trained.model[key](x, t), mean, cov, cut)
        signed = _Signed(swapped, sign)
        dyn = method.dynamics(nn.ModuleDict({key: signed}))
        for solver, budget in (("euler", {"nfe": args.nfe}), ("dopri5", {"rtol": 1e-5, "atol": 1e-5})):
            gen = torch.Generator().manual_seed(1)
            x0 = method.prior(problem.target.shape).sample(args.n, gen)
            with torch.no_grad():
                res = sample(dyn, x0, solver, gen=gen, **budget)
            fd = frechet_from_samples(res.x.reshape(args.n, -1), test)
            label = "learned eps everywhere" if cut > 1 else f"Gaussian eps for s >= {cut}"
            print(f"{label:<32} {solver:<7} NFE {res.nfe:<4} fd (raw) {fd:.3f}", flush=True)


class _Signed(nn.Module):
    """Multiplies a network's output by a sign (score_ve's network predicts -eps)."""

    def __init__(self, net, sign: float):
        super().__init__()
        self.net, self.sign = net, sign

    def forward(self, x, t):
        return self.sign * self.net(x, t)


if __name__ == "__main__":
    main()
