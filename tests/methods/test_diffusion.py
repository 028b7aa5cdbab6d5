"""Diffusion baselines (ddpm, score_ve): closed-form Gaussian checks, samplers, NFE counting, harness runs.

For Gaussian data N(m, diag sd^2) on the path x_s = a x + sigma eps, x_s ~ N(a m, a^2 sd^2 + sigma^2) and the
exact noise prediction is E[eps | x_s = x] = sigma (x - a m) / (a^2 sd^2 + sigma^2) (per dimension).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from odebench.bench.core.solvers import BudgetTooSmall, Unsupported, sample
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.training.train import TrainConfig, fit
from odebench.methods import get_method
from odebench.methods.couplings import IndependentCoupling
from odebench.methods.diffusion import song_ermon_sigma_max
from odebench.methods.exact import gaussian, vp_score
from odebench.methods.probability_paths import VPDiffusionPath

M = torch.tensor([1.0, -0.5])
SD = torch.tensor([0.5, 1.5])
# score_ve's prior N(0, sigma_max^2 I) misses the true s = 1 marginal N(m, sd^2 + sigma_max^2); with
# sigma_max = 50 the exact flow's output is off by at most |m| sd / sigma_max = 0.015 in the mean.
METHODS = {"ddpm": ({}, "eps", 1.0), "score_ve": ({"sigma_max": 50.0}, "score", -1.0)}


class ExactNet(nn.Module):
    """The exact network output for Gaussian data: eps* (ddpm) or -eps* (score_ve), counting its calls."""

    def __init__(self, method, sign: float, shift: float = 0.0):
        super().__init__()
        self.method, self.sign, self.shift, self.calls = method, sign, shift, 0

    def forward(self, x, t):
        self.calls += 1
        sch = self.method.schedule(1 - t)
        a, sig = sch.log_alpha.exp()[:, None], sch.sigma[:, None]
        eps = sig * (x - a * M) / (a**2 * SD**2 + sig**2)
        return self.sign * (eps + self.shift)


def exact_model(name: str, shift: float = 0.0, **extra):
    hp, key, sign = METHODS[name]
    method = get_method(name, **{**hp, **extra})
    return method, nn.ModuleDict({key: ExactNet(method, sign, shift)})


def gaussian_data(n: int, gen: torch.Generator) -> torch.Tensor:
    return M + SD * torch.randn(n, 2, generator=gen)


# ---------------------------------------------------------------------------------------------- the maths
@pytest.mark.parametrize("name", ["ddpm", "score_ve"])
def test_schedule_solves_the_forward_sde(name):
    """For dx = f x ds + g dW: d log a / ds = f and d sigma^2 / ds = 2 f sigma^2 + g^2 (autograd)."""
    method = get_method(name, **({"sigma_max": 12.0} if name == "score_ve" else {}))
    s = torch.linspace(0.01, 1.0, 50, dtype=torch.float64, requires_grad=True)
    sch = method.schedule(s)
    # score_ve's log a = 0 does not depend on s; adding 0 * s keeps it in the graph
    (dlog_a,) = torch.autograd.grad((sch.log_alpha + 0 * s).sum(), s, retain_graph=True)
    (dvar,) = torch.autograd.grad((sch.sigma**2).sum(), s)
    torch.testing.assert_close(dlog_a, sch.f.detach())
    torch.testing.assert_close(dvar, (2 * sch.f * sch.sigma**2 + sch.g2).detach())


def test_vp_schedule_matches_the_shared_vp_path_and_the_maths_doc():
    method = get_method("ddpm")
    t = torch.linspace(0.0, 1 - 1e-5, 101, dtype=torch.float64)
    sch, path = method.schedule(1 - t), VPDiffusionPath().coefficients(t)
    torch.testing.assert_close(sch.log_alpha.exp(), path.alpha_t)
    torch.testing.assert_close(sch.sigma, path.sigma_t)
    # PF-ODE and reverse SDE drift against the unified-time formulas of docs/maths.md ("Diffusion in unified time")
    _, model = exact_model("ddpm")
    dyn = method.dynamics(model)
    x, tt = torch.randn(64, 2, dtype=torch.float64), torch.rand(64, dtype=torch.float64) * (1 - 1e-3)
    beta, sig = 0.1 + 19.9 * (1 - tt[:, None]), method.schedule(1 - tt).sigma[:, None]
    eps = model["eps"](x, tt)
    torch.testing.assert_close(dyn.velocity(x, tt), beta / 2 * (x - eps / sig))
    torch.testing.assert_close(dyn.drift(x, tt), beta * (x / 2 - eps / sig))
    torch.testing.assert_close(dyn.diffusion(tt), beta[:, 0].sqrt())


def test_ve_pf_ode_is_sigma_dsigma_times_score():
    """dx/ds = -sigma sigma' score, i.e. dx/dt = sigma sigma' score with sigma' = sigma log(max/min)."""
    method, model = exact_model("score_ve")
    dyn = method.dynamics(model)
    x, t = 30 * torch.randn(64, 2, dtype=torch.float64), torch.rand(64, dtype=torch.float64)
    sig = 0.01 * (50 / 0.01) ** (1 - t[:, None])
    score = model["score"](x, t) / sig
    torch.testing.assert_close(dyn.velocity(x, t), sig * sig * math.log(50 / 0.01) * score)
    torch.testing.assert_close(method.score(model)(x, t), score)
    assert method.prior((2,)).scale == 50.0


