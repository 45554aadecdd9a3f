"""Command-line text generation: `genbert-generate MODEL_DIR [FILE]` (lines or JSONL in, one output a line).

Every argument is checked before anything is loaded (flags first, then MODEL_DIR, then FILE); a bad
one ends the run with one line on stderr and exit status 2. torch is imported only after that.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional

from .recipes.common import EXIT_USAGE, OneLineParser

PROG = "genbert-generate"
TOKENIZER_FILES = ("spiece.model", "tokenizer.json", "vocab.txt")  # see genbert.tokenization.Tokenizer.from_dir


def fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model directory written by genbert (model, tokenizer, settings)")
    p.add_argument("input", nargs="?", help="text file (one input a line) or JSONL; default stdin")
    p.add_argument("--field", default="source", help="JSONL field holding the input (default: source)")
    p.add_argument("--jsonl", action="store_true", help="print {\"prediction\": ...} lines")
    p.add_argument("--batch-size", type=int, default=16, help="inputs per forward pass (default 16)")
    p.add_argument("--max-source-length", type=int,
                   help="input tokens kept, [CLS]/[SEP] included (default: the model's stored setting)")
    p.add_argument("--num-beams", type=int)
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--no-repeat-ngram-size", type=int)
    p.add_argument("--no-repeat-word-ngram-size", type=int, help="never repeat a word n-gram of this size")
    p.add_argument("--no-repeat-content-words", action="store_const", const=True,
                   help="never repeat a content word within one output")
    p.add_argument("--length-penalty", type=float)
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
    "max_source_length": (lambda v: v >= 3, "must be >= 3 ([CLS], a token, [SEP])"),
    "num_beams": (lambda v: v >= 1, "must be >= 1"),
    "max_new_tokens": (lambda v: v >= 1, "must be >= 1"),
    "no_repeat_ngram_size": (lambda v: v >= 0, "must be >= 0"),
    "no_repeat_word_ngram_size": (lambda v: v >= 0, "must be >= 0"),
    "length_penalty": (math.isfinite, "must be a finite number"),
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


def _check_model_dir(name: str) -> dict:
    """The model directory's config.json, after checking that the directory can be loaded."""
    d = Path(name)
    if not d.exists():
        fail(f"{name}: no such model directory")
    if not d.is_dir():
        fail(f"{name}: not a directory (give the model directory, e.g. runs/NAME/final)")
    if not (d / "config.json").is_file():
        fail(f"{name}: not a model directory (no config.json)")
    config = _read_json_object(d / "config.json")
    if not any((d / f).is_file() for f in TOKENIZER_FILES):
        fail(f"{name}: no tokenizer ({', '.join(TOKENIZER_FILES[:-1])} or {TOKENIZER_FILES[-1]})")
    if (d / "generation.json").exists():
        _read_json_object(d / "generation.json")
    return config


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
    if a.do_sample and a.num_beams is not None and a.num_beams > 1:
        fail(f"--num-beams {a.num_beams}: beam sampling is not supported; use --do-sample with --num-beams 1")
    if not a.field:
        fail("--field: must not be empty")
    if a.dtype == "int8" and a.device is not None and not a.device.startswith("cpu"):
        fail(f"--dtype int8 decodes on CPU, not on --device {a.device}")
    config = _check_model_dir(a.model)
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
    import logging

    import torch

    from .textgen import TextGenerator
    _check_device(a.device)
    logging.getLogger("genbert.textgen").setLevel(logging.ERROR)  # the note below says it for the command line
    try:
        gen = TextGenerator.from_pretrained(a.model, device="cpu" if a.dtype == "int8" else a.device,
                                            dtype=a.dtype)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        msg = str(e)  # loaders name the path already: say it once
        fail(msg if a.model in msg else f"{a.model}: {msg}")
    kw = {k: v for k, v in dict(num_beams=a.num_beams, max_new_tokens=a.max_new_tokens,
                                no_repeat_ngram_size=a.no_repeat_ngram_size, length_penalty=a.length_penalty,
                                no_repeat_word_ngram_size=a.no_repeat_word_ngram_size,
                                no_repeat_content_words=a.no_repeat_content_words,
                                temperature=a.temperature, top_k=a.top_k, top_p=a.top_p).items() if v is not None}
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


def generate_main(argv: Optional[list[str]] = None) -> None:
    run(parse_args(argv))


if __name__ == "__main__":
    generate_main()
