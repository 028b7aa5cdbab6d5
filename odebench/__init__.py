"""odebench: a benchmark and evaluation suite for ODE/SDE generative models.

The package has three parts, layered so that each imports only from those below it:

- ``odebench.bench``: the suite itself, in rooms: ``core`` (registry, fields and dynamics, solvers, time grids,
  seeding), ``data``, ``nets``, ``harness`` (specs, plan, training, runs, records), ``report`` and ``cli``;
- ``odebench.methods``: one module per method family behind ``odebench.methods.Method``;
- ``odebench.metrics``: metric functions and their registry.

Time runs over [0, 1]: t = 0 is the source (noise, or another dataset), t = 1 is the data.
"""

__version__ = "0.1.0"
