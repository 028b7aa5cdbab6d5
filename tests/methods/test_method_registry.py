"""How method classes get their names: ``register_method`` names and registers a class; a registry entry
(an entry point) that points at a class names it only if the class does not name itself."""

from __future__ import annotations

import pytest

from odebench.methods.base import METHODS, MethodRegistry, register_method
from odebench.methods.flow_matching import FlowMatchingOT


def test_a_class_that_names_itself_keeps_its_name_under_an_alias():
    class Named(FlowMatchingOT):
        name = "own_name"

    reg = MethodRegistry("method")
    reg.add("alias", Named)
    assert Named.name == "own_name" and FlowMatchingOT.name == "fm_ot"
    assert reg.get("alias") is Named and reg.names() == ["alias"]


def test_an_inheriting_class_is_registered_under_its_given_name():
    class Plain(FlowMatchingOT):  # inherits "fm_ot" but is another method
        pass

    reg = MethodRegistry("method")
    reg.add("plain_ot", Plain)
    assert reg.get("plain_ot") is Plain and Plain.name == "plain_ot"


@pytest.fixture
def scratch_methods(monkeypatch):
    """The method registry with its entries loaded, restored after the test."""
    METHODS.names()  # load the built-ins first, so they are not loaded into the scratch copy only
    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))
    return METHODS


def test_register_method_names_and_registers_the_class(scratch_methods):
    class Decorated(FlowMatchingOT):
        pass

    assert register_method("decorated_probe")(Decorated) is Decorated
    assert Decorated.name == "decorated_probe" and FlowMatchingOT.name == "fm_ot"
    assert scratch_methods.get("decorated_probe") is Decorated
    assert Decorated().config()["name"] == "decorated_probe"