def test_ancestral_step_is_the_classic_posterior():
    """VP: Ho et al.'s q(x_{s'} | x_s, x0_hat) with alpha-bar = a^2; VE: Song et al.'s SMLD step."""
    x, eps = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    t, t_next = torch.full((5,), 0.3, dtype=torch.float64), torch.full((5,), 0.45, dtype=torch.float64)
    ddpm, ve = get_method("ddpm"), get_method("score_ve", sigma_max=12.0)
    ab, ab_next = ((2 * ddpm.schedule(1 - tt).log_alpha).exp()[0] for tt in (t, t_next))
    x0_hat = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
    beta = 1 - ab / ab_next
    mean = ab_next.sqrt() * beta / (1 - ab) * x0_hat + (1 - beta).sqrt() * (1 - ab_next) / (1 - ab) * x
    torch.testing.assert_close(ddpm.ancestral_step(x, eps, t, t_next, None, last=True), mean)
    sig, sig_next = ve.schedule(1 - t).sigma[0], ve.schedule(1 - t_next).sigma[0]
    torch.testing.assert_close(ve.ancestral_step(x, eps, t, t_next, None, last=True),
                               x + (sig**2 - sig_next**2) * (-eps / sig))
    # the noise has the posterior's standard deviation; the last step adds none
    many = x[:1].expand(20000, 2)
    ones = torch.ones(20000, dtype=torch.float64)
    draws = ve.ancestral_step(many, eps[:1].expand(20000, 2), 0.3 * ones, 0.45 * ones,
                              torch.Generator().manual_seed(1))
    expected = (sig_next**2 * (sig**2 - sig_next**2) / sig**2).sqrt()
    assert abs(draws.std(0) / expected - 1).max() < 0.03  # 3 sigma of a std over 20000 draws is 1.5 %
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    last = [ddpm.ancestral_step(x, eps, t, t_next, g, last=True) for g in (g1, g2)]
    assert torch.equal(last[0], last[1])


# ---------------------------------------------------------------------------------------- closed form
@pytest.mark.parametrize("name", ["ddpm", "score_ve"])
def test_loss_is_lower_at_the_exact_field(name):
    """Same draws for both: the gap is E shift^2 = 0.01 plus a cross term of std ~ 0.2 / sqrt(2 * 20000)."""
    losses = []
    for shift in (0.0, 0.1):
        method, model = exact_model(name, shift)
        gen = torch.Generator().manual_seed(0)
        x1 = gaussian_data(20000, gen)
        x0 = method.prior((2,)).sample(20000, gen)
        losses.append(method.loss(model, x0, x1, gen).item())
    assert losses[0] < losses[1] - 0.005


CASES = [("ddpm", "heun", 200), ("ddpm", "rk4", 200), ("ddpm", "euler_maruyama", 500),
         ("ddpm", "ancestral", 500), ("score_ve", "heun", 200), ("score_ve", "rk4", 200),
         ("score_ve", "euler_maruyama", 500), ("score_ve", "ancestral", 500), ("score_ve", "pc", 600)]


