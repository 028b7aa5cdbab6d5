"""``get_method`` with an hparam the method does not take raises ValueError naming the method, the offending
argument and the hparams it does accept (the constructor's keyword arguments, ``self`` not among them)."""

import inspect
import re

import pytest

from odebench.methods.base import METHODS, get_method


@pytest.mark.parametrize("name", ["fm_ot", "rf"])
def test_unknown_hparam_is_refused_with_the_accepted_ones(name):
    accepted = list(inspect.signature(METHODS.get(name)).parameters)  # a class's signature leaves out self
    with pytest.raises(ValueError) as err:
        get_method(name, bogus=1)
    msg = str(err.value)
    assert msg.startswith(f"method {name!r}: ") and "'bogus'" in msg
    listed = re.search(r"Accepted hparams: \[(.*)\]$", msg).group(1)
    assert [p.strip("'") for p in listed.split(", ")] == accepted and "self" not in accepted
