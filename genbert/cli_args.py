"""Command-line pieces shared by the training scripts (pretrain.py, train_summarization.py)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Mapping, NoReturn

EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (exit status 2) instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def add_scratch_size_arguments(group: Any, defaults: Mapping[str, Any]) -> None:
    """Sizes of a model built with --init scratch."""
    for flag, key in (("--hidden-size", "hidden_size"), ("--layers", "layers"), ("--heads", "heads"),
                      ("--intermediate-size", "intermediate_size"), ("--vocab-size", "vocab_size"),
                      ("--max-position-embeddings", "max_position_embeddings")):
        group.add_argument(flag, type=int, help=f"--init scratch (default {defaults[key]})")


def add_training_arguments(group: Any, defaults: Mapping[str, Any], output_dir_help: str,
                           new_param_help: str = "LR factor for newly initialised weights") -> None:
    """The optimisation, checkpoint and run-mode flags of genbert.training.Trainer. Every flag
    defaults to None, so that explicit > stored run (--resume) > the script's DEFAULT_RECIPE."""
    R = defaults
    group.add_argument("--output-dir", type=Path, help=output_dir_help)
    group.add_argument("--epochs", type=float, help=f"default {R['epochs']}")
    group.add_argument("--max-steps", type=int, help="optimizer steps; overrides --epochs")
    group.add_argument("--batch-size", type=int, help=f"global batch (default {R['batch_size']})")
    group.add_argument("--grad-accum", type=int, help=f"default {R['grad_accum']}")
    group.add_argument("--lr", type=float, help=f"default {R['lr']}")
    group.add_argument("--new-param-lr-multiplier", type=float,
                       help=f"{new_param_help} (default {R['new_param_lr_multiplier']})")
    group.add_argument("--weight-decay", type=float, help=f"default {R['weight_decay']}")
    group.add_argument("--warmup", type=float, help=f"fraction (<1) or steps (default {R['warmup']})")
    group.add_argument("--seed", type=int, help=f"default {R['seed']}")
    group.add_argument("--save-steps", type=int,
                       help=f"checkpoint every N steps, 0 = at the end (default {R['save_steps']})")
    group.add_argument("--save-total-limit", type=int, help=f"checkpoints kept (default {R['save_total_limit']})")
    group.add_argument("--log-steps", type=int, help=f"default {R['log_steps']}")
    group.add_argument("--max-grad-norm", type=float,
                       help=f"gradient clipping, 0 = off (default {R['max_grad_norm']})")
    group.add_argument("--gradient-checkpointing", action="store_true", default=None)
    group.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    group.add_argument("--no-progress", action="store_true", help="no progress bars")
    mode = group.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --output-dir")
    mode.add_argument("--overwrite", action="store_true", help="replace a previous run in --output-dir")
