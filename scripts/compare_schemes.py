#!/usr/bin/env python
"""Train and evaluate every way of making BERT generate, from one checkpoint, on one budget.

    python scripts/compare_schemes.py --quick            # 2 CPU cores, under an hour
    python scripts/compare_schemes.py                    # the default recipe's budget for every way
    python scripts/compare_schemes.py --ways causal,bert2bert --seeds 0 1 --max-steps 50
    python scripts/compare_schemes.py --dataset bible-en-fr --init scratch --max-target-length 80 \
        --batch-size 32 --lr 5e-4 --mlm-warmup-steps 0 --no-repeat-ngram-size 0   # translation, from scratch

Every way is a named set of overrides of the train_summarization.py recipe (whose flags set the
budget) and trains through the same path. Each (task, way, seed) result is written to
OUTPUT/comparison/ as soon as it is finished; a rerun skips the results that exist. The report,
OUTPUT/comparison.md (table, command, machine, budget), OUTPUT/comparison.png and
OUTPUT/comparison.json, is assembled from every result there, a section per task with its own
budget. The library: genbert.recipes.compare.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from genbert.recipes import compare  # noqa: E402

if __name__ == "__main__":
    sys.exit(compare.main(prog="compare_schemes.py", doc=__doc__))
