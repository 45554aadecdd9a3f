"""genbert: make a BERT encoder generate text, every known way, on one core."""
from __future__ import annotations

from typing import Any

from .config import DecoderConfig, GenBertConfig

__version__ = "0.1.0"

__all__ = ["GenBertConfig", "DecoderConfig", "GenBert", "GenBertOutput", "TextGenerator", "__version__"]


def __getattr__(name: str) -> Any:
    # the model and the text API import torch: only when asked for, so that `--help` stays fast
    if name in ("GenBert", "GenBertOutput"):
        from . import model
        return getattr(model, name)
    if name == "TextGenerator":
        from .textgen import TextGenerator
        return TextGenerator
    raise AttributeError(f"module 'genbert' has no attribute {name!r}")
