"""Datasets: toy 2-D sets, 8x8 digits and image folders, all behind one ``Dataset`` type and registry."""

from odebench.bench.data.base import DATASETS, GAUSSIAN_SOURCE, Dataset, dataset_kind, declare_kind, load_dataset

__all__ = ["DATASETS", "GAUSSIAN_SOURCE", "Dataset", "dataset_kind", "declare_kind", "load_dataset"]
