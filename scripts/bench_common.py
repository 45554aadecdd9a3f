"""Shared pieces of the benchmark scripts (bench_generate.py, bench_mlm_step.py,
bench_seq2seq_step.py, bench_int8.py): model sizes, timing, machine name, matmul throughput,
FLOP counts and model FLOPs utilisation (MFU). Imported by path (the scripts put the repository
root and scripts/ on sys.path); nothing here is part of the genbert package."""
from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any, Callable, Optional

import torch

# random-weight sizes: all-MiniLM-L6 (the workloads), bert-base (GPU MFU), tiny (tests)
SIZES: dict[str, dict[str, int]] = {
    "minilm": dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                   intermediate_size=1536),
    "bert-base": dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                      intermediate_size=3072),
    "tiny": dict(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64),
}
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)

# dense bf16 tensor-core peak (TFLOP/s, no sparsity) by GPU name, from the vendors' data sheets
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "H800": 989.0, "GH200": 989.0, "A100": 312.0, "A800": 312.0,
                    "L40S": 362.0, "L4": 121.0, "A10G": 70.0, "A10": 125.0, "RTX 4090": 165.0, "B200": 2250.0}


def sync_fn(device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)


def device_tag(device: str) -> str:
    return "cuda" if str(device).startswith("cuda") else "cpu"


def timed(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> tuple[float, Any]:
    """Median seconds of `repeats` calls, and the last result."""
    times, out = [], None
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def interleaved_medians(fns: dict[str, Callable[[], Any]], repeats: int,
                        sync: Callable[[], None]) -> dict[str, float]:
    """Median seconds of each callable, run in turn `repeats` times so that all of them see the
    same machine conditions."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            t = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(v) for name, v in times.items()}


def machine_name(device: str, threads: Optional[int] = None) -> str:
    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name()
    cpu = "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {threads} threads" if threads else cpu


def matmul_tflops(device: str, dtype: torch.dtype, n: int = 2048) -> float:
    """Measured throughput of an n x n matmul in `dtype` (TFLOP/s)."""
    sync = sync_fn(device)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    reps = 5 if device_tag(device) == "cpu" else 100
    sync()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e12


def spec_peak_tflops(device: str, dtype: torch.dtype) -> Optional[float]:
    """The data-sheet dense peak of this GPU in bf16 (None: unknown GPU, CPU, or another dtype)."""
    if device_tag(device) != "cuda" or dtype != torch.bfloat16:
        return None
    name = torch.cuda.get_device_name()
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key in name:
            return PEAK_BF16_TFLOPS[key]
    return None


def count_flops(fn: Callable[[], Any]) -> float:
    """FLOPs that one call of `fn` executes in matmuls and attention (forward and backward),
    counted by torch.utils.flop_counter: the work the implementation actually does."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def utilisation(flops: float, seconds: float, device: str, dtype: torch.dtype, measured_tflops: float) -> dict:
    """Achieved TFLOP/s and MFU against the data-sheet peak (where known) and the measured matmul peak."""
    achieved = flops / seconds / 1e12
    spec = spec_peak_tflops(device, dtype)
    return {"tflops": achieved, "spec_peak_tflops": spec, "mfu": achieved / spec if spec else None,
            "measured_peak_tflops": measured_tflops, "fraction_of_measured_peak": achieved / measured_tflops}


def mfu_text(u: dict) -> str:
    spec = f"{100 * u['mfu']:.1f}% of the {u['spec_peak_tflops']:.0f} TFLOP/s data-sheet peak" if u["mfu"] else \
        "no data-sheet peak known"
    return (f"{u['tflops']:.2f} TFLOP/s: MFU {spec}; {100 * u['fraction_of_measured_peak']:.1f}% of the "
            f"{u['measured_peak_tflops']:.1f} TFLOP/s a 2048² matmul reaches here")


def versions() -> dict[str, str]:
    out = {"torch": torch.__version__}
    try:
        import transformers
        out["transformers"] = transformers.__version__
    except ImportError:
        pass
    return out


def write_report(output_dir: str, name: str, markdown: str, results: dict) -> str:
    """Write NAME.md and NAME.json under output_dir; returns the markdown path."""
    os.makedirs(output_dir, exist_ok=True)
    md = os.path.join(output_dir, f"{name}.md")
    with open(md, "w") as f:
        f.write(markdown)
    with open(os.path.join(output_dir, f"{name}.json"), "w") as f:
        json.dump(results, f, indent=2)
    return md


def report_name(kind: str, device: str, size: str = "minilm", dtype: str = "float32") -> str:
    """e.g. mlm_step_cpu (the default MiniLM float32 run), mlm_step_bert-base_bf16_cuda."""
    parts = [kind] + ([size] if size != "minilm" else []) + ([{"bfloat16": "bf16"}.get(dtype, dtype)]
                                                             if dtype != "float32" else [])
    return "_".join(parts + [device_tag(device)])


def bert2bert_pair(size: dict[str, int]):
    """The decoding benchmarks' model: a transformers bert2bert `EncoderDecoderModel` with random
    weights (seed 0) and genbert's copy of it. Returns (transformers model, GenBert)."""
    import tempfile

    from transformers import BertConfig, BertLMHeadModel, BertModel, EncoderDecoderModel
    from transformers.utils import logging as hf_logging

    from genbert import GenBert
    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    ref = EncoderDecoderModel(encoder=BertModel(BertConfig(**size)),
                              decoder=BertLMHeadModel(BertConfig(**size, is_decoder=True, add_cross_attention=True)))
    with tempfile.TemporaryDirectory() as d:
        ref.config.decoder_start_token_id, ref.config.pad_token_id, ref.config.eos_token_id = 101, 0, 102
        ref.save_pretrained(d)
        return ref, GenBert.from_pretrained(d)


def decoding_sources(vocab: int, batch: int, length: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The decoding benchmarks' sources: (batch, length) ids and attention mask, every other row
    right-padded (16 tokens more per row), and the rows' real lengths."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(max(200, vocab // 30), vocab - 1, (batch, length), generator=g)
    lengths = [length if i % 2 == 0 else max(2, length - 16 * (i + 1)) for i in range(batch)]
    am = torch.zeros(batch, length, dtype=torch.long)
    for i, n in enumerate(lengths):
        am[i, :n] = 1
    return ids.masked_fill(am == 0, 0), am, lengths
