import os

import pytest
from hypothesis import settings

settings.register_profile("ci", deadline=None, max_examples=25, derandomize=True)
settings.register_profile("dev", deadline=None, max_examples=60)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# the fixtures of a finished tiny project (``project``, ``work``; a module may define its own ``project``)
pytest_plugins = ["finished_sweep"]

# the fixture of the adapter and `odebench eval` tests: a factory module the command line can import
from adapter_helpers import factory_module  # noqa: E402, F401


@pytest.fixture
def count_fits(monkeypatch):
    """The names of the methods the optimisation loop really trained, in order (cache hits add nothing)."""
    import odebench.bench.harness.training.seed_stack as seed_stack
    import odebench.bench.harness.training.train as train

    calls = []
    real_fit, real_stacked = train.fit, seed_stack.fit_stacked

    def counting_fit(method, *args, **kwargs):
        calls.append(method.name)
        return real_fit(method, *args, **kwargs)

    def counting_stacked(method, models, *args, **kwargs):  # a seed stack trains each of its members
        calls.extend([method.name] * len(models))
        return real_stacked(method, models, *args, **kwargs)

    monkeypatch.setattr(train, "fit", counting_fit)
    monkeypatch.setattr(seed_stack, "fit_stacked", counting_stacked)
    return calls
