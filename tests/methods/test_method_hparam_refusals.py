"""get_method refuses an unknown hparam with a ValueError that lists exactly the hparams the method takes."""

from __future__ import annotations

import ast

import pytest

from odebench.methods import get_method


@pytest.mark.parametrize("name, accepted", [
    ("ddpm", ["beta_min", "beta_max", "sampling_eps", "denoise"]),
    ("fm_diffusion", ["beta_min", "beta_max"])])
def test_an_unknown_hparam_is_refused_with_the_accepted_ones(name, accepted):
    with pytest.raises(ValueError, match=rf"^method '{name}': .*beta_mni.*\. Accepted hparams: \[") as info:
        get_method(name, beta_mni=0.1)
    listed = ast.literal_eval(str(info.value).split("Accepted hparams: ", 1)[1])
    assert listed == accepted  # the constructor's keywords, in order, without ``self``
    assert isinstance(info.value.__cause__, TypeError)
