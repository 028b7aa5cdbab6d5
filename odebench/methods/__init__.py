"""Method families behind one interface (``odebench.methods.base.Method``).

The built-in families are the modules of this package; the registry imports them the first time it is asked
for a name, so a new module with a ``@register_method`` class is found without an edit here. Third-party
methods join through the ``odebench.methods`` entry-point group.
"""

from odebench.methods.base import METHODS, Dynamics, GaussianPrior, Method, Prior, get_method, register_method

__all__ = ["METHODS", "Dynamics", "GaussianPrior", "Method", "Prior", "get_method", "register_method"]
