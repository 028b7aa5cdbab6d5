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


def evaluate(model_or_dynamics, dataset="moons", *, solvers=None, metrics=None, out="results", kind=None, path=None,
             adapter="auto", coupling=None, source="gaussian", spec=None, name=None, seeds=None, n_samples=None,
             device=None, model_id=None, label=None, progress=False, report=True):
    """Benchmark a model trained elsewhere (a TorchCFM, flow_matching or diffusers model, your own network, or
    ready-made Dynamics) over solvers, budgets and metrics; returns its records as a pandas DataFrame.

    Records and report are written to ``<out>/<name>/`` (default ``results/eval_<label>_<dataset>``, relative
    to the current folder); the call prints that folder and the DataFrame's ``attrs["out_dir"]`` holds it. The arguments
    are those of :func:`odebench.bench.api.evaluate`, which documents each; loaded on first use."""
    import importlib

    # every layer imports this package (for __version__), so the top layer is reached by name at call time
    # only, never as a static import import-linter would count as every layer's dependency
    api = importlib.import_module("odebench.bench.api")
    return api.evaluate(model_or_dynamics, dataset, solvers=solvers, metrics=metrics, out=out, kind=kind, path=path,
                        adapter=adapter, coupling=coupling, source=source, spec=spec, name=name, seeds=seeds,
                        n_samples=n_samples, device=device, model_id=model_id, label=label, progress=progress,
                        report=report)
