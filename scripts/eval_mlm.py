#!/usr/bin/env python
"""Held-out masked-token accuracy of any model, on the split scripts/pretrain.py holds out.

    python scripts/eval_mlm.py runs/minilm-mlm/final --corpus bbc wikipedia
    python scripts/eval_mlm.py minilm --corpus bbc wikipedia --max-eval-sequences 128

With the same text, --heldout-fraction, --max-length, --mask-prob, --eval-seed,
--max-eval-sequences and --eval-batch-size as a pretraining run, the masked inputs are exactly
those of that run's OUTPUT/mlm_eval.json, so models can be compared. Bad input: one line on
stderr, exit status 2.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from genbert.recipes import pretrain  # noqa: E402

if __name__ == "__main__":
    sys.exit(pretrain.eval_main(prog="eval_mlm.py", doc=__doc__))
