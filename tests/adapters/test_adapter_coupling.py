"""A given model declares its coupling: a TorchCFM model trained with minibatch OT (its matcher's class says so, or
``--coupling ot``) gets the refusals odebench's own ``otcfm`` gets (docs/decisions.md, 29): the data-prediction
samplers are recorded as skipped, with the coupling named as the reason, while the ODE solvers run."""

from __future__ import annotations

import pytest
import torch

torchcfm = pytest.importorskip("torchcfm", reason="the TorchCFM peer is not installed (pip install --no-deps "
                                                  "'torchcfm>=1.0.7', as .ci/run does)")
from adapter_helpers import tiny_spec_toml  # noqa: E402
from torchcfm.conditional_flow_matching import (  # noqa: E402
    ConditionalFlowMatcher,
    ExactOptimalTransportConditionalFlowMatcher,
    SchrodingerBridgeConditionalFlowMatcher,
    VariancePreservingConditionalFlowMatcher,
)
from torchcfm.models import MLP  # noqa: E402

from odebench.adapters import TorchCFM, adapt  # noqa: E402
from odebench.bench.cli import main  # noqa: E402
from odebench.bench.data import load_dataset  # noqa: E402
from odebench.bench.harness.store.records import RecordStore  # noqa: E402

WIDTH = 32
#: the ODE solver runs; the data-prediction samplers, stochastic (the wrong law) and deterministic, are refused
SOLVERS = ('[[solvers]]\nname = "euler"\nnfe = [8]\n[[solvers]]\nname = "ddim_eta1"\nnfe = [8]\n'
           '[[solvers]]\nname = "dpmpp_2m_sde"\nnfe = [8]\n[[solvers]]\nname = "edm_sde"\nnfe = [8]\n')


def train_ot_cfm(steps: int = 60) -> MLP:
    """TorchCFM's MLP trained briefly on moons with its minibatch-OT matcher (sigma = 0), as its notebooks do."""
    torch.manual_seed(0)
    model, cfm = MLP(dim=2, w=WIDTH, time_varying=True), ExactOptimalTransportConditionalFlowMatcher(sigma=0.0)
    data, opt = load_dataset("moons").train, torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x1 = data[torch.randint(len(data), (128,), generator=gen)]
        t, xt, ut = cfm.sample_location_and_conditional_flow(torch.randn(128, 2, generator=gen), x1)
        loss = (model(torch.cat([xt, t[:, None]], dim=-1)) - ut).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("matcher, coupling", [
    (ExactOptimalTransportConditionalFlowMatcher(sigma=0.0), "ot"),
    (SchrodingerBridgeConditionalFlowMatcher(sigma=0.1), "ot"),
    (ConditionalFlowMatcher(sigma=0.0), "independent"),
    (VariancePreservingConditionalFlowMatcher(sigma=0.0), "independent"),
])
def test_the_coupling_is_read_from_the_matchers_class(matcher, coupling):
    net = MLP(dim=2, w=WIDTH, time_varying=True)
    for adapter in (adapt((net, matcher), path="linear"), TorchCFM(net, path="linear", matcher=matcher)):
        assert isinstance(adapter, TorchCFM) and adapter.coupling == coupling
        offers = adapter.dynamics(adapter.model()).offers()
        assert offers == adapter.offers()  # declared as built
        assert ("x1_hat" in offers) == (coupling == "independent") and "noise_schedule" in offers
        # the identity says an OT coupling, and leaves an independent model's identity as it was
        assert adapter.identity().get("coupling") == (None if coupling == "independent" else "ot")


def test_a_coupling_that_contradicts_the_matcher_is_refused():
    with pytest.raises(ValueError, match="drop the coupling option, the matcher says it"):
        adapt((MLP(dim=2, w=WIDTH, time_varying=True), ConditionalFlowMatcher(sigma=0.0)), coupling="ot")
    with pytest.raises(ValueError, match="unknown coupling 'minibatch'"):
        adapt(MLP(dim=2, w=WIDTH, time_varying=True), coupling="minibatch")


@pytest.mark.parametrize("how", ["matcher", "option"])
def test_an_ot_coupled_torchcfm_model_gets_otcfms_refusals(how, factory_module, tmp_path, capsys):
    """The case the issue measured: an ExactOptimalTransportConditionalFlowMatcher model declared ``--path
    linear`` used to be sampled by ddim_eta1, dpmpp_2m_sde and edm_sde, which sample another law for it."""
    torch.save(train_ot_cfm().state_dict(), tmp_path / "ot.pt")
    returned = ("(MLP(dim=2, w=WIDTH, time_varying=True), ExactOptimalTransportConditionalFlowMatcher(sigma=0.0))"
                if how == "matcher" else "MLP(dim=2, w=WIDTH, time_varying=True)")
    name = factory_module(f"from torchcfm.conditional_flow_matching import ExactOptimalTransportConditionalFlowMatcher"
                          f"\nfrom torchcfm.models import MLP\n\nWIDTH = {WIDTH}\n\n\ndef make():\n    return "
                          f"{returned}\n")
    (tmp_path / "spec.toml").write_text(tiny_spec_toml(SOLVERS, n_samples=256))
    extra = ["--coupling", "ot"] if how == "option" else []
    code = main(["eval", "--model", f"{name}:make", "--checkpoint", "ot.pt", "--path", "linear", *extra,
                 "--dataset", "moons", "--spec", "spec.toml", "--out", "out", "--no-progress", "--no-figures"])
    assert code == 0, capsys.readouterr().err
    records = {r["config"]["solver"]: r for r in RecordStore(tmp_path / "out" / f"eval_{name}.make_moons").records()}
    assert records["euler"]["status"] == "ok"
    for solver in ("ddim_eta1", "dpmpp_2m_sde", "edm_sde"):
        record = records[solver]
        assert record["status"] == "skipped", record
        assert "x1_hat" in record["reason"] and "coupling 'ot'" in record["reason"]
        assert record["config"]["method"]["coupling"] == "ot"


def test_odebench_evaluate_takes_the_coupling_and_the_matcher(tmp_path):
    import odebench

    net = MLP(dim=2, w=WIDTH, time_varying=True)
    solvers = [{"name": "euler", "nfe": [4]}, {"name": "dpmpp_2m_sde", "nfe": [8]}]
    for model, coupling, name in ((net, "ot", "option"),
                                  ((net, ExactOptimalTransportConditionalFlowMatcher(sigma=0.0)), None, "matcher")):
        frame = odebench.evaluate(model, "moons", solvers=solvers, metrics=["w2"], n_samples=64, path="linear",
                                  coupling=coupling, out=tmp_path, name=name, report=False)
        status = dict(zip(frame["solver"], frame["status"], strict=True))
        assert status == {"euler": "ok", "dpmpp_2m_sde": "skipped"}
