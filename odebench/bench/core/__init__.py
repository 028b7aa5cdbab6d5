"""The core every other room builds on: the registry, the field and dynamics types, solvers, time grids and
seeding. It imports nothing else of odebench."""
