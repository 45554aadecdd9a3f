#!/usr/bin/env python
"""Score a model (or a file of predictions) on a JSONL test set, next to simple baselines.

    python scripts/benchmark.py --data test.jsonl --task summarization --model runs/best \
        --output results/test.json --num-beams 4
    python scripts/benchmark.py --data test.jsonl --task translation --predictions preds.jsonl
    python scripts/benchmark.py --dataset bible-en-fr --split test --model runs/bible/final

`--data` holds one JSON object per line with a source and a target field (or CSV/TSV with a
header); `--predictions` holds one {"prediction": ...} per line, aligned with `--data`. Bad input ends the run with one line on
stderr ("benchmark.py: error: FILE:LINE: what is wrong") and exit status 2.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from genbert.recipes import benchmark  # noqa: E402

if __name__ == "__main__":
    sys.exit(benchmark.main(prog="benchmark.py", doc=__doc__))
