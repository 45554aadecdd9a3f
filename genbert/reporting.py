"""Training logs for standard trackers (``--report-to``): the Trainer's log records (the lines of
log.jsonl) as TensorBoard scalars. log.jsonl and loss.png are written whatever is chosen.

    writer = report_logger("tensorboard", "runs/x/tensorboard")
    trainer = Trainer(..., on_log=writer)       # train/loss, train/lr, train/grad_norm, train/tokens_per_s, eval/*
    writer.log_scores(step, {"rougeL": 25.8})   # final scores
    writer.close()
"""
from __future__ import annotations

import importlib.util
import math
import os
from typing import Any, Mapping, Optional

REPORT_TO = ("none", "tensorboard")
TENSORBOARD_DIR = "tensorboard"  # OUTPUT/tensorboard: `tensorboard --logdir OUTPUT/tensorboard`
_TRAIN_KEYS = ("loss", "lr", "grad_norm", "tokens_per_s", "step_time_s")


def missing_package(report_to: str) -> Optional[str]:
    """Why ``report_to`` cannot be used here (None when it can), without importing anything."""
    if report_to == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        return "needs the tensorboard package: pip install tensorboard (or genbert[tensorboard])"
    return None


def _number(v: Any) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


class TensorBoardLogger:
    """Writes Trainer log records as scalars under ``prefix`` (``train/...``, ``eval/...``).
    ``purge_step``: a resumed run's first step; TensorBoard drops what an interrupted run logged
    from there on."""

    def __init__(self, log_dir: str | os.PathLike, prefix: str = "", purge_step: Optional[int] = None) -> None:
        from torch.utils.tensorboard import SummaryWriter
        self.prefix = prefix
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def __call__(self, record: Mapping[str, Any]) -> None:
        step = int(record.get("step", 0))
        for key in _TRAIN_KEYS:
            v = _number(record.get(key))
            if v is not None:
                self.writer.add_scalar(f"{self.prefix}train/{key}", v, step)
        if isinstance(record.get("eval"), Mapping):
            self.log_scores(step, record["eval"])
        self.writer.flush()

    def log_scores(self, step: int, scores: Mapping[str, Any], group: str = "eval") -> None:
        """The numeric entries of ``scores`` as ``{prefix}{group}/{name}`` at ``step``."""
        for name, value in scores.items():
            v = _number(value)
            if v is not None:
                self.writer.add_scalar(f"{self.prefix}{group}/{name}", v, step)
        self.writer.flush()

    def child(self, prefix: str) -> "TensorBoardLogger":
        """The same event file under a further prefix (e.g. the MLM warm-up's own steps)."""
        other = object.__new__(TensorBoardLogger)
        other.prefix, other.writer = self.prefix + prefix, self.writer
        return other

    def close(self) -> None:
        self.writer.close()


def report_logger(report_to: str, log_dir: str | os.PathLike, purge_step: Optional[int] = None,
                  ) -> Optional[TensorBoardLogger]:
    """The logger of ``--report-to`` (None for ``none``)."""
    if report_to == "none":
        return None
    if report_to == "tensorboard":
        return TensorBoardLogger(log_dir, purge_step=purge_step)
    raise ValueError(f"report_to must be one of {', '.join(REPORT_TO)}, got {report_to!r}")
