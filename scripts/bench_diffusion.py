#!/usr/bin/env python
"""How a diffusion (bidirectional-scheme) model should decode: ROUGE against forward passes and wall-clock
decoding time over a grid of steps / order / block length / remask, on a validation split, next to a
reference model (e.g. the prefix pseudo-mask default); plus a picture of one example being unmasked.

    python scripts/bench_diffusion.py runs/bbc-diffusion/final --reference runs/bbc-headlines/final \
        --steps 2 4 6 12 24 --orders confidence left-to-right random --block-lengths 0 6 --output docs/diffusion

Writes OUTPUT.json, OUTPUT.md (the table, the machine, the command) and OUTPUT.png (ROUGE-L against
passes per generated token and against decoding seconds), and OUTPUT_unmasking.png.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def decode(gen, sources, refs, batch_size: int, **kw):
    """(ROUGE scores, seconds, mean generated tokens per example) of one setting."""
    from genbert.metrics import rouge_scores
    t0 = time.perf_counter()
    preds = gen.generate(sources, batch_size=batch_size, **kw)
    seconds = time.perf_counter() - t0
    tokens = gen.last_generated_tokens / len(preds)
    return rouge_scores(preds, refs), seconds, tokens, preds


REPEATS = {"none": {"collapse_repeats": False}, "collapse": {"collapse_repeats": True},
           "collapse+no-repeat": {"collapse_repeats": True, "no_repeat_content_words": True}}


def unmasking_picture(gen, source: str, path: Path, **kw) -> None:
    """One row per denoising pass: the target block's tokens, [MASK] in grey, new ones in bold."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    states = []
    gen.generate([source], on_step=states.append, **kw)
    tok, mask = gen.tokenizer, gen.model.config.mask_token_id
    rows = [s[0].tolist() for s in states]
    width = len(rows[0])
    fig = Figure(figsize=(min(1.0 * width, 26), 0.42 * len(rows) + 1.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.axis("off")
    prev = [mask] * width
    for y, row in enumerate(rows):
        ax.text(-0.6, y, f"pass {y + 1}", ha="right", va="center", fontsize=8)
        for x, t in enumerate(row):
            masked, new = t == mask, t != prev[x]
            ax.text(x, y, "▢" if masked else tok.id_to_token(t).replace("##", "-").replace("\u2581", ""), ha="center", va="center",
                    fontsize=7, color="0.6" if masked else "black", fontweight="bold" if new and not masked else None)
        prev = row
    ax.set_title(f"{kw.get('order', 'confidence')} order, {len(rows)} passes over {width} positions: "
                 f"{source[:90]}...", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a bidirectional-scheme (diffusion) model directory")
    p.add_argument("--reference", help="a model decoded with its stored settings, for comparison")
    p.add_argument("--dataset", default="bbc-headlines")
    p.add_argument("--split", default="validation", help="tune on validation, never on test")
    p.add_argument("--limit", type=int)
    p.add_argument("--steps", type=int, nargs="+", default=[2, 4, 6, 12, 24])
    p.add_argument("--orders", nargs="+", default=["confidence", "left-to-right", "random"])
    p.add_argument("--block-lengths", type=int, nargs="+", default=[0], help="0 = one block")
    p.add_argument("--remask", action="store_true", help="also try Mask-Predict remasking")
    p.add_argument("--repeats", nargs="+", choices=tuple(REPEATS), default=list(REPEATS),
                   help="repeat handling: none, collapse (collapse_repeats), collapse+no-repeat "
                        "(and no_repeat_content_words)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--output", type=Path, default=Path("docs/diffusion"))
    a = p.parse_args(argv)

    from genbert import TextGenerator
    from genbert.data.datasets import load_named
    from genbert.io import write_json, write_text
    from genbert.recipes.common import machine_description
    from genbert.recipes.compare import passes_per_token

    records = load_named(a.dataset, a.split)[:a.limit]
    sources, refs = [r["source"] for r in records], [r["target"] for r in records]
    gen = TextGenerator.from_pretrained(a.model, device="cpu")
    length = gen.settings.get("max_new_tokens", gen.settings.get("max_target_length", 24))
    gen.generate(sources[:1])  # start-up costs stay out of the timings
    rows = []
    for block in a.block_lengths:
        for steps in a.steps:
            if steps > length or (block and (length % block or steps % (length // block))):
                continue
            for order in a.orders:
                for remask, repeats in [(r, x) for r in ([False, True] if a.remask else [False]) for x in a.repeats]:
                    kw = dict(steps=steps, order=order, remask=remask or None, block_length=block or None,
                              **REPEATS[repeats])
                    if order == "random":
                        import torch
                        kw["generator"] = torch.Generator().manual_seed(0)
                    scores, seconds, tokens, _ = decode(gen, sources, refs, a.batch_size, **kw)
                    rows.append({"model": "diffusion", "steps": steps, "order": order, "remask": remask,
                                 "repeats": repeats,
                                 "block_length": block or None, "rougeL": scores["rougeL"],
                                 "rouge1": scores["rouge1"], "rouge2": scores["rouge2"], "decode_s": seconds,
                                 "tokens_per_example": tokens,
                                 "passes_per_token": passes_per_token({"steps": steps}, tokens)})
                    print(json.dumps(rows[-1]), flush=True)
    if a.reference:
        ref = TextGenerator.from_pretrained(a.reference, device="cpu")
        ref.generate(sources[:1])
        scores, seconds, tokens, _ = decode(ref, sources, refs, a.batch_size)
        beams = ref.settings.get("num_beams", 1)
        rows.append({"model": "reference", "settings": {k: ref.settings.get(k) for k in (
            "scheme", "objective", "num_beams", "no_repeat_ngram_size", "length_penalty")},
            "rougeL": scores["rougeL"], "rouge1": scores["rouge1"], "rouge2": scores["rouge2"], "decode_s": seconds,
            "tokens_per_example": tokens, "passes_per_token": passes_per_token({}, tokens), "beams": beams})
        print(json.dumps(rows[-1]), flush=True)
    a.output.parent.mkdir(parents=True, exist_ok=True)
    command = "python scripts/bench_diffusion.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    result = {"model": a.model, "reference": a.reference, "data": f"{a.dataset}:{a.split}",
              "examples": len(records), "machine": machine_description(), "command": command, "rows": rows}
    write_json(a.output.with_suffix(".json"), result)
    lines = [f"Decoding search on `{a.dataset}` {a.split} ({len(records)} examples), {result['machine']}.", "",
             "| model | steps | order | remask | repeats | block | passes / token | decode s | ROUGE-1 | ROUGE-2 "
             "| ROUGE-L |", "|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: -r["rougeL"]):
        lines.append(f"| {r['model']} | {r.get('steps', '—')} | {r.get('order', '—')} | {r.get('remask', '—')} "
                     f"| {r.get('repeats', '—')} "
                     f"| {r.get('block_length') or '—'} | {r['passes_per_token']:.2f} | {r['decode_s']:.1f} "
                     f"| {r['rouge1']:.2f} | {r['rouge2']:.2f} | {r['rougeL']:.2f} |")
    lines += ["", "```", command, "```", ""]
    write_text(a.output.with_suffix(".md"), "\n".join(lines))

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(10, 4), dpi=110)
    FigureCanvasAgg(fig)
    for i, (key, label) in enumerate((("passes_per_token", "forward passes per generated token"),
                                      ("decode_s", f"decoding seconds ({len(records)} examples)"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for order in a.orders:
            for repeats in a.repeats:
                pts = sorted((r[key], r["rougeL"]) for r in rows if r.get("order") == order and not r.get("remask")
                             and r.get("repeats") == repeats and not r.get("block_length"))
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=f"diffusion, {order}, {repeats}")
        for r in rows:
            if r["model"] == "reference":
                ax.plot([r[key]], [r["rougeL"]], "r*", ms=12, label="reference")
        ax.set_xlabel(label)
        ax.set_ylabel("ROUGE-L")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(a.output.with_suffix(".png"))
    best = max((r for r in rows if r["model"] == "diffusion"), key=lambda r: r["rougeL"], default=None)
    if best is not None:
        unmasking_picture(gen, sources[0], a.output.with_name(a.output.name + "_unmasking.png"),
                          steps=best["steps"], order=best["order"], block_length=best["block_length"],
                          **REPEATS[best["repeats"]])
    print(f"wrote {a.output}.json, .md, .png and {a.output.name}_unmasking.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
