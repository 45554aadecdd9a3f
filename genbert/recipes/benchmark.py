"""Scoring a model, or a file of predictions, on a test set next to simple baselines: the recipe
behind ``scripts/benchmark.py``. Writes ``{"scores", "baselines", "settings"}`` (the layout of a
training run's metrics.json)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from ..config import TASKS
from ..data.datasets import DataError, NAMED_DATASETS
from . import common as C
from .common import UsageError

PROG = "benchmark.py"
# generation settings a flag can override; their stored defaults come from TextGenerator.settings
GENERATION_FLAGS = C.GENERATION_FLAGS
DEFAULT_BATCH_SIZE = 16


def build_parser(prog: str = PROG, doc: str = "") -> Any:
    p = C.new_parser(prog, doc)
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", type=Path, help='test pairs: JSONL ({"source": ..., "target": ...} a line), JSON, '
                                                "CSV, TSV, parquet or arrow")
    data.add_argument("--dataset", help=f"a built-in dataset ({', '.join(NAMED_DATASETS)}), a `datasets` hub name "
                                        "NAME[:CONFIG], or a directory written by save_to_disk; with --split")
    p.add_argument("--split", default="test", help="split of --dataset (default test)")
    p.add_argument("--task", choices=TASKS, help="required with --data; default for --dataset: its task "
                                                 "(summarization unless built in)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a model directory (genbert.TextGenerator) or a Hugging Face model id")
    source.add_argument("--predictions", type=Path, help='JSONL of {"prediction": ...} lines, aligned with the data')
    p.add_argument("--output", type=Path, help="write the results JSON here (and, with --model, the predictions "
                                               "beside it)")
    p.add_argument("--source-field", default="source", help="field / column of the source (default source)")
    p.add_argument("--target-field", default="target", help="field / column of the reference (default target)")
    p.add_argument("--limit", type=int, help="use only the first N records")
    g = p.add_argument_group("generation (with --model; default: the model's stored settings)")
    C.add_generation_arguments(g)
    g.add_argument("--batch-size", type=int, help=f"default {DEFAULT_BATCH_SIZE}")
    g.add_argument("--dtype", choices=("float32", "int8"), default="float32",
                   help="weights to decode with: float32 (default) or int8 (on CPU; GenBert.quantize)")
    return p


def check_args(args: Any) -> None:
    for name in ("limit", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"{C.flag_name(name)}={value}: must be >= 1")
    C.check_generation_arguments(args)
    if args.model is not None:
        from ..hub import resolve_model_dir
        try:
            args.model_dir = resolve_model_dir(args.model)
        except FileNotFoundError as e:
            raise UsageError(f"--model {e}") from None
    if args.output is not None and not args.output.parent.is_dir():
        raise UsageError(f"--output {args.output}: folder {args.output.parent} does not exist")
    if args.data is not None and args.task is None:
        raise UsageError("--task is required with --data")


def read_data(args: Any) -> tuple[list[str], list[str]]:
    """Sources and references of --data or of --dataset's --split (the first --limit of them)."""
    from ..data.datasets import dataset_task, read_pairs
    from ..data.sources import VALIDATED_PAIR_FILES, pair_split
    if args.dataset is not None:
        # a pair with an empty side is skipped (predictions align with the pairs that remain)
        records = list(pair_split(args.dataset, args.split, args.source_field, args.target_field, split_flag="--split",
                                  limit=args.limit))
        args.task = args.task or dataset_task(args.dataset)
    elif args.data.suffix.lower() in VALIDATED_PAIR_FILES:
        try:
            records, _ = read_pairs(args.data, args.source_field, args.target_field, skip_empty=False)
        except DataError as exc:
            raise UsageError(f"--data {exc}") from None
    else:
        records = list(pair_split(str(args.data), "train", args.source_field, args.target_field, flag="--data",
                                  skip_empty=False))
    records = records[:args.limit] if args.limit is not None else records
    return [r["source"] for r in records], [r["target"] for r in records]


