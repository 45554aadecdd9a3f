#!/usr/bin/env python
"""Score a model (or a file of predictions) on a JSONL test set, next to simple baselines.

    python scripts/benchmark.py --data test.jsonl --task summarization --model runs/best \
        --output results/test.json --num-beams 4
    python scripts/benchmark.py --data test.jsonl --task translation --predictions preds.jsonl
    python scripts/benchmark.py --dataset bible-en-fr --split test --model runs/bible/final

`--data` holds one JSON object per line with a source and a target field; `--predictions` holds
one {"prediction": ...} per line, aligned with `--data`. Bad input ends the run with one line on
stderr ("benchmark.py: error: FILE:LINE: what is wrong") and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn, Optional

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

PROG = "benchmark.py"
EXIT_USAGE = 2
TASKS = ("summarization", "translation")  # mirrors genbert.metrics.TASKS (imported lazily)
# Generation settings a flag can override; their stored defaults come from TextGenerator.settings.
GENERATION_FLAGS = (
    "max_source_length",
    "num_beams",
    "max_new_tokens",
    "length_penalty",
    "no_repeat_ngram_size",
)
DEFAULT_BATCH_SIZE = 16


class InputError(Exception):
    """A problem with the user's input; reported as one line on stderr, exit status 2."""


# --------------------------------------------------------------------------- JSONL reading
# Kept in this script on purpose (independent of genbert.data); could later move to the library.


def _iter_jsonl(path: Path, flag: str, limit: Optional[int]):
    """Yield (line number, object) for each non-blank line of `path`, up to `limit` records."""
    if limit is not None and limit <= 0:
        return
    count = 0
    try:
        with open(path, encoding="utf-8") as handle:
            line_number = 0
            while True:
                line_number += 1
                try:
                    line = handle.readline()
                except UnicodeDecodeError as exc:
                    raise InputError(f"{path}:{line_number}: not valid UTF-8 ({exc.reason})") from None
                if not line:
                    break
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{line_number}: malformed JSON ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise InputError(
                        f"{path}:{line_number}: expected a JSON object, got {type(record).__name__}"
                    )
                yield line_number, record
                count += 1
                if limit is not None and count >= limit:
                    break
    except OSError as exc:
        raise InputError(f"{path}: cannot read {flag} file ({exc.strerror or exc})") from None
    if count == 0:
        raise InputError(f"{path}: {flag} file has no records")


def _text_field(path: Path, line_number: int, record: dict, field: str) -> str:
    if field not in record:
        raise InputError(f"{path}:{line_number}: missing field {field!r}")
    value = record[field]
    if not isinstance(value, str):
        raise InputError(
            f"{path}:{line_number}: field {field!r} must be a string, got {type(value).__name__}"
        )
    return value


def read_jsonl_pairs(
    path: Path, source_field: str = "source", target_field: str = "target", limit: Optional[int] = None
) -> tuple[list[str], list[str]]:
    """Sources and targets from a JSONL file; raises InputError naming file:line on bad input."""
    sources, targets = [], []
    for line_number, record in _iter_jsonl(path, "--data", limit):
        sources.append(_text_field(path, line_number, record, source_field))
        targets.append(_text_field(path, line_number, record, target_field))
    return sources, targets


def read_jsonl_predictions(path: Path, expected: int, allow_more: bool = False) -> list[str]:
    """`expected` predictions from a JSONL file of {"prediction": ...} lines, aligned with --data.

    A file with more records is an error unless `allow_more` (--limit cut --data short).
    """
    predictions, last_line = [], 0
    # Read one record past `expected` so that a longer file is noticed.
    for line_number, record in _iter_jsonl(path, "--predictions", expected + 1):
        if len(predictions) == expected:
            if allow_more:
                break
            raise InputError(
                f"{path}:{line_number}: --predictions has more records than the {expected} "
                f"in --data"
            )
        predictions.append(_text_field(path, line_number, record, "prediction"))
        last_line = line_number
    if len(predictions) < expected:
        raise InputError(
            f"{path}:{last_line}: --predictions ends after {len(predictions)} records, "
            f"--data has {expected}"
        )
    return predictions


# --------------------------------------------------------------------------- output


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file in the same folder and os.replace."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def write_output(path: Path, text: str, flag: str) -> None:
    """`write_atomically`, with failures reported as InputError naming `flag`."""
    try:
        write_atomically(path, text)
    except OSError as exc:
        raise InputError(f"{path}: cannot write {flag} file ({exc.strerror or exc})") from None


def predictions_path_for(output: Path) -> Path:
    """`results/test.json` -> `results/test.predictions.jsonl`."""
    return output.with_name(f"{output.stem}.predictions.jsonl")


