"""odebench harness: specs, data, nets, solvers, training, evaluation, records and reports."""

__version__ = "0.1.0"
