"""The suite in rooms, each importing only from the rooms below it (checked by import-linter in CI):

    core      registry, fields / Dynamics / SolveResult, solvers (ode, adaptive, sde), time grids, seeding
    data      toy 2-D sets, 8x8 digits, image folders (CIFAR-10, PNG/JPEG)
    nets      time embedding, MLP, U-Net
    harness   spec and its checks, plan, training, run, executors, runtime / distributed, records, artifacts
    report    tables (md / csv / tex / html), figures, model figures, the closing summary
    cli       the ``odebench`` command

``odebench.methods`` and ``odebench.metrics`` sit beside data and nets: they import core only.
"""
