"""genbert: make a BERT encoder generate text, every known way, on one core.

The model classes are imported on first use, so that `import genbert` (and the argument parsing
of `genbert-generate --help`) does not import torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import DecoderConfig, GenBertConfig

__version__ = "0.1.0"

__all__ = ["GenBertConfig", "DecoderConfig", "GenBert", "GenBertOutput", "TextGenerator", "__version__"]

_LAZY = {"GenBert": ".model", "GenBertOutput": ".model", "TextGenerator": ".textgen"}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .model import GenBert, GenBertOutput
    from .textgen import TextGenerator


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    else:  # `import genbert; genbert.masks` keeps working as when the model was imported eagerly
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
