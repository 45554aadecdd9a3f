"""Data loading for genbert: pair files, named datasets and pretraining documents."""
from .datasets import (
    NAMED_DATASETS,
    SPLITS,
    DataError,
    bbc_documents,
    load_named,
    read_documents,
    read_pairs,
    wikipedia_documents,
)

__all__ = [
    "NAMED_DATASETS",
    "SPLITS",
    "DataError",
    "bbc_documents",
    "load_named",
    "read_documents",
    "read_pairs",
    "wikipedia_documents",
]
