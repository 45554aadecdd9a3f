#!/usr/bin/env python
"""Fine-tune a genbert model for summarization / headline generation (or translation), then score it.

    python scripts/train_summarization.py            # the default recipe: MiniLM, BBC headlines
    python scripts/train_summarization.py --train train.jsonl --validation val.jsonl \
        --init minilm --scheme encoder-decoder --output-dir runs/mine
    python scripts/train_summarization.py --output-dir runs/mine --resume   # after an interruption

Training pairs: JSONL with one {"source": ..., "target": ...} object a line (other field names
with --source-field/--target-field), or CSV/TSV with a header row; or a named --dataset.
Writes OUTPUT/checkpoint-STEP/ (the newest two), OUTPUT/final/ (load it with
genbert.TextGenerator.from_pretrained), OUTPUT/log.jsonl, OUTPUT/loss.png and, unless --no-eval,
OUTPUT/metrics.json and OUTPUT/predictions.jsonl. The recipe: genbert.recipes.seq2seq.Seq2SeqRecipe.
Bad input ends the run with one line on stderr and exit status 2. Works under torchrun.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from genbert.recipes import seq2seq  # noqa: E402

if __name__ == "__main__":
    sys.exit(seq2seq.main(prog="train_summarization.py", doc=__doc__))
