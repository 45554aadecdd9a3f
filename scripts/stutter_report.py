#!/usr/bin/env python
"""How often a trained model repeats a content word ("suicide bomb bomb blasts"), with and
without word-level repeat blocking, on the first N pairs of a named dataset split:

    python scripts/stutter_report.py runs/bbc-headlines/final --dataset bbc-headlines \
        --split validation --limit 200 --output runs/bbc-headlines/stutter.json

Runs the stored generation settings with the word options off, with no_repeat_content_words,
with no_repeat_word_ngram_size (--word-ngram-size, default 2) and with both; prints ROUGE, the
share of outputs with a repeated content word, words per output, the share of outputs each
option changed, and a few changed outputs.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from genbert.recipes import stutter  # noqa: E402

if __name__ == "__main__":
    sys.exit(stutter.main(prog="stutter_report.py", doc=__doc__))
