#!/usr/bin/env python
"""Decoding speed: genbert.generate vs transformers' generate on the same bert2bert weights.

All-MiniLM-L6 size (6+6 layers, hidden 384, 12 heads, vocab 30522, random weights), batch 8,
sources of 256 tokens (some right-padded), 64 new tokens (min = max, so both decode the full
length), greedy and beam 4; identical tokens are checked. Also the prefix (UniLM) scheme at the
same size, tokens/s, and the time the model's FLOPs would take at the machine's measured matmul
throughput (the compute limit). Writes a markdown table and JSON (default docs/benchmarks/).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from genbert import GenBert, GenBertConfig  # noqa: E402

SIZE = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)


def timed(fn, repeats: int, sync) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def matmul_gflops(device, dtype, sync) -> float:
    n = 2048
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    reps = 5 if device == "cpu" else 50
    sync()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def generate_flops(real_lengths, new, beams, h, inter, layers, vocab, decoder: bool) -> float:
    """Matmul FLOPs of one generate call (encoder or prefill once, then `new` cached steps)."""
    layer = 2 * (4 * h * h + 2 * h * inter)  # per token: q,k,v,o and the FFN
    f = 0.0
    for s in real_lengths:
        f += s * layers * layer + layers * 4 * s * s * h  # source encoding (+ attention scores/values)
        if decoder:
            f += layers * 2 * 2 * h * h * s  # cross-attention keys/values, once
        for t in range(new):
            ctx = t + 1 if decoder else s + t + 1
            per_tok = layers * (layer + 4 * ctx * h) + 2 * h * h + 2 * h * vocab
            if decoder:
                per_tok += layers * (2 * 2 * h * h + 4 * s * h)  # cross q/o + attention over the source
            f += beams * per_tok
    return f


def memory_floor(model, ids, am, new: int, encode_limit_s: float, repeats: int, sync) -> dict:
    """Greedy decoding's floor on this machine: encoding the sources at the compute limit, then
    `new` steps that each only read, once, the bytes every step must read (decoder weights, the
    vocabulary projection, the cross-attention keys/values). Reading is timed as a sum over them."""
    with torch.inference_mode():
        memory = model.decoder.precompute_cross(model.encode(ids, am))
        tensors = [m.weight for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)]
        tensors += [model.decoder.lm_head.weight] + [t for kv in memory for t in kv]
        t_read, _ = timed(lambda: [t.sum() for t in tensors], max(repeats, 5), sync)
    step_bytes = sum(t.numel() * t.element_size() for t in tensors)
    return dict(encode_limit_s=encode_limit_s, step_mb=step_bytes / 1e6, read_gb_per_s=step_bytes / t_read / 1e9,
                floor_s=encode_limit_s + new * t_read)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--source-length", type=int, default=256)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--output-dir", default="docs/benchmarks")
    a = p.parse_args()
    warnings.simplefilter("ignore")
    from transformers import BertConfig, BertLMHeadModel, BertModel, EncoderDecoderModel
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    dev = a.device
    if dev == "cpu":
        torch.set_num_threads(a.threads)
    sync = (lambda: torch.cuda.synchronize()) if dev.startswith("cuda") else (lambda: None)
    dtype = getattr(torch, a.dtype)

    torch.manual_seed(0)
    ref = EncoderDecoderModel(encoder=BertModel(BertConfig(**SIZE)),
                              decoder=BertLMHeadModel(BertConfig(**SIZE, is_decoder=True, add_cross_attention=True)))
    with tempfile.TemporaryDirectory() as d:
        ref.config.decoder_start_token_id, ref.config.pad_token_id, ref.config.eos_token_id = 101, 0, 102
        ref.save_pretrained(d)
        ours = GenBert.from_pretrained(d)
    ref = ref.to(dev, dtype).eval()
    ours = ours.to(dev, dtype).eval()

    g = torch.Generator().manual_seed(0)
    b, s, n = a.batch, a.source_length, a.new_tokens
    ids = torch.randint(1000, 30000, (b, s), generator=g)
    lengths = [s if i % 2 == 0 else s - 16 * (i + 1) for i in range(b)]  # half the rows padded
    am = torch.zeros(b, s, dtype=torch.long)
    for i, L in enumerate(lengths):
        am[i, :L] = 1
    ids = ids.masked_fill(am == 0, 0).to(dev)
    am = am.to(dev)

    peak = matmul_gflops(dev, dtype, sync)
    encode_limit = generate_flops(lengths, 0, 1, 384, 1536, 6, 30522, decoder=True) / (peak * 1e9)
    floor = memory_floor(ours, ids, am, n, encode_limit, a.repeats, sync)
    rows, results = [], {"device": dev, "threads": a.threads if dev == "cpu" else None, "dtype": a.dtype,
                         "matmul_gflops": round(peak, 1), "runs": []}
    for beams in (1, 4):
        kw = dict(max_new_tokens=n, min_new_tokens=n, num_beams=beams)
        def run_ref():
            with torch.inference_mode():
                return ref.generate(input_ids=ids, attention_mask=am, do_sample=False, decoder_start_token_id=101,
                                    eos_token_id=102, pad_token_id=0, **kw)[:, 1:]
        def run_ours():
            return ours.generate(ids, am, **kw)
        run_ref(), run_ours()  # warm-up
        t_ref, r = timed(run_ref, a.repeats, sync)
        t_ours, o = timed(run_ours, a.repeats, sync)
        same = torch.equal(o.cpu(), r.cpu())
        flops = generate_flops(lengths, n, beams, 384, 1536, 6, 30522, decoder=True)
        limit = flops / (peak * 1e9)
        name = "greedy" if beams == 1 else f"beam {beams}"
        results["runs"].append(dict(model="bert2bert", strategy=name, transformers_s=t_ref, genbert_s=t_ours,
                                    speedup=t_ref / t_ours, identical_tokens=same, tokens_per_s=b * n / t_ours,
                                    compute_limit_s=limit, fraction_of_limit=limit / t_ours))
        if beams == 1:
            floor["best_possible_speedup"] = t_ref / floor["floor_s"]
            results["greedy_memory_floor"] = floor
        rows.append(f"| bert2bert | {name} | {t_ref:.3f} | {t_ours:.3f} | **{t_ref / t_ours:.2f}x** | {same} | "
                    f"{b * n / t_ours:.0f} | {limit:.3f} ({100 * limit / t_ours:.0f}%) |")
        print(rows[-1], flush=True)

    cfg = GenBertConfig(**SIZE, mask_scheme="prefix", max_position_embeddings=512)
    torch.manual_seed(0)
    prefix = GenBert(cfg).to(dev, dtype).eval()
    for beams in (1, 4):
        kw = dict(max_new_tokens=n, min_new_tokens=n, num_beams=beams)
        prefix.generate(ids, am, **kw)
        t, _ = timed(lambda: prefix.generate(ids, am, **kw), a.repeats, sync)
        flops = generate_flops(lengths, n, beams, 384, 1536, 6, 30522, decoder=False)
        limit = flops / (peak * 1e9)
        name = "greedy" if beams == 1 else f"beam {beams}"
        results["runs"].append(dict(model="prefix", strategy=name, genbert_s=t, tokens_per_s=b * n / t,
                                    compute_limit_s=limit, fraction_of_limit=limit / t))
        rows.append(f"| prefix (UniLM) | {name} | – | {t:.3f} | – | – | {b * n / t:.0f} | {limit:.3f} ({100 * limit / t:.0f}%) |")
        print(rows[-1], flush=True)

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    machine = (torch.cuda.get_device_name() if dev.startswith("cuda") else f"{cpu}, {a.threads} threads")
    results["machine"] = machine
    import transformers
    results["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    head = (f"Machine: {machine}; {a.dtype}; torch {torch.__version__}, transformers {transformers.__version__}; "
            f"matmul throughput {peak:.0f} GFLOP/s (2048² matmul).\n"
            f"Batch {b}, sources {s} tokens (real lengths {lengths}), {n} new tokens, median of {a.repeats}.\n\n"
            "| model | strategy | transformers (s) | genbert (s) | speedup | identical tokens | genbert tokens/s | "
            "compute limit (s) (% reached) |\n|---|---|---|---|---|---|---|---|\n")
    fl = floor
    note = (f"\n\nGreedy memory floor: encoding needs {fl['encode_limit_s']:.3f} s at the compute limit, and every "
            f"step must read "
            f"{fl['step_mb']:.0f} MB (decoder weights, vocabulary projection, cross-attention keys/values) at the "
            f"{fl['read_gb_per_s']:.1f} GB/s this machine reads them, so greedy decoding cannot take less than "
            f"{fl['floor_s']:.3f} s here: at most {fl['best_possible_speedup']:.2f}x faster than transformers.\n")
    os.makedirs(a.output_dir, exist_ok=True)
    tag = "cuda" if dev.startswith("cuda") else "cpu"
    md = os.path.join(a.output_dir, f"generate_{tag}.md")
    with open(md, "w") as f:
        f.write(f"# Decoding speed ({tag})\n\nCommand: `python scripts/bench_generate.py --device {dev}"
                f"{' --threads %d' % a.threads if dev == 'cpu' else ''}`\n\n" + head + "\n".join(rows) + note)
    with open(os.path.join(a.output_dir, f"generate_{tag}.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
