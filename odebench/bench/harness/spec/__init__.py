"""What a sweep asks for, before anything runs: a spec's TOML text read and bounded (``text``), parsed into a
validated list of cells (``sweep``) key by key (``checks``, with the types, ranges and policy bounds of
``limits`` and the training settings of ``train_config``), changed from the command line (``overrides``), written
back as TOML (``toml``), described as a JSON Schema (``schema``) and in words (``catalog``), and the built-in
specs (``builtin/``). It may import the registries below the harness (core, data, nets, methods, metrics),
``guards`` and ``process`` (the precisions a spec may name); never the store, training, execution or tracking, so
a spec is read and checked without a results folder or a model cache.
"""
