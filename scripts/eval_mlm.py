#!/usr/bin/env python
"""Held-out masked-token accuracy of any model, on the split scripts/pretrain.py holds out.

    python scripts/eval_mlm.py runs/minilm-mlm/final --corpus bbc wikipedia
    python scripts/eval_mlm.py minilm --corpus bbc wikipedia --max-eval-sequences 128

With the same text, --heldout-fraction, --max-length, --mask-prob, --eval-seed,
--max-eval-sequences and --eval-batch-size as a pretraining run, the masked inputs are exactly
those of that run's OUTPUT/mlm_eval.json, so models can be compared. Bad input: one line on
stderr, exit status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import NoReturn, Optional

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

PROG = "eval_mlm.py"
EXIT_USAGE = 2

from genbert.cli_args import OneLineParser  # noqa: E402
from genbert.pretraining import CORPORA, DEFAULT_RECIPE  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    R = DEFAULT_RECIPE
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("model", help="genbert or transformers BERT directory (with its tokenizer), or 'minilm'")
    p.add_argument("--text", nargs="+", action="extend", metavar="FILE", help="as scripts/pretrain.py --text")
    p.add_argument("--corpus", nargs="+", action="extend", choices=CORPORA)
    p.add_argument("--text-field", default=R["text_field"])
    p.add_argument("--limit-documents", type=int)
    p.add_argument("--heldout-fraction", type=float, default=R["heldout_fraction"])
    p.add_argument("--max-length", type=int, default=R["max_length"])
    p.add_argument("--mask-prob", type=float, default=R["mask_prob"])
    p.add_argument("--eval-seed", type=int, default=R["eval_seed"])
    p.add_argument("--max-eval-sequences", type=int, default=R["max_eval_sequences"])
    p.add_argument("--eval-batch-size", type=int, default=R["eval_batch_size"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    return p


def fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)


def run(a: argparse.Namespace) -> int:
    import warnings

    from genbert import GenBert
    from genbert import pretraining as P
    from genbert.tokenization import Tokenizer

    if not a.text and not a.corpus:
        raise P.UsageError("no text: pass --text FILE [FILE ...] and/or --corpus " + "|".join(CORPORA))
    if a.heldout_fraction <= 0:
        raise P.UsageError("--heldout-fraction must be > 0")
    path = a.model
    if path == "minilm":
        from genbert.hub import minilm_path
        try:
            path = minilm_path()
        except FileNotFoundError as e:
            raise P.UsageError(f"minilm: {e}") from None
    path = Path(path)
    if not (path / "config.json").is_file():
        raise P.UsageError(f"{path}: not a model directory (no config.json)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "newly initialised: lm_head": that is what is measured
            model = GenBert.from_pretrained(path)
        tokenizer = Tokenizer.from_dir(path)
    except (ValueError, FileNotFoundError, ImportError) as e:
        raise P.UsageError(f"{path}: {e}") from None
    if a.max_length > model.config.max_position_embeddings:
        raise P.UsageError(f"--max-length {a.max_length}: the model has {model.config.max_position_embeddings} positions")
    docs = P.load_documents(a.text or (), a.corpus or (), a.text_field, a.limit_documents)
    split = P.split_heldout(docs.texts, a.heldout_fraction)
    sets = P.make_eval_sets("mlm", tokenizer, split.heldout, a.max_length, a.mask_prob, a.eval_seed,
                            a.max_eval_sequences, a.eval_batch_size)
    model.to(a.device)
    m = P.evaluate(model, sets)
    result = {**m, "model": str(path), "heldout": {**sets.info, "fingerprint": split.fingerprint},
              "eval_seed": a.eval_seed, "max_length": a.max_length}
    if a.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"{path}: held-out masked-token accuracy {100 * m['masked_token_accuracy']:.2f}%, "
              f"loss {m['masked_token_loss']:.4f} ({m['masked_tokens']} masked tokens in {sets.info['sequences']} "
              f"sequences of {sets.info['documents']} documents)")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from genbert.data.datasets import DataError
    from genbert.summarization import UsageError
    try:
        return run(args)
    except (UsageError, DataError) as e:
        fail(str(e))


if __name__ == "__main__":
    sys.exit(main())
