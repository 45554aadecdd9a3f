"""genbert: make a BERT encoder generate text, every known way, on one core."""
from .config import DecoderConfig, GenBertConfig
from .model import GenBert, GenBertOutput
from .textgen import TextGenerator

__version__ = "0.1.0"

__all__ = ["GenBertConfig", "DecoderConfig", "GenBert", "GenBertOutput", "TextGenerator", "__version__"]
