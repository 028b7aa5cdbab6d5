import os

from hypothesis import settings

settings.register_profile("ci", deadline=None, max_examples=25, derandomize=True)
settings.register_profile("dev", deadline=None, max_examples=60)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# the fixture of the adapter and `odebench eval` tests: a factory module the command line can import
from adapter_helpers import factory_module  # noqa: E402, F401
