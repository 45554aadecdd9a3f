"""Command-line text generation: `genbert-generate MODEL_DIR [FILE]` (lines or JSONL in, one output a line)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional


def _read_inputs(path: Optional[str], field: str) -> list[str]:
    stream = sys.stdin if path in (None, "-") else None
    name = "<stdin>" if stream else path
    try:
        f = stream or open(path, encoding="utf-8")
    except OSError as e:
        raise SystemExit(f"genbert-generate: error: {name}: cannot read ({e.strerror})")
    texts = []
    with f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if line.lstrip().startswith("{"):
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise SystemExit(f"genbert-generate: error: {name}:{n}: malformed JSON ({e.msg})")
                if not isinstance(obj, dict) or not isinstance(obj.get(field), str):
                    raise SystemExit(f"genbert-generate: error: {name}:{n}: no string field {field!r}")
                line = obj[field]
            texts.append(line)
    return texts


def generate_main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(prog="genbert-generate", description=__doc__)
    p.add_argument("model", help="model directory written by genbert (model, tokenizer, settings)")
    p.add_argument("input", nargs="?", help="text file (one input a line) or JSONL; default stdin")
    p.add_argument("--field", default="source", help="JSONL field holding the input (default: source)")
    p.add_argument("--jsonl", action="store_true", help="print {\"prediction\": ...} lines")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-beams", type=int)
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--no-repeat-ngram-size", type=int)
    p.add_argument("--length-penalty", type=float)
    p.add_argument("--do-sample", action="store_true")
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device")
    a = p.parse_args(argv)
    texts = _read_inputs(a.input, a.field)
    if not texts:
        raise SystemExit("genbert-generate: error: no input text")
    import torch
    from .textgen import TextGenerator
    try:
        gen = TextGenerator.from_pretrained(a.model, device=a.device)
    except (OSError, ValueError) as e:
        raise SystemExit(f"genbert-generate: error: {a.model}: {e}")
    kw = {k: v for k, v in dict(num_beams=a.num_beams, max_new_tokens=a.max_new_tokens,
                                no_repeat_ngram_size=a.no_repeat_ngram_size, length_penalty=a.length_penalty,
                                temperature=a.temperature, top_k=a.top_k, top_p=a.top_p).items() if v is not None}
    if a.do_sample:
        kw.update(do_sample=True, generator=torch.Generator(gen.device).manual_seed(a.seed))
    try:
        outs = gen.generate(texts, batch_size=a.batch_size, **kw)
    except ValueError as e:
        raise SystemExit(f"genbert-generate: error: {e}")
    for o in outs:
        print(json.dumps({"prediction": o}) if a.jsonl else o)


if __name__ == "__main__":
    generate_main()
