"""Data loading for genbert: pair files, named datasets, `datasets` sources and pretraining documents."""
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
from .sources import PairSplit, iter_documents, load_split, pair_split

__all__ = [
    "NAMED_DATASETS",
    "PairSplit",
    "SPLITS",
    "DataError",
    "bbc_documents",
    "iter_documents",
    "load_named",
    "load_split",
    "pair_split",
    "read_documents",
    "read_pairs",
    "wikipedia_documents",
]
