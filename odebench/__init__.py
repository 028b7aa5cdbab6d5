"""odebench: a benchmark and evaluation suite for ODE/SDE generative models.

The package has four parts, layered so that each imports only from those below it:

- ``odebench.bench``: the suite itself, in rooms: ``core`` (registry, fields and dynamics, solvers, time grids,
  seeding), ``data``, ``nets``, ``harness`` (specs, plan, training, runs, records), ``report``, ``api``
  (:func:`evaluate`) and ``cli``;
- ``odebench.methods``: one module per method family behind ``odebench.methods.Method``;
- ``odebench.metrics``: metric functions and their registry;
- ``odebench.adapters``: networks trained with other libraries (TorchCFM, flow_matching, diffusers) as methods.

Time runs over [0, 1]: t = 0 is the source (noise, or another dataset), t = 1 is the data.
"""

__version__ = "0.1.0"


def evaluate(model_or_dynamics, dataset="moons", **options):
    """Benchmark a model trained elsewhere (a TorchCFM, flow_matching or diffusers model, your own network, or
    ready-made Dynamics) over solvers, budgets and metrics; returns its records as a pandas DataFrame. Loaded on
    first use; the options are those of :func:`odebench.bench.api.evaluate`."""
    import importlib

    # every layer imports this package (for __version__), so the top layer is reached by name at call time
    # only, never as a static import import-linter would count as every layer's dependency
    api = importlib.import_module("odebench.bench.api")
    return api.evaluate(model_or_dynamics, dataset, **options)
