"""Method families behind one interface. Importing this package registers the built-in methods."""

from methods.base import METHODS, Dynamics, GaussianPrior, Method, Prior, get_method, register_method

# importing the family modules registers them
from methods import flow_matching, rectified_flow  # noqa: E402,F401  isort: skip
from methods import curvature, interpolants  # noqa: E402,F401  isort: skip

__all__ = ["METHODS", "Dynamics", "GaussianPrior", "Method", "Prior", "get_method", "register_method"]
