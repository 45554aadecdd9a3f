#!/usr/bin/env python
"""Pretrain, or continue pretraining, a genbert model on plain text, with held-out masked-token
accuracy before and after.

    python scripts/pretrain.py --init minilm --corpus bbc wikipedia --objective mlm \
        --max-steps 300 --output-dir runs/minilm-mlm
    python scripts/pretrain.py --init scratch --text notes.txt more.jsonl --objective unilm
    python scripts/pretrain.py --output-dir runs/minilm-mlm --resume   # after an interruption

Text: --text FILE ... (JSONL with a "text" field, else one document per blank-line-separated
block) and/or --corpus bbc|wikipedia (offline corpora). Documents are de-duplicated, about 5%
are held out by a hash of their text, and the rest is cut into sequences of --max-length
tokens. Objectives: mlm, mlm+nsp, unilm (encoder) and infilling (BART-style, encoder-decoder:
an encoder checkpoint gets a decoder by --decoder-init).

Writes OUTPUT/checkpoint-STEP/ (the newest two), OUTPUT/final/ (model + tokenizer: load it with
GenBert.from_pretrained, or pass it as --init to scripts/train_summarization.py), OUTPUT/mlm_eval.json
(held-out metrics before / after), OUTPUT/log.jsonl, OUTPUT/loss.png and, for unilm,
OUTPUT/scheme_loss.jsonl. The recipe: genbert.recipes.pretrain.PretrainRecipe. Bad input ends the run
with one line on stderr and exit status 2. Works under torchrun.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from genbert.recipes import pretrain  # noqa: E402

if __name__ == "__main__":
    sys.exit(pretrain.main(prog="pretrain.py", doc=__doc__))
