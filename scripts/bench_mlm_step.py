#!/usr/bin/env python
"""One MLM training step (forward, backward, AdamW): genbert vs transformers.BertForMaskedLM.

All-MiniLM-L6 size (6 layers, hidden 384, vocab 30522; `--size bert-base` for the GPU), same
random weights, sequence 128, batch 16, 15% of positions labelled. genbert projects onto the
vocabulary only where a label exists (`compute_logits=False`); transformers projects every
position. Dropout is off so the two losses can be compared. `--dtype bfloat16` runs both under
bf16 autocast (float32 weights). Reports the FLOPs each step executes (torch's flop counter) as
TFLOP/s and model FLOPs utilisation (MFU). Peak memory of each is measured in a child process of
its own on CPU, from torch.cuda's peak statistics on a GPU.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

import bench_common as bc  # noqa: E402


def save_reference(path: str, size: str = "minilm") -> None:
    """Random BertForMaskedLM weights (seed 0) that both implementations load."""
    from transformers import BertConfig, BertForMaskedLM
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(**bc.SIZES[size], **bc.NO_DROPOUT)).save_pretrained(path)


def build(which: str, device: str, path: str):
    from transformers import BertForMaskedLM
    from transformers.utils import logging as hf_logging
    from genbert import GenBert
    hf_logging.set_verbosity_error()
    if which == "transformers":
        return BertForMaskedLM.from_pretrained(path).to(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GenBert.from_pretrained(path).to(device)


def batch(device: str, b: int, t: int, vocab: int = 30522):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(vocab // 30, vocab - 1, (b, t), generator=g)
    labels = ids.masked_fill(torch.rand(b, t, generator=g) >= 0.15, -100)
    return ids.to(device), torch.ones_like(ids).to(device), labels.to(device)


def step_fn(which, model, opt, ids, am, labels, dtype: str = "float32"):
    amp = dtype != "float32"
    dev = ids.device.type

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
            if which == "transformers":
                loss = model(input_ids=ids, attention_mask=am, labels=labels).loss
            else:
                loss = model(ids, attention_mask=am, labels=labels, compute_logits=False).loss
        loss.backward()
        opt.step()
        return loss.detach()
    return step


def child(which: str, device: str, b: int, t: int, path: str, dtype: str = "float32", vocab: int = 30522) -> None:
    model = build(which, device, path).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    base = peak_rss_mb()
    step = step_fn(which, model, opt, *batch(device, b, t, vocab), dtype)
    for _ in range(3):
        step()
    peak = peak_rss_mb()
    print(json.dumps({"peak_rss_mb": peak, "step_growth_mb": peak - base}))


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it does not carry over the
    parent's peak across fork + exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--size", default="minilm", choices=sorted(bc.SIZES))
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="bfloat16: both under bf16 autocast (float32 master weights)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    p.add_argument("--output-dir", default="docs/benchmarks")
    p.add_argument("--child", choices=["transformers", "genbert"], help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.device == "cpu":
        torch.set_num_threads(a.threads)
    vocab = bc.SIZES[a.size]["vocab_size"]
    if a.child:
        return child(a.child, a.device, a.batch, a.seq, a.weights, a.dtype, vocab)
    sync = bc.sync_fn(a.device)
    tmp = tempfile.TemporaryDirectory()
    save_reference(tmp.name, a.size)
    models = {w: build(w, a.device, tmp.name).train() for w in ("transformers", "genbert")}
    opts = {w: torch.optim.AdamW(m.parameters(), lr=1e-4) for w, m in models.items()}
    data = batch(a.device, a.batch, a.seq, vocab)
    steps = {w: step_fn(w, models[w], opts[w], *data, a.dtype) for w in models}
    first = {w: float(steps[w]()) for w in steps}  # step 1: losses on identical weights
    flops = {w: bc.count_flops(steps[w]) for w in steps}
    med = bc.interleaved_medians(steps, a.steps, sync)
    mem = {} if a.no_memory else memory(a, steps, tmp.name)
    speedup = med["transformers"] / med["genbert"]
    tag = bc.device_tag(a.device)
    machine = bc.machine_name(a.device, a.threads if tag == "cpu" else None)
    dt = torch.bfloat16 if a.dtype == "bfloat16" else torch.float32
    peak = bc.matmul_tflops(a.device, dt)
    util = {w: bc.utilisation(flops[w], med[w], a.device, dt, peak) for w in steps}
    res = {"machine": machine, "size": a.size, "dtype": a.dtype, "median_step_s": med, "speedup": speedup,
           "first_step_loss": first, "loss_abs_diff": abs(first["genbert"] - first["transformers"]), "memory": mem,
           "flops_per_step": flops, "utilisation": util, "tokens_per_s": {w: a.batch * a.seq / med[w] for w in med},
           "batch": a.batch, "seq": a.seq, "steps": a.steps, "versions": bc.versions()}
    v = bc.versions()
    size = {"minilm": "MiniLM-L6", "bert-base": "bert-base", "tiny": "tiny"}[a.size]
    flags = " ".join(f for f in (f"--device {a.device}", f"--size {a.size}" if a.size != "minilm" else "",
                                 f"--dtype {a.dtype}" if a.dtype != "float32" else "") if f)
    md = (f"# MLM training step ({tag}, {a.dtype})\n\nCommand: `python scripts/bench_mlm_step.py {flags}`\n\n"
          f"Machine: {machine}; torch {v['torch']}, transformers {v.get('transformers')}. "
          f"{size} size, random weights, batch {a.batch} x {a.seq} tokens, 15% labelled, AdamW, {a.dtype}"
          f"{' autocast' if a.dtype != 'float32' else ''}, median of {a.steps} steps (interleaved).\n\n"
          f"| | transformers BertForMaskedLM | genbert (labelled positions only) |\n|---|---|---|\n"
          f"| step time (s) | {med['transformers']:.3f} | {med['genbert']:.3f} (**{speedup:.2f}x faster**) |\n"
          f"| tokens/s | {res['tokens_per_s']['transformers']:.0f} | {res['tokens_per_s']['genbert']:.0f} |\n"
          f"| loss, first step | {first['transformers']:.6f} | {first['genbert']:.6f} (diff {res['loss_abs_diff']:.2e}) |\n"
          f"| FLOPs executed per step (G) | {flops['transformers'] / 1e9:.1f} | {flops['genbert'] / 1e9:.1f} |\n"
          f"| utilisation | {bc.mfu_text(util['transformers'])} | {bc.mfu_text(util['genbert'])} |\n")
    if mem:
        md += (f"| {mem['genbert']['what']} (MB) | {mem['transformers']['peak_mb']:.0f} | {mem['genbert']['peak_mb']:.0f} |\n"
               f"| memory added by the training steps (MB) | {mem['transformers']['step_growth_mb']:.0f} | "
               f"{mem['genbert']['step_growth_mb']:.0f} |\n")
    bc.write_report(a.output_dir, bc.report_name("mlm_step", a.device, a.size, a.dtype), md, res)
    print(md)


def memory(a, steps, weights: str) -> dict:
    """Peak memory of 3 steps of each: a child process per implementation on CPU (peak RSS),
    torch.cuda's peak allocation on a GPU (both models resident; growth over the step)."""
    mem = {}
    if bc.device_tag(a.device) == "cuda":
        for w in steps:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            for _ in range(3):
                steps[w]()
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            mem[w] = {"what": "peak CUDA memory allocated, both models resident", "peak_mb": peak / 2 ** 20,
                      "step_growth_mb": (peak - base) / 2 ** 20}
        return mem
    for w in steps:
        out = subprocess.run([sys.executable, __file__, "--child", w, "--device", a.device, "--threads",
                              str(a.threads), "--batch", str(a.batch), "--seq", str(a.seq), "--weights", weights,
                              "--dtype", a.dtype, "--size", a.size],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        mem[w] = {"what": "peak RSS of a 3-step run, own process", "peak_mb": r["peak_rss_mb"],
                  "step_growth_mb": r["step_growth_mb"]}
    return mem


if __name__ == "__main__":
    main()
