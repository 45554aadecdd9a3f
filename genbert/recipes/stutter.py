"""How much a trained model stutters, and what word-level repeat blocking does about it: the
recipe behind ``scripts/stutter_report.py``.

The model generates for the first ``--limit`` pairs of a named dataset's split with its stored
settings, once with the word-level options off and once with each of them on
(``no_repeat_content_words``; ``no_repeat_word_ngram_size``; both). For each run: ROUGE, the
share of outputs with a repeated content word (:func:`genbert.metrics.repeated_content_word_share`),
words per output and the share of outputs the option changed; then a few changed examples.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

from ..data.datasets import NAMED_DATASETS, SPLITS
from . import common as C
from .common import UsageError

PROG = "stutter_report.py"
WORD_OPTIONS = ("no_repeat_word_ngram_size", "no_repeat_content_words")


def build_parser(prog: str = PROG, doc: str = "") -> Any:
    p = C.new_parser(prog, doc)
    p.add_argument("model", type=Path, help="a model directory (genbert.TextGenerator, e.g. runs/NAME/final)")
    p.add_argument("--dataset", default="bbc-headlines", choices=NAMED_DATASETS,
                   help="named dataset (default bbc-headlines)")
    p.add_argument("--split", default="validation", choices=SPLITS, help="split (default validation)")
    p.add_argument("--limit", type=int, default=200, help="the first N pairs (default 200)")
    p.add_argument("--word-ngram-size", type=int, default=2,
                   help="no_repeat_word_ngram_size of the word n-gram run (default 2)")
    p.add_argument("--examples", type=int, default=5, help="changed outputs to show (default 5)")
    p.add_argument("--batch-size", type=int, default=16, help="sources per generate call (default 16)")
    p.add_argument("--device", help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--output", type=Path, help="also write the report as JSON here")
    return p


def check_args(args: Any) -> None:
    for name in ("limit", "word_ngram_size", "batch_size"):
        if getattr(args, name) < 1:
            raise UsageError(f"{C.flag_name(name)}={getattr(args, name)}: must be >= 1")
    if args.examples < 0:
        raise UsageError(f"--examples={args.examples}: must be >= 0")
    if not args.model.is_dir() or not (args.model / "config.json").is_file():
        raise UsageError(f"{args.model}: not a model directory (no config.json)")
    if args.output is not None and not args.output.parent.is_dir():
        raise UsageError(f"--output {args.output}: folder {args.output.parent} does not exist")


def variants(word_ngram_size: int, diffusion: bool) -> dict[str, dict[str, Any]]:
    """Name -> the word options of each run (on top of the stored settings)."""
    off = {"no_repeat_word_ngram_size": 0, "no_repeat_content_words": False}
    if diffusion:  # diffusion decoding takes no repeat constraints
        return {"off": off}
    return {"off": off,
            "content-words": {**off, "no_repeat_content_words": True},
            f"word-{word_ngram_size}gram": {**off, "no_repeat_word_ngram_size": word_ngram_size},
            "both": {"no_repeat_word_ngram_size": word_ngram_size, "no_repeat_content_words": True}}


def run(args: Any) -> dict[str, Any]:
    """{"settings", "runs": {name: {options, scores, repeated_content_word_share, ...}}, "examples"}."""
    from ..data.datasets import load_named
    from ..textgen import TextGenerator, truncation_notes_off
    check_args(args)
    C.check_device(args.device)
    try:
        records = load_named(args.dataset, args.split)[:args.limit]
    except (ValueError, ModuleNotFoundError) as exc:
        raise UsageError(f"--dataset {args.dataset}: {exc}") from None
    try:
        gen = TextGenerator.from_pretrained(args.model, device=args.device)
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"{args.model}: cannot load it ({exc})") from None
    sources, refs = [r["source"] for r in records], [r["target"] for r in records]
    c = gen.model.config
    diffusion = gen.model.decoder is None and c.mask_scheme == "bidirectional"
    stored = {k: v for k, v in gen.settings.items() if not isinstance(v, (dict, list))}
    runs: dict[str, dict[str, Any]] = {}
    outputs: dict[str, list[str]] = {}
    with truncation_notes_off():  # the cut inputs are said once, in the settings, not once a run
        for name, options in variants(args.word_ngram_size, diffusion).items():
            kw = {} if diffusion else options
            t0 = time.perf_counter()
            preds = list(gen.generate(sources, batch_size=args.batch_size, **kw))
            runs[name] = _measure(preds, refs, outputs.get("off", preds), options, time.perf_counter() - t0)
            outputs[name] = preds
    examples = []
    if len(outputs) > 1:
        best = "both"
        for i, (r, off, new) in enumerate(zip(refs, outputs["off"], outputs[best])):
            if off != new and len(examples) < args.examples:
                examples.append({"index": i, "reference": r, "off": off, best: new})
    settings = {"model": str(args.model), "data": f"{args.dataset}:{args.split}", "num_examples": len(records),
                "stored": stored, "diffusion": diffusion,
                "truncated": gen.last_truncation.message() if gen.last_truncation else None}
    return {"settings": settings, "runs": runs, "examples": examples}


def _measure(preds: list[str], refs: list[str], off: list[str], options: dict[str, Any],
             seconds: float) -> dict[str, Any]:
    from ..metrics import repeated_content_word_share, rouge_scores
    return {"options": options, "scores": rouge_scores(preds, refs),
            "repeated_content_word_share": repeated_content_word_share(preds),
            "words_per_output": sum(len(p.split()) for p in preds) / len(preds),
            "changed_share": sum(p != b for p, b in zip(preds, off)) / len(preds), "seconds": round(seconds, 2)}


def format_report(report: dict[str, Any]) -> str:
    s, runs = report["settings"], report["runs"]
    shown = ", ".join(f"{k}={v}" for k, v in s["stored"].items()
                      if k not in ("max_source_length", "max_target_length", "scheme", "objective"))
    lines = [f"{s['model']} on {s['data']} ({s['num_examples']} examples); stored settings: {shown}"]
    if s["truncated"]:
        lines.append(f"note: {s['truncated']}")
    if s["diffusion"]:
        lines.append("note: diffusion decoding takes no repeat constraints: only the stored settings are run")
    header = ["run", "ROUGE-1", "ROUGE-2", "ROUGE-L", "repeated content word %", "words/output", "changed %", "s"]
    rows = [[name, f"{r['scores']['rouge1']:.2f}", f"{r['scores']['rouge2']:.2f}", f"{r['scores']['rougeL']:.2f}",
             f"{100 * r['repeated_content_word_share']:.1f}", f"{r['words_per_output']:.1f}",
             f"{100 * r['changed_share']:.1f}", f"{r['seconds']:.1f}"] for name, r in runs.items()]
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    lines += ["  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])
              for row in [header] + rows]
    for name, r in runs.items():
        lines.append(f"  {name}: {', '.join(f'{k}={v}' for k, v in r['options'].items())}")
    if report["examples"]:
        lines += ["", "outputs the word options changed (off -> both):"]
        for e in report["examples"]:
            lines += [f"  reference: {e['reference']}", f"  off:       {e['off']}", f"  both:      {e['both']}", ""]
    return "\n".join(lines).rstrip()


def main(argv: Optional[list[str]] = None, prog: str = PROG, doc: str = "") -> int:
    args = build_parser(prog, doc).parse_args(argv)

    def body() -> int:
        from ..io import write_json
        report = run(args)
        C.say(format_report(report))
        if args.output is not None:
            write_json(args.output, report, sort_keys=False)
            C.say(f"wrote {args.output}")
        return 0

    return C.main_entry(prog, body)
