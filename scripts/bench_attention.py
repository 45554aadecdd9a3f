#!/usr/bin/env python
"""Attention under genbert's mask layouts: SDPA with the boolean mask vs FlexAttention with the
layout's block mask (genbert/flex.py), and SDPA's causal flag where the layout is causal.

bert-base heads (12 x 64), batch 16, 512 tokens, bf16 on a GPU (float32 on CPU, where FlexAttention
runs eagerly and the figures only show that the code runs); forward + backward of one attention
call, median of 20. Right-padded rows (real lengths from 50% to 100%), targets or the diffusion
block in the second half. Outputs are checked against the boolean-mask SDPA. On CPU forward only
(FlexAttention has no CPU backward).
"""
import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import bench_common as bc  # noqa: E402
from genbert import flex, masks  # noqa: E402


def layout(b: int, t: int, device):
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(t // 2, t + 1, (b,), generator=g)
    am = (torch.arange(t)[None] < lengths[:, None]).long()
    start = (lengths // 2)[:, None]
    tt = (torch.arange(t)[None] >= start).long()
    ids = torch.zeros(b, t, dtype=torch.long)
    # the pseudo-mask layout: source, then n real targets, then their n pseudo masks, then padding
    n = (lengths - start[:, 0]) // 2
    pos = torch.arange(t)[None]
    segs = torch.where(pos < start, 0, torch.where(pos < start + n[:, None], 1,
                                                   torch.where(pos < start + 2 * n[:, None], 2, 3)))
    idx = torch.where(segs == 1, pos - start, torch.where(segs == 2, pos - start - n[:, None], 0))
    return [x.to(device) for x in (ids, am, tt, segs, idx)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--length", type=int, default=512)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--output-dir", default="docs/benchmarks")
    a = p.parse_args()
    warnings.simplefilter("ignore")
    dev, tag = a.device, bc.device_tag(a.device)
    if not flex.available():
        print("bench_attention: skipped, this torch has no torch.nn.attention.flex_attention")
        return
    dtype = torch.bfloat16 if tag == "cuda" else torch.float32
    sync = bc.sync_fn(dev)
    b, t, h, d = a.batch, a.length, a.heads, a.head_dim
    ids, am, tt, segs, idx = layout(b, t, dev)
    cases = {
        "causal (padded)": (masks.causal(ids, am), flex.causal_mod(ids, am)),
        "causal (no padding)": (masks.causal(ids), flex.causal_mod(ids)),
        "prefix": (masks.prefix(ids, am, tt), flex.prefix_mod(ids, am, tt)),
        "source-block (diffusion)": (masks.source_block(ids, am, tt), flex.source_block_mod(ids, am, tt)),
        "pseudo-mask (s2s-ft)": (masks.pseudo_mask(segs, idx), flex.pseudo_mask_mod(segs, idx)),
    }
    g = torch.Generator(device=dev).manual_seed(0)
    backward = tag == "cuda"
    q, k, v = (torch.randn(b, h, t, d, device=dev, dtype=dtype, generator=g).requires_grad_(backward)
               for _ in range(3))
    grad = torch.randn(b, h, t, d, device=dev, dtype=dtype, generator=g)

    def fwd_bwd(fn):
        def run():
            if not backward:
                with torch.no_grad():
                    return fn()
            for x in (q, k, v):
                x.grad = None
            out = fn()
            out.backward(grad)
            return out.detach()
        return run

    rows, res = [], {"device": dev, "dtype": str(dtype), "shape": [b, h, t, d], "cases": {}}
    for name, (bool_mask, mod) in cases.items():
        ways = {"SDPA, boolean mask": lambda m=bool_mask: F.scaled_dot_product_attention(q, k, v, attn_mask=m[:, None])}
        bm = flex.block_mask(mod, b, t, dev)
        ways["FlexAttention, block mask"] = lambda m=bm: flex.attend(q, k, v, m)
        if name == "causal (no padding)":
            ways["SDPA, causal flag"] = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)
        ref = None
        res["cases"][name] = {}
        for way, fn in ways.items():
            run = fwd_bwd(fn)
            run()  # warm-up (and compilation)
            secs, out = bc.timed(run, a.repeats, sync)
            if ref is None:
                ref = out
            err = float((out.float() - ref.float()).abs().max())
            res["cases"][name][way] = {"seconds": secs, "max_abs_diff_vs_boolean_sdpa": err}
            rows.append(f"| {name} | {way} | {1e3 * secs:.3f} | {err:.1e} |")
            print(rows[-1], flush=True)
    res["machine"] = bc.machine_name(dev)
    md = (f"# Attention under genbert's mask layouts ({tag})\n\nCommand: `python scripts/bench_attention.py "
          f"--device {dev}`\n\nMachine: {res['machine']}; torch {torch.__version__}; {dtype}; batch {b}, {h} heads "
          f"x {d}, {t} tokens; {'forward + backward' if backward else 'forward'} of one attention call, median of {a.repeats}.\n\n"
          "| layout | attention | ms | max abs diff vs boolean SDPA |\n|---|---|---|---|\n" + "\n".join(rows) + "\n")
    path = bc.write_report(a.output_dir, f"attention_{tag}", md, res)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
