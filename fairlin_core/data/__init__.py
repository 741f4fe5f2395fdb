"""Datasets: a registry of loaders (embedded and local files) with the seeded imbalance protocol.

``load_dataset(name, ...)`` returns a :class:`DatasetBundle` of :class:`Split` s (train, val,
test, and balanced where the protocol subsamples); ``list_datasets()`` says which are available
under the data root (:func:`resolve_data_root`); ``DATASETS`` describes each loader.
"""

from fairlin_core.data.bundle import DatasetBundle, DatasetOutline, Split
from fairlin_core.data.registry import (DATASETS, get_spec, list_datasets, load_dataset, load_or_outline,
                                        resolve_data_root)
from fairlin_core.data.toy2d import DEFAULT_NOISE, LABEL_NOISE_SHAPES, RATIO_SHAPES, SHAPES

__all__ = ["DATASETS", "DatasetBundle", "DatasetOutline", "Split", "get_spec", "list_datasets", "load_dataset",
           "load_or_outline", "resolve_data_root",
           "DEFAULT_NOISE", "LABEL_NOISE_SHAPES", "RATIO_SHAPES", "SHAPES"]
