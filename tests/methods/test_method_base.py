"""What the Method base class gives a new method: its repr, the defaults of a staged method (trained from a
parent), ``field_of``, and the errors that say which piece a plugin forgot; and score_ve's refusal to be used
before its sigma_max = "data" is resolved."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from odebench.bench.core.fields import Dynamics
from odebench.methods import get_method
from odebench.methods.base import Method, field_of


class Staged(Method):
    """A plugin method with a parent stage that overrides nothing about the staging."""

    name = "staged_plugin"
    data_hparams = {"width": "something computed from the data"}

    def __init__(self, width: int = 3, label: str = "a"):
        super().__init__(width=width, label=label)

    def loss(self, model, x0, x1, gen):
        return model["v"](x1, torch.zeros(len(x1))).pow(2).mean()

    def dynamics(self, model):
        return Dynamics(velocity=field_of(model["v"]))

    def parent(self):
        return get_method("fm_ot")


def test_repr_names_the_class_and_every_hparam():
    assert repr(Staged()) == "Staged(width=3, label='a')"
    assert repr(Staged(width=5, label="b c")) == "Staged(width=5, label='b c')"


def test_a_staged_method_trains_a_fresh_network_unless_it_says_otherwise():
    assert Staged().init_from_parent() is False


def test_a_staged_method_without_pairs_says_what_it_lacks():
    method = Staged()
    with pytest.raises(NotImplementedError, match="staged_plugin has a parent but does not say how many pairs"):
        method.n_pairs()
    with pytest.raises(NotImplementedError, match="staged_plugin has a parent but does not define make_pairs"):
        method.make_pairs(nn.ModuleDict(), torch.zeros(2, 2), None)
    with pytest.raises(NotImplementedError, match="staged_plugin declares data hparam 'width' but does not"):
        Staged.resolve_data_hparam("width", torch.zeros(4, 2))


class _Affine(nn.Module):
    """f(x, t) = 2 x + t: each argument visible in the output."""

    def forward(self, x, t):
        return 2 * x + t[:, None]


def test_field_of_calls_the_network_on_state_and_time():
    x, t = torch.tensor([[1.0, -1.0], [0.5, 0.0]]), torch.tensor([0.25, 3.0])
    torch.testing.assert_close(field_of(_Affine())(x, t), torch.tensor([[2.25, -1.75], [4.0, 3.0]]))


def test_score_ve_with_an_unresolved_sigma_max_says_how_to_resolve_it():
    method = get_method("score_ve")  # sigma_max = "data": the harness resolves it from the training split
    assert method.hparams["sigma_max"] == "data"
    for name in ("sigma_max", "log_ratio", "prior_scale"):
        with pytest.raises(RuntimeError, match=r'sigma_max = "data" has not been resolved.*\(odebench run\)'):
            getattr(method, name)
    with pytest.raises(AttributeError, match="no_such_attribute"):
        method.no_such_attribute  # noqa: B018  (other attributes stay ordinary AttributeErrors)
    assert not hasattr(method, "no_such_attribute")
    assert get_method("score_ve", sigma_max=12.0).sigma_max == 12.0
