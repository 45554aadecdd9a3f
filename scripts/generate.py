#!/usr/bin/env python
"""Generate with a trained genbert model: python scripts/generate.py MODEL_DIR [FILE] [flags]."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from genbert.cli import generate_main  # noqa: E402

if __name__ == "__main__":
    generate_main()
