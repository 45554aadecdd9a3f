#!/usr/bin/env python
"""Train and evaluate every way of making BERT generate, from one checkpoint, with one budget.

    python scripts/compare_schemes.py --quick            # 2 CPU cores, under an hour
    python scripts/compare_schemes.py                    # the full setting (meant for a GPU)
    python scripts/compare_schemes.py --quick --ways causal,bert2bert --steps 50

Writes OUTPUT/comparison.md (table, command, machine, budget), OUTPUT/comparison.png (ROUGE-L
per way beside the lead-10 baseline) and OUTPUT/comparison.json; the models are trained in
--work-dir/WAY (predictions.jsonl and metrics.json kept there). The library is
genbert.comparison.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import NoReturn, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROG = "compare_schemes.py"
EXIT_USAGE = 2


def fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        fail(message)


def build_parser() -> argparse.ArgumentParser:
    from genbert.comparison import FULL, QUICK, WAY_NAMES
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--init", default="minilm", help="transformers BERT / genbert directory or 'minilm' (default)")
    p.add_argument("--dataset", help="named dataset (default bbc-headlines)")
    p.add_argument("--train", type=Path, help="training pairs file (JSONL/CSV/TSV); needs --validation")
    p.add_argument("--validation", type=Path, help="validation pairs file")
    p.add_argument("--source-field", default="source")
    p.add_argument("--target-field", default="target")
    p.add_argument("--limit-train", type=int, help="use the first N training pairs")
    p.add_argument("--ways", help=f"comma-separated subset of: {','.join(WAY_NAMES)} (default all)")
    p.add_argument("--quick", action="store_true",
                   help="2 CPU cores, under an hour: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    p.add_argument("--steps", type=int, help=f"optimizer steps per way (full {FULL['steps']})")
    p.add_argument("--batch-size", type=int, help=f"full {FULL['batch_size']}")
    p.add_argument("--lr", type=float, help="peak learning rate (default 2e-4)")
    p.add_argument("--max-source-length", type=int, help=f"full {FULL['max_source_length']}")
    p.add_argument("--max-target-length", type=int, help=f"full {FULL['max_target_length']}")
    p.add_argument("--limit-eval", type=int, help="score the first N validation pairs (full: all)")
    p.add_argument("--mlm-warmup-steps", type=int,
                   help=f"MLM steps before prefix/causal training, 0 = off (full {FULL['mlm_warmup_steps']})")
    p.add_argument("--num-beams", type=int, help="default 4")
    p.add_argument("--eval-batch-size", type=int, help="default 32")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--output-dir", type=Path, default=Path("docs"), help="default docs")
    p.add_argument("--work-dir", type=Path, default=Path("runs/compare"), help="default runs/compare")
    p.add_argument("--device", help="cpu, cuda (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


BUDGET_FLAGS = ("steps", "batch_size", "lr", "max_source_length", "max_target_length", "limit_eval",
                "mlm_warmup_steps", "num_beams", "eval_batch_size", "seed")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    import torch
    from genbert import comparison as C
    from genbert import summarization as S

    if args.device and args.device.startswith("cuda") and not torch.cuda.is_available():
        raise S.UsageError(f"--device {args.device}: CUDA is not available on this machine")
    ways = C.parse_ways(args.ways)
    values = dict(C.QUICK if args.quick else C.FULL)
    values.update({k: getattr(args, k) for k in BUDGET_FLAGS if getattr(args, k) is not None})
    budget = C.Budget(**values)
    budget.check()
    if args.limit_train is not None and args.limit_train < 1:
        raise S.UsageError(f"--limit-train={args.limit_train}: must be >= 1")
    if args.train is not None and args.dataset is not None:
        raise S.UsageError("--dataset and --train are alternatives: pass one")
    data = S.load_data(args.dataset, str(args.train) if args.train else None,
                       str(args.validation) if args.validation else None, args.source_field, args.target_field,
                       args.limit_train, budget.limit_eval)
    print(f"data: {data.name}: {len(data.train)} training pairs, {len(data.validation)} validation pairs; "
          f"ways: {', '.join(w.name for w in ways)}", flush=True)
    result = C.run_comparison(args.init, data, budget, ways, args.work_dir, args.device, not args.no_progress,
                              log=lambda m: print(m, flush=True))
    command = "python scripts/compare_schemes.py" + (" " + shlex.join(argv) if argv else "")
    paths = C.write_report(result, args.output_dir, command)
    print("")
    print(C.format_markdown(result, command).split("\n\n")[2])  # the table
    print(f"\nwrote {paths['markdown']}, {paths['png']} and {paths['json']}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    from genbert.data.datasets import DataError
    from genbert.summarization import UsageError
    try:
        return run(args, argv)
    except (UsageError, DataError) as e:
        fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
