"""Where genbert's decoding time goes: torch profiler over one `generate` call on the decoding
benchmark's workload (bert2bert at all-MiniLM-L6 size, random weights, batch 8, 256-token
sources, half of them padded, 64 new tokens), greedy and beam 4.

    python scripts/profile_generate.py --output docs/benchmarks/generate_profile_cpu.md

Writes a table per strategy: the operators by self time (grouped by input shapes), their calls
and milliseconds per decoding step, with the wall time of the same call. Run it on two versions
of the code (e.g. from a `git worktree` of the older commit with PYTHONPATH pointing there) to
compare them; `--label` names the version in the output.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import bench_common as bc  # noqa: E402


def table(prof, steps: int, rows: int) -> str:
    events = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events) / 1e3
    out = ["| operator | input shapes | calls | self ms | ms per step | share |", "|---|---|---:|---:|---:|---:|"]
    for e in events[:rows]:
        shapes = ", ".join(str(list(x)) for x in e.input_shapes if x)[:70] or "–"
        ms = e.self_cpu_time_total / 1e3
        out.append(f"| `{e.key}` | {shapes} | {e.count} | {ms:.1f} | {ms / steps:.2f} | {100 * ms / total:.1f}% |")
    out.append(f"| all operators | | | {total:.1f} | {total / steps:.2f} | 100% |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rows", type=int, default=18, help="operators listed per strategy")
    p.add_argument("--size", default="minilm", choices=sorted(bc.SIZES))
    p.add_argument("--dtype", default="float32", choices=("float32", "int8"),
                   help="int8: the model's quantized copy (model.quantize)")
    p.add_argument("--label", default="", help="names the code version profiled, e.g. a commit")
    p.add_argument("--output", default=None, help="markdown file to write (default: print only)")
    a = p.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(a.threads)
    size = bc.SIZES[a.size]
    model = bc.bert2bert_pair(size)[1].eval()
    if a.dtype == "int8":
        model = model.quantize("int8")
    ids, am, _ = bc.decoding_sources(size["vocab_size"], 8, 256 if a.size != "tiny" else 32)
    n = 64 if a.size != "tiny" else 8
    flags = (f" --dtype {a.dtype}" if a.dtype != "float32" else "") + (f" --label {a.label}" if a.label else "")
    parts = [f"# Where decoding time goes ({a.label or 'this checkout'})\n",
             f"Command: `python scripts/profile_generate.py{flags}`. "
             f"Machine: {bc.machine_name('cpu', a.threads)}; torch {torch.__version__}; {a.dtype}; bert2bert at "
             f"{a.size} size (random weights), batch 8, {ids.shape[1]}-token sources (half padded), {n} new tokens. "
             "Self time per operator, grouped by input shapes, from one profiled call after a warm-up; "
             "the wall time is the median of three unprofiled calls.\n"]
    for beams in (1, 4):
        kw = dict(max_new_tokens=n, min_new_tokens=n, num_beams=beams)
        model.generate(ids, am, **kw)
        walls = []
        for _ in range(3):
            t = time.perf_counter()
            model.generate(ids, am, **kw)
            walls.append(time.perf_counter() - t)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            model.generate(ids, am, **kw)
        name = "greedy" if beams == 1 else f"beam {beams}"
        parts.append(f"## {name}: {sorted(walls)[1]:.3f} s wall\n\n{table(prof, n, a.rows)}\n")
    md = "\n".join(parts)
    print(md)
    if a.output:  # written whole or not at all
        tmp = f"{a.output}.tmp"
        with open(tmp, "w") as f:
            f.write(md)
        os.replace(tmp, a.output)


if __name__ == "__main__":
    main()
