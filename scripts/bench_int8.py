#!/usr/bin/env python
"""int8 decoding quality and speed on a trained model: the same test set decoded with float32
and with int8 weights (`TextGenerator.from_pretrained(dir, dtype="int8")`), scored the same way.

    python scripts/bench_int8.py runs/bbc/final --dataset bbc-headlines --split test
    python scripts/bench_int8.py runs/bible/final --dataset bible-en-fr --split test
    python scripts/bench_int8.py MODEL_DIR --data test.jsonl --task translation --limit 500

Reports ROUGE (summarization) or BLEU/chrF (translation) of both, the difference in ROUGE-L or
BLEU, the share of inputs whose int8 output is identical to the float32 one, and the decoding
time of each (tokenization included, same process, same threads). Exit status 1 when the
difference exceeds `--tolerance` (default 0.3 points), 0 otherwise. Writes
int8_quality_NAME.md/.json (default docs/benchmarks/).
"""
import argparse
import os
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

import bench_common as bc  # noqa: E402
from genbert.config import TASKS  # noqa: E402
from genbert.data.datasets import NAMED_DATASETS, SPLITS  # noqa: E402

MAIN_METRIC = {"summarization": "rougeL", "translation": "bleu"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="a model directory (genbert.TextGenerator)")
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", type=Path, help="JSONL/JSON/CSV/TSV test pairs (source, target)")
    data.add_argument("--dataset", choices=NAMED_DATASETS)
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument("--task", choices=TASKS, help="required with --data")
    p.add_argument("--source-field", default="source")
    p.add_argument("--target-field", default="target")
    p.add_argument("--limit", type=int, help="only the first N pairs")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-beams", type=int)
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--max-source-length", type=int)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--tolerance", type=float, default=0.3, help="largest allowed |int8 - float32| in ROUGE-L or BLEU")
    p.add_argument("--output-dir", default="docs/benchmarks")
    p.add_argument("--name", help="report name (default: the dataset or data file stem)")
    a = p.parse_args()
    if a.data is not None and a.task is None:
        p.error("--task is required with --data")
    if a.threads:
        torch.set_num_threads(a.threads)
    from genbert import metrics
    from genbert.recipes.benchmark import read_data
    from genbert.textgen import TextGenerator
    ns = types.SimpleNamespace(dataset=a.dataset, split=a.split, data=a.data, task=a.task, limit=a.limit,
                               source_field=a.source_field, target_field=a.target_field)
    sources, targets = read_data(ns)
    task = ns.task
    gen_kw = {k: v for k, v in dict(num_beams=a.num_beams, max_new_tokens=a.max_new_tokens,
                                    max_source_length=a.max_source_length).items() if v is not None}
    outputs, seconds, scores = {}, {}, {}
    for dtype in ("float32", "int8"):
        gen = TextGenerator.from_pretrained(a.model, device="cpu", dtype=dtype)
        gen.generate(sources[:2], batch_size=a.batch_size, **gen_kw)  # warm-up (packs, allocator)
        t = time.perf_counter()
        outputs[dtype] = gen.generate(sources, batch_size=a.batch_size, **gen_kw)
        seconds[dtype] = time.perf_counter() - t
        scores[dtype] = metrics.score(task, outputs[dtype], targets)
        settings = {k: gen.settings[k] for k in ("num_beams", "max_new_tokens", "max_source_length")
                    if k in gen.settings}
    key = MAIN_METRIC[task]
    delta = scores["int8"][key] - scores["float32"][key]
    identical = sum(x == y for x, y in zip(outputs["float32"], outputs["int8"])) / len(sources)
    ok = abs(delta) <= a.tolerance
    name = a.name or (a.dataset + "_" + a.split if a.dataset else a.data.stem)
    res = {"model": str(a.model), "data": f"{a.dataset}:{a.split}" if a.dataset else str(a.data), "task": task,
           "num_examples": len(sources), "generation": {**settings, **gen_kw, "batch_size": a.batch_size},
           "scores": {d: {k: v for k, v in s.items() if not k.endswith("signature")} for d, s in scores.items()},
           "main_metric": key, "delta": delta, "tolerance": a.tolerance, "within_tolerance": ok,
           "identical_outputs": identical, "seconds": seconds, "speedup": seconds["float32"] / seconds["int8"],
           "machine": bc.machine_name("cpu", torch.get_num_threads()), "versions": bc.versions(),
           "examples": [{"float32": x, "int8": y} for x, y in list(zip(outputs["float32"], outputs["int8"]))[:5]]}
    shown = ["rouge1", "rouge2", "rougeL"] if task == "summarization" else ["bleu", "chrf"]
    md = (f"# int8 decoding quality: {res['data']}\n\nCommand: `python scripts/bench_int8.py {a.model} "
          f"{'--dataset ' + a.dataset + ' --split ' + a.split if a.dataset else '--data ' + str(a.data)}`\n\n"
          f"Machine: {res['machine']}; torch {torch.__version__}. {len(sources)} inputs, generation "
          f"{res['generation']}.\n\n| weights | " + " | ".join(shown) + " | decoding time (s) |\n|---|"
          + "---|" * (len(shown) + 1) + "\n")
    for d in ("float32", "int8"):
        md += f"| {d} | " + " | ".join(f"{scores[d][k]:.2f}" for k in shown) + f" | {seconds[d]:.1f} |\n"
    md += (f"\n{key}: int8 - float32 = {delta:+.2f} ({'within' if ok else 'NOT within'} ±{a.tolerance}). "
           f"Identical outputs: {100 * identical:.1f}% of {len(sources)}. int8 decodes "
           f"{res['speedup']:.2f}x faster here.\n")
    path = bc.write_report(a.output_dir, f"int8_quality_{name}", md, res)
    print(md)
    print(f"wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
