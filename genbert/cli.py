"""The `genbert` command (`genbert train|pretrain|generate|benchmark|compare|eval-mlm`) and text
generation from the command line: `genbert generate MODEL [FILE]` (also installed as
`genbert-generate`; lines or JSONL in, one output a line).

`genbert` dispatches to the recipe layer without importing it until a subcommand is named, so
`genbert --help` is instant. For generation every argument is checked before anything is loaded
(flags first, then MODEL, then FILE); a bad one ends the run with one line on stderr and exit
status 2. torch is imported only after that.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional

from .recipes.common import EXIT_USAGE, OneLineParser, UsageError, add_generation_arguments, check_generation_arguments

PROG = "genbert-generate"
TOKENIZER_FILES = ("spiece.model", "tokenizer.json", "vocab.txt")  # see genbert.tokenization.Tokenizer.from_dir
GENERATE_DOC = """Generate with a trained genbert model: one output a line.

    genbert generate runs/bbc-headlines/final articles.txt
    genbert generate org/name articles.jsonl --field article --num-beams 4 --jsonl

MODEL is a directory written by genbert (model, tokenizer, generation settings) or a Hugging Face
model id (from the hub cache; downloaded unless HF_HUB_OFFLINE=1). FILE holds one input a line,
or JSONL with a `source` field (--field); default stdin. Every argument is checked before the
model is loaded; a bad one ends the run with one line on stderr and exit status 2.
"""
_prog = PROG  # the name errors are reported under (genbert-generate, or "genbert generate")


def fail(message: str) -> NoReturn:
    print(f"{_prog}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    p = OneLineParser(prog=prog or _prog, description=GENERATE_DOC,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model directory written by genbert (model, tokenizer, settings), or a Hugging "
                                 "Face model id (from the hub cache; downloaded unless HF_HUB_OFFLINE=1)")
    p.add_argument("input", nargs="?", help="text file (one input a line) or JSONL; default stdin")
    p.add_argument("--field", default="source", help="JSONL field holding the input (default: source)")
    p.add_argument("--jsonl", action="store_true", help="print {\"prediction\": ...} lines")
    p.add_argument("--batch-size", type=int, default=16, help="inputs per forward pass (default 16)")
    add_generation_arguments(p)
    p.add_argument("--do-sample", action="store_true", help="sample (with one beam unless --num-beams says more)")
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--dtype", choices=("float32", "int8"), default="float32",
                   help="weights to decode with: float32 (default) or int8 (CPU only, faster; see "
                        "GenBert.quantize)")
    return p


# flag -> (test, what a good value is); None values (flag not given) are not checked
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "batch_size": (lambda v: v >= 1, "must be >= 1"),
    "temperature": (lambda v: math.isfinite(v) and v > 0, "must be > 0"),
    "top_k": (lambda v: v >= 0, "must be >= 0"),
    "top_p": (lambda v: 0 < v <= 1, "must be in (0, 1]"),
}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _read_json_object(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        fail(f"{path}: cannot read ({e.strerror})")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        fail(f"{path}: not valid JSON ({e})")
    if not isinstance(obj, dict):
        fail(f"{path}: not a JSON object")
    return obj


def _check_model_dir(name: str) -> tuple[Path, dict]:
    """The model directory (a hub id resolved through the Hugging Face cache) and its config.json,
    after checking that the directory can be loaded."""
    from .hub import is_hub_id, resolve_model_dir
    d = Path(name)
    if not d.exists() and not is_hub_id(name):
        fail(f"{name}: no such model directory")
    if d.exists() and not d.is_dir():
        fail(f"{name}: not a directory (give the model directory, e.g. runs/NAME/final, or a Hugging Face model id)")
    if not d.exists():
        try:
            d = resolve_model_dir(name)
        except FileNotFoundError as e:
            fail(str(e))
    if not (d / "config.json").is_file():
        fail(f"{name}: not a model directory (no config.json)")
    config = _read_json_object(d / "config.json")
    if not any((d / f).is_file() for f in TOKENIZER_FILES):
        fail(f"{name}: no tokenizer ({', '.join(TOKENIZER_FILES[:-1])} or {TOKENIZER_FILES[-1]})")
    if (d / "generation.json").exists():
        _read_json_object(d / "generation.json")
    return d, config


def _check_input(name: Optional[str]) -> None:
    if name in (None, "-"):
        return
    f = Path(name)
    if not f.exists():
        fail(f"{name}: no such input file")
    if f.is_dir():
        fail(f"{name}: is a directory, not an input file")
    if not os.access(f, os.R_OK):
        fail(f"{name}: input file not readable (permission denied)")


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Parse and check every argument (one line and exit status 2 on the first bad one); imports no torch."""
    a = build_parser().parse_args(argv)
    for dest, (ok, what) in _CHECKS.items():
        v = getattr(a, dest)
        if v is not None and not ok(v):
            fail(f"{_flag(dest)} {v}: {what}")
    try:
        a.overrides = check_generation_arguments(a)
    except UsageError as e:
        fail(str(e))
    if a.do_sample and a.num_beams is not None and a.num_beams > 1:
        fail(f"--num-beams {a.num_beams}: beam sampling is not supported; use --do-sample with --num-beams 1")
    if not a.field:
        fail("--field: must not be empty")
    if a.dtype == "int8" and a.device is not None and not a.device.startswith("cpu"):
        fail(f"--dtype int8 decodes on CPU, not on --device {a.device}")
    a.model_dir, config = _check_model_dir(a.model)
    if a.max_new_tokens is not None and config.get("model_type") == "genbert":
        positions = config.get("max_position_embeddings")
        if isinstance(positions, int):
            # an encoder-decoder's decoder has its own positions; otherwise the source shares them
            most = positions - 1 if config.get("decoder") else positions - 4
            if a.max_new_tokens > most:
                fail(f"--max-new-tokens {a.max_new_tokens}: this model has {positions} positions, "
                     f"so at most {most} new tokens")
    _check_input(a.input)
    return a