@pytest.mark.parametrize("name, solver, nfe", CASES)
def test_exact_field_reproduces_the_target(name, solver, nfe):
    """Mean and variance of 2000 samples within 4.5 standard errors of the target (fixed seed).

    Standard errors: sd / sqrt(n) for the mean, sqrt(2 / n) for var / sd^2; the covariance's off-diagonal
    entry has standard error sd1 sd2 / sqrt(n). The budgets keep the discretisation bias well below these.
    """
    method, model = exact_model(name)
    n = 2000
    gen = torch.Generator().manual_seed(0)
    x = sample(method.dynamics(model), method.prior((2,)).sample(n, gen), solver, nfe=nfe, gen=gen).x
    z_mean = (x.mean(0) - M) / (SD / math.sqrt(n))
    z_var = (x.var(0) / SD**2 - 1) / math.sqrt(2 / n)
    cov = torch.cov(x.T)[0, 1] / (SD[0] * SD[1] / math.sqrt(n))
    assert z_mean.abs().max() < 4.5, (z_mean, x.mean(0))
    assert z_var.abs().max() < 4.5, (z_var, x.var(0))
    assert abs(cov) < 4.5


class ExactFullCovNet(nn.Module):
    """Exact eps of ddpm for N(m, C) data with a full covariance, -sigma(s) grad log p_s (odebench.methods.exact), [B,
    D]."""

    def __init__(self, method, mean: torch.Tensor, cov: torch.Tensor, scale: float = 1.0):
        super().__init__()
        self.method, self.data, self.scale = method, gaussian(mean, cov), scale

    def forward(self, x, t):
        s = (1 - t).double()
        score = vp_score(self.data, x.double(), s, self.method.beta_min, self.method.beta_max)
        sigma = self.method.schedule(s).sigma[:, None]
        return (-self.scale * sigma * score).to(x.dtype)


def low_rank_gaussian(dim: int = 48, rank: int = 12):
    """Mean and covariance like 8x8 digits: most variance in a few directions, the rest ~constant pixels."""
    gen = torch.Generator().manual_seed(5)
    basis = torch.randn(dim, rank, generator=gen, dtype=torch.float64) / math.sqrt(rank)
    cov = basis @ basis.T + 1e-6 * torch.eye(dim, dtype=torch.float64)
    return torch.rand(dim, generator=gen, dtype=torch.float64) - 0.5, cov


@pytest.mark.parametrize("solver, budget", [("heun", {"nfe": 256}), ("dopri5", {"rtol": 1e-5, "atol": 1e-5}),
                                            ("euler_maruyama", {"nfe": 256}), ("ancestral", {"nfe": 256})])
@pytest.mark.slow
def test_ddpm_exact_eps_reproduces_a_degenerate_high_dimensional_gaussian(solver, budget):
    """D = 48, rank 12 (near-constant directions, as in digits): the probability-flow ODE and the reverse SDE
    driven by the exact eps land on N(m, C). 2000 exact draws from N(m, C) score 0.07-0.12 against the law
    (estimation noise); the samplers score 0.09-0.10, and a 2 % error in eps already gives 0.45 on the ODE.
    """
    from odebench.metrics.quality import frechet_distance

    ddpm = get_method("ddpm")
    mean, cov = low_rank_gaussian()
    dyn = ddpm.dynamics(nn.ModuleDict({"eps": ExactFullCovNet(ddpm, mean, cov)}))
    gen = torch.Generator().manual_seed(1)
    x = sample(dyn, ddpm.prior((len(mean),)).sample(2000, gen).double(), solver, gen=gen, **budget).x
    fd = frechet_distance(x.mean(0).numpy(), torch.cov(x.T).numpy(), mean.numpy(), cov.numpy())
    assert fd < 0.2, fd


@pytest.mark.slow
def test_probability_flow_amplifies_a_shrunk_eps_that_the_reverse_sde_forgives():
    """Why a short-trained ddpm's ODE samples can be bad while its SDE samples are good: near the noise end
    the velocity (beta / 2)(x - eps / sigma) is a difference of two large terms, so an eps shrunk by 10 %
    leaves an expanding linear field there. The SDE's drift doubles the score term, which contracts."""
    from odebench.metrics.quality import frechet_distance

    ddpm = get_method("ddpm")
    mean, cov = low_rank_gaussian()
    dyn = ddpm.dynamics(nn.ModuleDict({"eps": ExactFullCovNet(ddpm, mean, cov, scale=0.9)}))
    fds = {}
    for solver in ("heun", "euler_maruyama"):
        gen = torch.Generator().manual_seed(1)
        x = sample(dyn, ddpm.prior((len(mean),)).sample(2000, gen).double(), solver, nfe=256, gen=gen).x
        fds[solver] = frechet_distance(x.mean(0).numpy(), torch.cov(x.T).numpy(), mean.numpy(), cov.numpy())
    assert fds["heun"] > 5 * fds["euler_maruyama"], fds


