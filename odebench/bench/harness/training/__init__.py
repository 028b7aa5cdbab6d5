"""Training one model: the generic loop, the train-once model cache and a method's parent chain (``train``), and
what a model's record says about its training, its cost and whether it had converged (``evidence``). It may import
the store (trained models are cached there), the spec (the training settings), ``process`` and ``guards``; never
execution or tracking, which call it.
"""
