#!/usr/bin/env python
"""One MLM training step (forward, backward, AdamW): genbert vs transformers.BertForMaskedLM.

All-MiniLM-L6 size (6 layers, hidden 384, vocab 30522), same random weights, sequence 128,
batch 16, 15% of positions labelled. genbert projects onto the vocabulary only where a label
exists (`compute_logits=False`); transformers projects every position. Dropout is off so the
two losses can be compared. Peak memory of each is measured in a child process of its own.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

SIZE = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def save_reference(path: str) -> None:
    """Random BertForMaskedLM weights (seed 0) that both implementations load."""
    from transformers import BertConfig, BertForMaskedLM
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(**SIZE)).save_pretrained(path)


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


def batch(device: str, b: int, t: int):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 30000, (b, t), generator=g)
    labels = ids.masked_fill(torch.rand(b, t, generator=g) >= 0.15, -100)
    return ids.to(device), torch.ones_like(ids).to(device), labels.to(device)


def step_fn(which, model, opt, ids, am, labels):
    def step():
        opt.zero_grad(set_to_none=True)
        if which == "transformers":
            loss = model(input_ids=ids, attention_mask=am, labels=labels).loss
        else:
            loss = model(ids, attention_mask=am, labels=labels, compute_logits=False).loss
        loss.backward()
        opt.step()
        return loss.detach()
    return step


def child(which: str, device: str, b: int, t: int, path: str) -> None:
    model = build(which, device, path).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    base = peak_rss_mb()
    step = step_fn(which, model, opt, *batch(device, b, t))
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
    p.add_argument("--output-dir", default="docs/benchmarks")
    p.add_argument("--child", choices=["transformers", "genbert"], help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.device == "cpu":
        torch.set_num_threads(a.threads)
    if a.child:
        return child(a.child, a.device, a.batch, a.seq, a.weights)
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    tmp = tempfile.TemporaryDirectory()
    save_reference(tmp.name)
    models = {w: build(w, a.device, tmp.name).train() for w in ("transformers", "genbert")}
    opts = {w: torch.optim.AdamW(m.parameters(), lr=1e-4) for w, m in models.items()}
    data = batch(a.device, a.batch, a.seq)
    steps = {w: step_fn(w, models[w], opts[w], *data) for w in models}
    first = {w: float(steps[w]()) for w in steps}  # step 1: losses on identical weights
    times = {w: [] for w in steps}
    for _ in range(a.steps):  # interleaved, so both see the same machine conditions
        for w in steps:
            sync()
            t = time.perf_counter()
            steps[w]()
            sync()
            times[w].append(time.perf_counter() - t)
    med = {w: statistics.median(v) for w, v in times.items()}
    mem = {}
    for w in steps:
        out = subprocess.run([sys.executable, __file__, "--child", w, "--device", a.device, "--threads",
                              str(a.threads), "--batch", str(a.batch), "--seq", str(a.seq), "--weights", tmp.name],
                             capture_output=True, text=True, check=True)
        mem[w] = json.loads(out.stdout.strip().splitlines()[-1])
    speedup = med["transformers"] / med["genbert"]
    cpu = "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    machine = torch.cuda.get_device_name() if a.device.startswith("cuda") else f"{cpu}, {a.threads} threads"
    res = {"machine": machine, "median_step_s": med, "speedup": speedup, "first_step_loss": first,
           "loss_abs_diff": abs(first["genbert"] - first["transformers"]), "memory": mem,
           "batch": a.batch, "seq": a.seq, "steps": a.steps}
    import transformers
    tag = "cuda" if a.device.startswith("cuda") else "cpu"
    md = (f"# MLM training step ({tag})\n\nCommand: `python scripts/bench_mlm_step.py --device {a.device}`\n\n"
          f"Machine: {machine}; torch {torch.__version__}, transformers {transformers.__version__}. "
          f"MiniLM-L6 size, batch {a.batch} x {a.seq} tokens, 15% labelled, AdamW, median of {a.steps} steps "
          f"(interleaved).\n\n| | transformers BertForMaskedLM | genbert (labelled positions only) |\n|---|---|---|\n"
          f"| step time (s) | {med['transformers']:.3f} | {med['genbert']:.3f} (**{speedup:.2f}x faster**) |\n"
          f"| loss, first step | {first['transformers']:.6f} | {first['genbert']:.6f} (diff {res['loss_abs_diff']:.2e}) |\n"
          f"| peak RSS of a 3-step run (MB) | {mem['transformers']['peak_rss_mb']:.0f} | {mem['genbert']['peak_rss_mb']:.0f} |\n"
          f"| memory added by the training steps (MB) | {mem['transformers']['step_growth_mb']:.0f} | "
          f"{mem['genbert']['step_growth_mb']:.0f} |\n")
    os.makedirs(a.output_dir, exist_ok=True)
    with open(os.path.join(a.output_dir, f"mlm_step_{tag}.md"), "w") as f:
        f.write(md)
    with open(os.path.join(a.output_dir, f"mlm_step_{tag}.json"), "w") as f:
        json.dump(res, f, indent=2)
    print(md)


if __name__ == "__main__":
    main()