# ------------------------------------------------------------------------------------------------ NFE
@pytest.mark.parametrize("name, solver, nfe, expected", [
    ("ddpm", "euler_maruyama", 7, 7), ("ddpm", "ancestral", 7, 7), ("score_ve", "ancestral", 5, 5),
    ("score_ve", "euler_maruyama", 5, 5), ("score_ve", "pc", 10, 10), ("ddpm", "heun", 7, 6),
    ("score_ve", "pc", 9, 7)])
def test_nfe_is_the_number_of_network_calls(name, solver, nfe, expected):
    """SDE samplers spend one call of the budget on the final denoising (pc with 2 corrector steps: 10 buys
    3 grid steps of 3 calls plus 1; 9 buys 2 steps plus 1); the ODE solver heun has no such call."""
    method, model = exact_model(name, corrector_steps=2) if name == "score_ve" else exact_model(name)
    net = next(iter(model.values()))
    gen = torch.Generator().manual_seed(0)
    res = sample(method.dynamics(model), torch.randn(8, 2), solver, nfe=nfe, gen=gen)
    assert res.nfe == net.calls == expected


def test_pc_needs_a_corrector_and_enough_budget():
    ve, model = exact_model("score_ve", corrector_steps=3)
    with pytest.raises(BudgetTooSmall, match="needs at least 4 NFE"):
        sample(ve.dynamics(model), torch.randn(4, 2), "pc", nfe=3)
    ddpm, model = exact_model("ddpm")
    with pytest.raises(Unsupported, match="needs corrector"):
        sample(ddpm.dynamics(model), torch.randn(4, 2), "pc", nfe=3)
    # pc without corrector steps is its predictor alone: Euler-Maruyama when asked for
    ve0, model = exact_model("score_ve", corrector_steps=0, predictor="euler_maruyama")
    x0 = torch.randn(4, 2)
    a = sample(ve0.dynamics(model), x0, "pc", nfe=5, gen=torch.Generator().manual_seed(3))
    b = sample(ve0.dynamics(model), x0, "euler_maruyama", nfe=5, gen=torch.Generator().manual_seed(3))
    assert torch.equal(a.x, b.x) and a.nfe == b.nfe == 5


def test_bad_hparams_and_sigma_max_rule():
    with pytest.raises(ValueError, match="sigma_max"):
        get_method("score_ve", sigma_max=0.001)
    with pytest.raises(ValueError, match="beta_min"):
        get_method("ddpm", beta_min=30.0)
    with pytest.raises(ValueError, match="corrector_steps"):
        get_method("score_ve", corrector_steps=-1)
    with pytest.raises(ValueError, match="sampling_eps"):
        get_method("ddpm", sampling_eps=1e-7)
    assert get_method("ddpm").dynamics(nn.ModuleDict()).t1 == 1 - 1e-3  # Song et al.'s VP sampling eps
    assert get_method("score_ve", sigma_max=12.0).dynamics(nn.ModuleDict()).t1 == 1 - 1e-5
    x = torch.randn(300, 3, generator=torch.Generator().manual_seed(0))
    assert song_ermon_sigma_max(x, chunk=64) == pytest.approx(torch.pdist(x).max().item(), rel=1e-5)