def read_predictions(path: Path, expected: int, allow_more: bool = False) -> list[str]:
    """``expected`` predictions from a JSONL file of {"prediction": ...} lines, aligned with the data;
    a longer file is an error unless ``allow_more`` (--limit cut the data short)."""
    from ..data.datasets import read_json_field
    try:
        rows = read_json_field(path, "prediction", limit=expected + 1)
    except DataError as exc:
        raise UsageError(f"--predictions {exc}") from None
    if len(rows) > expected and not allow_more:
        raise UsageError(f"--predictions {path}:{rows[expected][0]}: more records than the {expected} in the data")
    if len(rows) < expected:
        raise UsageError(f"--predictions {path}:{rows[-1][0]}: ends after {len(rows)} records, the data has "
                         f"{expected}")
    return [v for _, v in rows[:expected]]


def generate(args: Any, sources: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Predictions from --model, and the generation settings actually used."""
    from ..textgen import TextGenerator
    try:
        int8 = {"device": "cpu", "dtype": "int8"} if getattr(args, "dtype", None) == "int8" else {}
        generator = TextGenerator.from_pretrained(str(args.model_dir), **int8)
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"--model {args.model}: cannot load it ({exc})") from None
    stored = dict(getattr(generator, "settings", {}) or {})
    used = {k: stored[k] for k in GENERATION_FLAGS if stored.get(k) is not None}
    used.update({k: getattr(args, k) for k in GENERATION_FLAGS if getattr(args, k) is not None})
    used["batch_size"] = args.batch_size or stored.get("batch_size") or DEFAULT_BATCH_SIZE
    predictions = list(generator.generate(sources, **used))
    if len(predictions) != len(sources):
        raise RuntimeError(f"model returned {len(predictions)} predictions for {len(sources)} sources")
    return predictions, used


def run(args: Any) -> dict[str, Any]:
    """The results: {"scores", "baselines", "settings"}."""
    from ..io import write_text
    check_args(args)
    sources, targets = read_data(args)
    settings: dict[str, Any] = {
        "task": args.task, "data": str(args.data) if args.dataset is None else f"{args.dataset}:{args.split}",
        "num_examples": len(sources), "limit": args.limit, "source_field": args.source_field,
        "target_field": args.target_field,
    }
    if args.predictions is not None:
        cut_short = args.limit is not None and len(sources) == args.limit
        predictions = read_predictions(args.predictions, len(sources), allow_more=cut_short)
        settings["predictions"] = str(args.predictions)
    else:
        predictions, generation = generate(args, sources)
        settings.update(model=str(args.model), generation=generation, dtype=args.dtype)
        if args.output is not None:
            saved = args.output.with_name(f"{args.output.stem}.predictions.jsonl")
            write_text(saved, "".join(json.dumps({"prediction": p}, ensure_ascii=False) + "\n" for p in predictions))
            settings["predictions"] = str(saved)
    from .. import metrics  # after the input checks, so bad input fails fast
    return {"scores": metrics.score(args.task, predictions, targets),
            "baselines": metrics.baselines(args.task, sources, targets), "settings": settings}


def main(argv: Optional[list[str]] = None, prog: str = PROG, doc: str = "") -> int:
    args = build_parser(prog, doc).parse_args(argv)

    def body() -> int:
        from ..io import write_json
        results = run(args)
        if args.output is not None:
            write_json(args.output, results, sort_keys=False)
        C.say(C.format_table(results["scores"], results["baselines"],
                             "model" if args.model is not None else "predictions"))
        if "signature" in results["scores"]:
            C.say(f"BLEU signature: {results['scores']['signature']}")
            C.say(f"chrF signature: {results['scores']['chrf_signature']}")
        if args.output is not None:
            C.say(f"wrote {args.output}")
        return 0

    return C.main_entry(prog, body)