def format_table(scores: dict[str, Any], baselines: dict[str, dict[str, Any]], label: str) -> str:
    """An aligned text table: one row per numeric metric, one column for `label` and each baseline."""
    columns = [(label, scores)] + list(baselines.items())
    metrics = [k for k, v in scores.items() if isinstance(v, (int, float))]
    header = ["metric"] + [name for name, _ in columns]
    rows = [[m] + [f"{col.get(m, float('nan')):.2f}" for _, col in columns] for m in metrics]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = []
    for row in [header] + rows:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells))
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of usage + error
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", type=Path, help="JSONL test set")
    data.add_argument("--dataset", help="a named dataset of genbert.data.datasets (e.g. bible-en-fr), with --split")
    p.add_argument("--split", default="test", help="split of --dataset (default test)")
    p.add_argument("--task", choices=TASKS, help="required with --data; default for --dataset: its task")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="directory for genbert.TextGenerator")
    source.add_argument("--predictions", type=Path, help='JSONL of {"prediction": ...} lines')
    p.add_argument("--output", type=Path, help="write the results JSON here")
    p.add_argument("--source-field", default="source")
    p.add_argument("--target-field", default="target")
    p.add_argument("--limit", type=int, help="use only the first N records")
    g = p.add_argument_group("generation (with --model; default: the model's stored settings)")
    g.add_argument("--num-beams", type=int)
    g.add_argument("--max-new-tokens", type=int)
    g.add_argument("--length-penalty", type=float)
    g.add_argument("--no-repeat-ngram-size", type=int)
    g.add_argument("--max-source-length", type=int)
    g.add_argument("--batch-size", type=int, help=f"default {DEFAULT_BATCH_SIZE}")
    return p


def check_args(args: argparse.Namespace) -> None:
    for flag in ("limit", "num_beams", "max_new_tokens", "batch_size", "max_source_length"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise InputError(f"--{flag.replace('_', '-')} must be >= 1, got {value}")
    if args.no_repeat_ngram_size is not None and args.no_repeat_ngram_size < 0:
        raise InputError(f"--no-repeat-ngram-size must be >= 0, got {args.no_repeat_ngram_size}")
    if args.model is not None and not args.model.is_dir():
        raise InputError(f"{args.model}: --model is not a directory")
    if args.output is not None and not args.output.parent.is_dir():
        raise InputError(f"{args.output}: --output folder {args.output.parent} does not exist")


def generate(args: argparse.Namespace, sources: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Predictions from `--model`, and the generation settings actually used."""
    try:
        from genbert import TextGenerator  # lazy: predictions mode works without it
    except ImportError as exc:
        raise InputError(f"--model needs genbert.TextGenerator, which cannot be imported ({exc})") from None
    try:
        generator = TextGenerator.from_pretrained(str(args.model))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{args.model}: cannot load --model ({exc})") from None
    stored = dict(getattr(generator, "settings", {}) or {})
    used = {k: stored[k] for k in GENERATION_FLAGS if stored.get(k) is not None}
    used.update({k: getattr(args, k) for k in GENERATION_FLAGS if getattr(args, k) is not None})
    used["batch_size"] = args.batch_size or stored.get("batch_size") or DEFAULT_BATCH_SIZE
    predictions = list(generator.generate(sources, **used))
    if len(predictions) != len(sources):
        raise RuntimeError(f"model returned {len(predictions)} predictions for {len(sources)} sources")
    return predictions, used


def named_pairs(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Sources and targets of `--dataset`'s `--split`; sets args.task from the dataset if unset."""
    from genbert.data.datasets import DataError, dataset_task, load_named
    try:
        records = load_named(args.dataset, args.split)
    except (ValueError, ModuleNotFoundError, DataError) as exc:
        raise InputError(f"--dataset {args.dataset}: {exc}") from None
    args.task = args.task or dataset_task(args.dataset)
    records = records[:args.limit] if args.limit is not None else records
    return [r["source"] for r in records], [r["target"] for r in records]


def run(args: argparse.Namespace) -> dict[str, Any]:
    check_args(args)
    if args.dataset is not None:
        sources, targets = named_pairs(args)
    else:
        if args.task is None:
            raise InputError("--task is required with --data")
        sources, targets = read_jsonl_pairs(args.data, args.source_field, args.target_field, args.limit)
    settings: dict[str, Any] = {
        "task": args.task,
        "data": str(args.data) if args.dataset is None else f"{args.dataset}:{args.split}",
        "num_examples": len(sources),
        "limit": args.limit,
        "source_field": args.source_field,
        "target_field": args.target_field,
    }
    if args.predictions is not None:
        cut_short = args.limit is not None and len(sources) == args.limit
        predictions = read_jsonl_predictions(args.predictions, len(sources), allow_more=cut_short)
        settings["predictions"] = str(args.predictions)
    else:
        predictions, generation = generate(args, sources)
        settings["model"] = str(args.model)
        settings["generation"] = generation
        if args.output is not None:
            lines = "".join(json.dumps({"prediction": p}, ensure_ascii=False) + "\n" for p in predictions)
            saved = predictions_path_for(args.output)
            write_output(saved, lines, "predictions")
            settings["predictions"] = str(saved)

    from genbert import metrics  # after input checks, so bad input fails fast

    return {
        "scores": metrics.score(args.task, predictions, targets),
        "baselines": metrics.baselines(args.task, sources, targets),
        "settings": settings,
    }


def fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        results = run(args)
        if args.output is not None:
            text = json.dumps(results, indent=2, ensure_ascii=False) + "\n"
            write_output(args.output, text, "--output")
    except InputError as exc:
        fail(str(exc))
    label = "model" if args.model is not None else "predictions"
    print(format_table(results["scores"], results["baselines"], label))
    if "signature" in results["scores"]:
        print(f"BLEU signature: {results['scores']['signature']}")
        print(f"chrF signature: {results['scores']['chrf_signature']}")
    if args.output is not None:
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
