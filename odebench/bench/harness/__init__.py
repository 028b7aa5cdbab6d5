"""The sweep harness: spec -> plan -> (cached) training -> sampling -> metrics -> one record per cell.

Its sub-packages, each importing only those after it in this list (pyproject.toml's import-linter contracts check
it): ``execution`` and ``tracking`` (neither imports the other), ``training``, ``store``, ``spec``, then the leaves
``process`` and ``guards``. Every module lives in one of them.
"""