# ------------------------------------------------------------------------------------- training, harness
@pytest.mark.parametrize("name", ["ddpm", "score_ve"])
def test_short_training_lowers_the_loss(name):
    """150 steps close more than half of the gap between the first losses and the exact field's loss.

    The exact field's loss is the minimum (the irreducible part is large for VE, where sigma < sd for much
    of the log-uniform noise range). Observed: the gap shrinks to ~10 % (ddpm) and ~35 % (score_ve).
    """
    from odebench.bench.nets import build_net

    method, exact = exact_model(name, sigma_max=12.0) if name == "score_ve" else exact_model(name)
    gen = torch.Generator().manual_seed(0)
    optimum = method.loss(exact, method.prior((2,)).sample(50000, gen), gaussian_data(50000, gen), gen).item()
    torch.manual_seed(0)
    net_cfg = {"name": "mlp", "hidden": 32, "depth": 2}
    model = method.networks(lambda out_mult=1: build_net(net_cfg, (2,)), (2,))
    prior = method.prior((2,))
    coupling = IndependentCoupling(lambda n, g: prior.sample(n, g), gaussian_data)
    _, losses = fit(method, model, coupling, TrainConfig(steps=150, batch_size=128, lr=3e-3),
                    torch.Generator().manual_seed(0))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last - optimum < 0.5 * (first - optimum), (first, last, optimum)


def tiny_spec(methods: list[dict], solvers: list[dict]):
    return parse_spec({
        "name": "tiny", "train": {"steps": 40, "batch_size": 64},
        "net": {"name": "mlp", "hidden": 16, "depth": 2},
        # w2 against as many reference points as samples (the default cap is 4000: slow exact OT)
        "eval": {"n_samples": 128, "metrics": ["w2"], "metric_options": {"w2": {"max_points": 128}}},
        "methods": methods,
        "datasets": [{"target": "moons"}], "solvers": solvers})


def test_harness_runs_both_methods_and_skips_sde_solvers_for_ode_methods(tmp_path):
    from odebench.bench.harness.execution.run import run_sweep
    from odebench.bench.harness.store.records import RecordStore

    solvers = [{"name": s, "nfe": [4]} for s in ("euler", "heun", "euler_maruyama", "ancestral")]
    spec = tiny_spec([{"name": "ddpm"}, {"name": "score_ve"}, {"name": "fm_ot"}], solvers)
    runs = []
    for out in ("a", "b"):  # fresh caches: a fixed seed gives identical models and samples
        summary = run_sweep(spec, tmp_path / out, progress=False)
        assert summary.ok, summary.failures
        runs.append({r["cell_id"]: r for r in RecordStore(tmp_path / out / "tiny").records()})
    recs = runs[0]
    for r in recs.values():
        method, solver = r["config"]["method"]["name"], r["config"]["solver"]
        if method == "fm_ot" and solver in ("euler_maruyama", "ancestral"):
            assert r["status"] == "skipped"
            assert "needs sde" in r["reason"] or "needs ancestral" in r["reason"]
        else:
            assert r["status"] == "ok", r.get("reason")
            assert r["nfe"] == 4 and math.isfinite(r["metrics"]["w2"])
            assert r["metrics"] == runs[1][r["cell_id"]]["metrics"]
    assert len(recs) == 12


def test_sampling_only_hparams_reuse_one_trained_model(tmp_path):
    """ddpm's sampling_eps and score_ve's corrector_steps / snr act only when sampling: sweeping them trains
    one model per method, and the records still name the value each cell used."""
    from odebench.bench.harness.execution.run import run_sweep
    from odebench.bench.harness.store.records import RecordStore

    spec = tiny_spec([{"name": "ddpm", "sampling_eps": [1e-3, 1e-2]},
                      {"name": "score_ve", "corrector_steps": [1, 2], "snr": [0.1, 0.16]}],
                     [{"name": "pc", "nfe": [12]}, {"name": "euler", "nfe": [4]}])
    summary = run_sweep(spec, tmp_path, progress=False)
    assert summary.ok, summary.failures
    assert summary.n_trainings == summary.trained == 2
    recs = [r for r in RecordStore(tmp_path / "tiny").records() if r["status"] == "ok"]
    ddpm = {r["config"]["method"]["sampling_eps"]: r for r in recs if r["config"]["method"]["name"] == "ddpm"}
    assert set(ddpm) == {1e-3, 1e-2} and len({r["model_key"] for r in ddpm.values()}) == 1
    assert ddpm[1e-3]["metrics"] != ddpm[1e-2]["metrics"]  # where sampling stops does change the samples
    ve = [r for r in recs if r["config"]["method"]["name"] == "score_ve"]
    assert len({(r["config"]["method"]["corrector_steps"], r["config"]["method"]["snr"]) for r in ve}) == 4
    assert len({r["model_key"] for r in ve}) == 1
