"""Running a sweep: the plan of trainings and cells (``plan``), the checks made on it before any work
(``data_shapes``, ``data_hparams``, ``model_size``), models given to ``odebench eval`` (``given``), the two jobs and
the driver that writes their records (``run``), and where the jobs run (``executors``, ``pool_executor``). It sits
on top of the harness: it may import training, the store, the spec, ``process`` and ``guards``, and nothing in the
harness imports it (tracking neither: the command line opens a tracker and hands it to the run).
"""