def _read_inputs(path: Optional[str], field: str) -> list[str]:
    stream = sys.stdin if path in (None, "-") else None
    name = "<stdin>" if stream else path
    try:
        f = stream or open(path, encoding="utf-8")
    except OSError as e:
        fail(f"{name}: cannot read ({e.strerror})")
    texts = []
    with f:
        try:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if not line.strip():
                    continue
                if line.lstrip().startswith("{"):
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        fail(f"{name}:{n}: malformed JSON ({e.msg})")
                    if not isinstance(obj, dict) or not isinstance(obj.get(field), str):
                        fail(f"{name}:{n}: no string field {field!r}")
                    line = obj[field]
                texts.append(line)
        except UnicodeDecodeError:
            fail(f"{name}: not UTF-8 text")
    return texts


def _check_device(device: Optional[str]) -> None:
    import torch
    if device is None:
        return
    try:
        d = torch.device(device)
    except (RuntimeError, ValueError):
        fail(f"--device {device}: not a device (cpu, cuda, cuda:1, ...)")
    if d.type == "cuda" and not torch.cuda.is_available():
        fail(f"--device {device}: CUDA is not available on this machine")
    if d.type == "cuda" and d.index is not None and d.index >= torch.cuda.device_count():
        fail(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def run(a: argparse.Namespace) -> None:
    """Generate for checked arguments (see parse_args): read the inputs, load the model, print."""
    texts = _read_inputs(a.input, a.field)
    if not texts:
        fail(f"{a.input if a.input not in (None, '-') else '<stdin>'}: no input text")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from .textgen import truncation_notes_off
    _check_device(a.device)
    with truncation_notes_off():  # the note below says it for the command line
        _generate_and_print(a, texts)


def _generate_and_print(a: argparse.Namespace, texts: list[str]) -> None:
    import torch

    from .textgen import TextGenerator
    try:
        gen = TextGenerator.from_pretrained(a.model_dir, device="cpu" if a.dtype == "int8" else a.device,
                                            dtype=a.dtype)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        msg = str(e)  # loaders name the path already: say it once
        fail(msg if a.model in msg else f"{a.model}: {msg}")
    kw = {k: v for k, v in a.overrides.items() if k != "max_source_length"}
    kw.update({k: v for k, v in dict(temperature=a.temperature, top_k=a.top_k, top_p=a.top_p).items() if v is not None})
    if a.do_sample:
        kw.setdefault("num_beams", 1)  # a stored beam setting does not turn sampling into beam sampling
        kw.update(do_sample=True, generator=torch.Generator(gen.device).manual_seed(a.seed))
    try:
        outs = gen.generate(texts, batch_size=a.batch_size, max_source_length=a.max_source_length, **kw)
    except ValueError as e:
        fail(str(e))
    if gen.last_truncation is not None:
        print(f"note: {gen.last_truncation.message('--max-source-length')}", file=sys.stderr, flush=True)
    for o in outs:
        print(json.dumps({"prediction": o}) if a.jsonl else o)


def generate_main(argv: Optional[list[str]] = None, prog: str = PROG) -> int:
    global _prog
    _prog = prog
    run(parse_args(argv))
    return 0


# --------------------------------------------------------------------------- the genbert command
COMMAND = "genbert"
# name -> (module, function, one-line summary); the module is imported only when the command runs
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("genbert.recipes.seq2seq", "main",
              "fine-tune for summarization, headlines or translation, then score (scripts/train_summarization.py)"),
    "pretrain": ("genbert.recipes.pretrain", "main",
                 "pretrain or continue pretraining on text: mlm, mlm+nsp, unilm, infilling (scripts/pretrain.py)"),
    "generate": ("genbert.cli", "generate_main", "generate with a trained model (scripts/generate.py)"),
    "benchmark": ("genbert.recipes.benchmark", "main",
                  "score a model or a file of predictions next to baselines (scripts/benchmark.py)"),
    "compare": ("genbert.recipes.compare", "main",
                "every way of making BERT generate on one budget (scripts/compare_schemes.py)"),
    "eval-mlm": ("genbert.recipes.pretrain", "eval_main",
                 "held-out masked-token accuracy of a model (scripts/eval_mlm.py)"),
}
COMMAND_DOCS = {
    "train": """Fine-tune a genbert model for summarization / headline generation (or translation), then score it.

    genbert train                                        # the default recipe: MiniLM, BBC headlines
    genbert train --init bert-base-uncased --dataset cnn_dailymail:3.0.0 \\
        --source-field article --target-field highlights --output-dir runs/cnndm
    genbert train --dataset my_saved_dataset_dict/ --train-split train --validation-split dev
    genbert train --train train.parquet --validation val.parquet --scheme encoder-decoder
    genbert train --output-dir runs/cnndm --resume        # after an interruption

Data: a built-in --dataset (bbc-headlines, aclsum*, bible-en-fr), a `datasets` hub name with an
optional config (NAME[:CONFIG], from the datasets cache offline), a directory written by
Dataset(Dict).save_to_disk, or data files (parquet, JSONL/JSON, CSV/TSV); or --train/--validation
files. --init takes a model directory, a Hugging Face model id, 'minilm' or 'scratch'.
Writes OUTPUT/checkpoint-STEP/, OUTPUT/final/ (load it with genbert.TextGenerator.from_pretrained;
ready for the hub, with a model card), OUTPUT/log.jsonl, OUTPUT/loss.png, with --report-to
tensorboard OUTPUT/tensorboard/, and unless --no-eval OUTPUT/metrics.json and
OUTPUT/predictions.jsonl. Bad input ends the run with one line on stderr and exit status 2.
""",
    "pretrain": """Pretrain, or continue pretraining, a genbert model on plain text, with held-out masked-token
accuracy before and after.

    genbert pretrain --init minilm --corpus bbc wikipedia --max-steps 300 --output-dir runs/minilm-mlm
    genbert pretrain --init scratch --text notes.txt more.jsonl --objective unilm
    genbert pretrain --init bert-base-uncased --dataset wikitext:wikitext-103-raw-v1 --streaming
    genbert pretrain --output-dir runs/minilm-mlm --resume   # after an interruption

Text: --text FILE ... (JSONL with a "text" field, else one document per blank-line-separated
block), --corpus bbc|wikipedia (offline corpora) and/or --dataset (a `datasets` name, a
save_to_disk directory or parquet/JSON/CSV files; --text-field names the column). --streaming
reads a --dataset as a stream and keeps the tokenized training sequences on disk, so a corpus
larger than memory trains. Bad input ends the run with one line on stderr and exit status 2.
""",
    "benchmark": """Score a model (or a file of predictions) on a test set, next to simple baselines.

    genbert benchmark --data test.jsonl --task summarization --model runs/best/final --output results/test.json
    genbert benchmark --dataset bible-en-fr --split test --model runs/bible/final
    genbert benchmark --dataset xsum --split test --source-field document --target-field summary \\
        --task summarization --model org/name

Bad input ends the run with one line on stderr and exit status 2.
""",
    "compare": """Train and evaluate every way of making BERT generate, from one checkpoint, on one budget.

    genbert compare --quick            # 2 CPU cores, under an hour
    genbert compare --ways causal,bert2bert --seeds 0 1 --max-steps 50

Every way is a named set of overrides of the `genbert train` recipe (whose flags set the budget).
""",
    "eval-mlm": """Held-out masked-token accuracy of any model, on the split `genbert pretrain` holds out.

    genbert eval-mlm runs/minilm-mlm/final --corpus bbc wikipedia
    genbert eval-mlm bert-base-uncased --text notes.txt

Bad input: one line on stderr, exit status 2.
""",
}


def command_help() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: {COMMAND} COMMAND [options]   ({COMMAND} COMMAND --help for its options)", "",
             "Make one BERT encoder generate text, every known way.", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {summary}" for name, (_, _, summary) in COMMANDS.items()]
    lines += ["", "options:", "  -h, --help  show this help and exit", "  --version   show the version and exit"]
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    """`genbert COMMAND ...`: run one subcommand of the recipe layer; its exit status."""
    import importlib
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(command_help())
        return 0 if argv else EXIT_USAGE
    if argv[0] == "--version":
        from . import __version__
        print(f"{COMMAND} {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"{COMMAND}: error: unknown command {name!r}; choose one of {', '.join(COMMANDS)} (see --help)",
              file=sys.stderr)
        return EXIT_USAGE
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    module, function, _ = COMMANDS[name]
    entry = getattr(importlib.import_module(module), function)
    prog = f"{COMMAND} {name}"
    if name == "generate":
        return entry(rest, prog=prog)
    return entry(rest, prog=prog, doc=COMMAND_DOCS[name])


if __name__ == "__main__":
    sys.exit(main())
