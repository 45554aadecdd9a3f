"""Progress of a long phase (MLM warm-up, training, generating), readable wherever it is shown.

On a terminal it is a tqdm bar; anywhere else (a log file, ``nohup``, CI) tqdm would write one
endless line of carriage returns, so a plain line is printed every ``every_s`` seconds instead:

    training: step 120/1000 (12%), loss 3.214, 1480 tokens/s, 2m10s elapsed, this phase ~15m50s left, whole job ~18m left

``later_s(tokens_per_s)`` estimates the seconds of the work still to come after this phase (the
training after a warm-up, the evaluation after training) from this phase's throughput, so the
display tells the remaining time of the whole job, not only of the phase.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable, Optional, TextIO


def format_duration(seconds: float) -> str:
    """3725 -> '1h02m', 130 -> '2m10s', 9 -> '9s'."""
    s = int(round(max(seconds, 0.0)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class Progress:
    """``update(n, tokens, loss=...)`` after each unit of work, ``close()`` at the end."""

    def __init__(self, label: str, total: int, initial: int = 0, unit: str = "step",
                 later_s: Optional[Callable[[float], float]] = None, every_s: float = 30.0,
                 stream: Optional[TextIO] = None, terminal: Optional[bool] = None) -> None:
        self.label, self.total, self.done, self.unit = label, total, initial, unit
        self.later_s, self.every_s = later_s, every_s
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.start = time.perf_counter()
        self.first = initial
        self.tokens = 0
        self.last_line = self.start
        self.bar = None
        if self.terminal:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, initial=initial, desc=label, unit=unit, dynamic_ncols=True,
                            mininterval=1.0, file=self.stream)

    def _left(self) -> tuple[Optional[float], Optional[float]]:
        """(seconds left in this phase, seconds left in the whole job) from the rate so far."""
        elapsed = time.perf_counter() - self.start
        done = self.done - self.first
        if done <= 0 or elapsed <= 0:
            return None, None
        phase = (self.total - self.done) * elapsed / done
        if self.later_s is None:
            return phase, None
        rate = self.tokens / elapsed if self.tokens else 0.0
        return phase, phase + self.later_s(rate)

    def update(self, n: int = 1, tokens: int = 0, **postfix: Any) -> None:
        self.done += n
        self.tokens += tokens
        now = time.perf_counter()
        phase, job = self._left()
        if self.bar is not None:
            self.bar.update(n)
            extra = {k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in postfix.items()}
            if job is not None:
                extra["job_left"] = format_duration(job)
            self.bar.set_postfix(extra, refresh=False)
        elif now - self.last_line >= self.every_s or self.done == self.total:
            self.last_line = now
            parts = [f"{self.label}: {self.unit} {self.done}/{self.total} ({100 * self.done / max(self.total, 1):.0f}%)"]
            parts += [f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in postfix.items()]
            elapsed = now - self.start
            if self.tokens:
                parts.append(f"{self.tokens / max(elapsed, 1e-9):.0f} tokens/s")
            parts.append(f"{format_duration(elapsed)} elapsed")
            if phase is not None and self.done < self.total:
                parts.append(f"this phase ~{format_duration(phase)} left")
            if job is not None:
                parts.append(f"whole job ~{format_duration(job)} left")
            print(", ".join(parts), file=self.stream, flush=True)

    def write(self, message: str) -> None:
        """A line that does not break the bar."""
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
