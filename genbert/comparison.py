"""Compare the ways of making BERT generate, from one checkpoint, under one training budget.

Each *way* is a (scheme, objective, decoder init) choice of :mod:`genbert.summarization`; every
way is trained with the same :class:`Budget` (steps, batch, learning-rate schedule, lengths,
seed) through the summarization library (``build_model``, ``make_collator``, ``Trainer``,
``mlm_warmup``, ``evaluate``), then scored with ROUGE beside the lead-10 baseline.
``scripts/compare_schemes.py`` is the command line; :func:`run_comparison` does the work and
:func:`write_report` writes ``comparison.md`` / ``comparison.png`` / ``comparison.json``.
"""
from __future__ import annotations

import os
import platform
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from . import summarization as S
from .io import atomic_write, write_json, write_text

__all__ = ["WAYS", "WAY_NAMES", "Way", "Budget", "QUICK", "FULL", "parse_ways", "train_and_evaluate_way",
           "run_comparison", "format_markdown", "plot_rouge", "write_report", "machine_description"]


@dataclass(frozen=True)
class Way:
    name: str
    scheme: str  # summarization.SCHEMES
    objective: str  # summarization.OBJECTIVES (prefix) / "next-token" (causal, encoder-decoder)
    decoder_init: str = "bert"  # encoder-decoder only
    random_weights: bool = False  # re-initialise every weight (same config and tokenizer)
    description: str = ""


WAYS: tuple[Way, ...] = (
    Way("prefix-next-token", "prefix", "next-token", description="prefix LM, next-token targets"),
    Way("prefix-masked-target", "prefix", "masked-target", description="prefix LM, masked targets, mask-predict decoding"),
    Way("prefix-pseudo-mask", "prefix", "pseudo-mask", description="prefix LM, pseudo-masks (UniLM)"),
    Way("causal", "causal", "next-token", description="causal mask over source and target"),
    Way("bert2bert", "encoder-decoder", "next-token", "bert", description="encoder-decoder, decoder from BERT"),
    Way("bertshare", "encoder-decoder", "next-token", "shared", description="encoder-decoder, decoder shares the encoder"),
    Way("bert2rnd", "encoder-decoder", "next-token", "random", description="encoder-decoder, random decoder"),
    Way("random-init", "prefix", "pseudo-mask", random_weights=True,
        description="prefix pseudo-mask from random weights of the same size"),
)
WAY_NAMES = tuple(w.name for w in WAYS)


@dataclass
class Budget:
    """What every way gets alike."""
    steps: int = 3000
    batch_size: int = 32
    lr: float = 2e-4
    max_source_length: int = 128
    max_target_length: int = 32
    limit_eval: Optional[int] = None  # None: the whole validation set
    mlm_warmup_steps: int = 200  # prefix/causal ways only; 0 = off
    seed: int = 0
    warmup: float = S.DEFAULT_RECIPE["warmup"]
    weight_decay: float = S.DEFAULT_RECIPE["weight_decay"]
    label_smoothing: float = S.DEFAULT_RECIPE["label_smoothing"]
    max_grad_norm: float = S.DEFAULT_RECIPE["max_grad_norm"]
    new_param_lr_multiplier: float = S.DEFAULT_RECIPE["new_param_lr_multiplier"]
    mask_prob: float = S.DEFAULT_RECIPE["mask_prob"]
    num_beams: int = S.DEFAULT_RECIPE["num_beams"]
    no_repeat_ngram_size: int = S.DEFAULT_RECIPE["no_repeat_ngram_size"]
    length_penalty: float = S.DEFAULT_RECIPE["length_penalty"]
    eval_batch_size: int = S.DEFAULT_RECIPE["eval_batch_size"]

    def check(self) -> None:
        def need(ok: bool, flag: str, what: str) -> None:
            if not ok:
                raise S.UsageError(f"--{flag}={getattr(self, flag.replace('-', '_'))}: {what}")
        for f in ("steps", "batch-size", "num-beams", "eval-batch-size"):
            need(getattr(self, f.replace("-", "_")) >= 1, f, "must be >= 1")
        need(self.limit_eval is None or self.limit_eval >= 1, "limit-eval", "must be >= 1")
        need(self.lr > 0, "lr", "must be > 0")
        need(self.max_source_length >= 3, "max-source-length", "must be >= 3 ([CLS], a token, [SEP])")
        need(self.max_target_length >= 2, "max-target-length", "must be >= 2 (a token and [SEP])")
        need(self.mlm_warmup_steps >= 0, "mlm-warmup-steps", "must be >= 0 (0: off)")

    def recipe(self, way: Way) -> dict[str, Any]:
        """The summarization recipe of ``way`` under this budget (for generation_settings)."""
        return {**S.DEFAULT_RECIPE, **asdict(self), "max_steps": self.steps, "scheme": way.scheme,
                "objective": way.objective, "decoder_init": way.decoder_init}


# 2 CPU cores, under an hour for all eight ways
QUICK = dict(steps=300, batch_size=16, max_source_length=64, max_target_length=24, limit_eval=100,
             mlm_warmup_steps=100)
# meant for a GPU
FULL = dict(steps=3000, batch_size=32, max_source_length=128, max_target_length=32, limit_eval=None,
            mlm_warmup_steps=200)


def parse_ways(text: Optional[str]) -> list[Way]:
    if not text:
        return list(WAYS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in WAY_NAMES]
    if unknown or not names:
        raise S.UsageError(f"--ways {text!r}: unknown way(s) {', '.join(unknown) or '(none)'}; "
                           f"choose from {', '.join(WAY_NAMES)}")
    by_name = {w.name: w for w in WAYS}
    return [by_name[n] for n in dict.fromkeys(names)]


def _count_generated(model, pad_id: int) -> tuple[Callable[[], None], dict[str, int]]:
    """Wrap ``model.generate`` to count the generated (non-pad) tokens; returns (undo, counter)."""
    counter = {"tokens": 0}
    original = model.generate

    def counting(*args, **kwargs):
        out = original(*args, **kwargs)
        counter["tokens"] += int((out != pad_id).sum())
        return out

    model.generate = counting

    def undo() -> None:
        del model.generate  # the instance attribute; the class method shows again

    return undo, counter


def train_and_evaluate_way(way: Way, init: str, data: S.SummarizationData, budget: Budget, work_dir: Path,
                           device: Optional[str] = None, progress: bool = False,
                           log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build, (warm up,) train and evaluate one way; returns its row of the comparison."""
    from .model import GenBert
    from .textgen import TextGenerator
    from .training import TrainConfig, Trainer

    out = Path(work_dir) / way.name
    if out.exists():
        shutil.rmtree(out)
    objective = S.collator_objective(way.scheme, way.objective)
    torch.manual_seed(budget.seed)
    built = S.build_model(init, way.scheme, objective, way.decoder_init)
    model, tokenizer, new_params = built.model, built.tokenizer, set(built.new_params)
    if way.random_weights:
        torch.manual_seed(budget.seed)
        model = GenBert(model.config)  # same config (extra["objective"] included), fresh weights
        new_params = set()  # everything is new: one learning rate
    S.check_lengths(model, objective, budget.max_source_length, budget.max_target_length)
    recipe = budget.recipe(way)
    settings = S.generation_settings(recipe, objective)
    pairs = S.encode_pairs(tokenizer, data.train, budget.max_source_length, budget.max_target_length)
    collate = S.make_collator(tokenizer, objective, budget.max_source_length, budget.max_target_length,
                              budget.mask_prob, budget.seed)
    warmup_steps = budget.mlm_warmup_steps if way.scheme != "encoder-decoder" else 0
    lr_new = frozenset() if warmup_steps else frozenset(new_params)
    try:
        config = TrainConfig(lr=budget.lr, weight_decay=budget.weight_decay, warmup=budget.warmup,
                             max_steps=budget.steps, batch_size=budget.batch_size,
                             max_grad_norm=budget.max_grad_norm, label_smoothing=budget.label_smoothing,
                             seed=budget.seed, save_steps=0, save_total_limit=1, log_steps=10,
                             new_param_lr_multiplier=budget.new_param_lr_multiplier, new_params=lr_new,
                             device=device, progress=progress)
        config.validate()
        trainer = Trainer(model, pairs, collate, config, out, lengths=[len(s) + len(t) for s, t in pairs])
    except ValueError as e:
        raise S.UsageError(str(e)) from None
    log(f"[{way.name}] {'random weights, ' if way.random_weights else ''}{built.description}; "
        f"scheme {way.scheme}, objective {objective}"
        + (f", decoder init {way.decoder_init}" if way.scheme == "encoder-decoder" else ""))
    warmup_s = 0.0
    if warmup_steps:
        t0 = time.perf_counter()
        S.mlm_warmup(model, tokenizer, [r["source"] for r in data.train], warmup_steps, new_params,
                     out / "mlm-warmup", budget.seed, device, progress)
        warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = trainer.train()
    train_s = time.perf_counter() - t0
    for ckpt in out.glob("checkpoint-*"):  # the comparison keeps scores, not weights
        shutil.rmtree(ckpt, ignore_errors=True)

    generator = TextGenerator(model, tokenizer, settings, device=trainer.device)
    with warnings.catch_warnings():  # one untimed call first: one-time start-up costs stay out of tokens/s
        warnings.simplefilter("ignore")
        generator.generate([r["source"] for r in data.validation[:1]], batch_size=1)
    undo, counter = _count_generated(model, tokenizer.pad_token_id)
    timed = {"s": 0.0}
    generate = generator.generate

    def timed_generate(*args, **kwargs):  # generation wall time only (evaluate also scores ROUGE)
        t0 = time.perf_counter()
        try:
            return generate(*args, **kwargs)
        finally:
            timed["s"] += time.perf_counter() - t0

    generator.generate = timed_generate
    try:
        preds, scores, baselines = S.evaluate(generator, data.validation, budget.eval_batch_size, progress=progress)
    finally:
        undo()
        del generator.generate
    decode_s = timed["s"]
    S.write_evaluation(out, data.validation, preds, scores, baselines,
                       {**settings, "way": way.name, "train_steps": summary["steps"]})
    row = {
        "way": way.name, "description": way.description, "scheme": way.scheme, "objective": objective,
        "decoder_init": way.decoder_init if way.scheme == "encoder-decoder" else None,
        "random_weights": way.random_weights, "parameters": model.num_parameters(),
        "mlm_warmup_steps": warmup_steps, "mlm_warmup_s": warmup_s, "train_steps": summary["steps"],
        "train_s": train_s, "train_loss": summary["final_loss"], "decode_s": decode_s,
        "generated_tokens": counter["tokens"],
        "decode_tokens_per_s": counter["tokens"] / decode_s if decode_s > 0 else None,
        "num_examples": len(data.validation), **{k: scores[k] for k in ("rouge1", "rouge2", "rougeL", "rougeLsum")},
        "baselines": baselines,
    }
    log(f"[{way.name}] ROUGE-1/2/L {row['rouge1']:.2f}/{row['rouge2']:.2f}/{row['rougeL']:.2f}; "
        f"trained {train_s:.0f}s (+{warmup_s:.0f}s MLM warm-up); {row['decode_tokens_per_s'] or 0:.0f} tokens/s")
    return row


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    desc = f"{platform.system()} {platform.machine()}, {cpu}, {n} CPU core(s) available, torch {torch.__version__}"
    if torch.cuda.is_available():
        desc += f", GPU {torch.cuda.get_device_name(0)}"
    else:
        desc += f", no GPU ({torch.get_num_threads()} torch threads)"
    return desc


def run_comparison(init: str, data: S.SummarizationData, budget: Budget, ways: Sequence[Way], work_dir: Path,
                   device: Optional[str] = None, progress: bool = False,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train and evaluate every way; returns the comparison (rows, lead-10 baseline, budget)."""
    budget.check()
    if not data.validation:
        raise S.UsageError("the validation set is empty")
    start = time.perf_counter()
    rows = [train_and_evaluate_way(w, init, data, budget, work_dir, device, progress, log) for w in ways]
    baselines = rows[0]["baselines"] if rows else {}
    for r in rows:
        r.pop("baselines", None)
    return {"init": init, "dataset": data.name, "train_examples": len(data.train),
            "validation_examples": len(data.validation), "budget": asdict(budget),
            "baselines": baselines, "lead10": baselines.get("lead-10", {}), "results": rows,
            "machine": machine_description(), "wall_s": round(time.perf_counter() - start, 1)}


def _fmt(v: Any, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def format_markdown(result: dict[str, Any], command: str) -> str:
    b = result["budget"]
    lines = [
        "# Ways of making BERT generate: one checkpoint, one budget",
        "",
        f"Checkpoint `{result['init']}`, dataset `{result['dataset']}` ({result['train_examples']} training pairs, "
        f"{result['validation_examples']} validation pairs scored).",
        "",
        "| way | scheme | objective | decoder init | MLM warm-up steps | parameters (M) | train time (s) "
        "| decode tokens/s | ROUGE-1 | ROUGE-2 | ROUGE-L |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["results"]:
        dec = r["decoder_init"] or ("random weights" if r["random_weights"] else "—")
        train = r["train_s"] + r["mlm_warmup_s"]
        lines.append(f"| {r['way']} | {r['scheme']} | {r['objective']} | {dec} | {r['mlm_warmup_steps']} "
                     f"| {r['parameters'] / 1e6:.2f} | {train:.1f}"
                     + (f" ({r['mlm_warmup_s']:.1f} warm-up)" if r["mlm_warmup_steps"] else "")
                     + f" | {_fmt(r['decode_tokens_per_s'], '.0f')} | {r['rouge1']:.2f} | {r['rouge2']:.2f} "
                       f"| {r['rougeL']:.2f} |")
    lead = result.get("lead10") or {}
    if lead:
        lines.append(f"| *lead-10 baseline* | — | — | — | — | — | — | — | {lead['rouge1']:.2f} | {lead['rouge2']:.2f} "
                     f"| {lead['rougeL']:.2f} |")
    lines += [
        "",
        "ROUGE: mean F1 x 100 (rouge_score, Porter stemming) on the validation pairs; lead-10: the first ten words "
        "of the source. Train time includes the MLM warm-up (shown in brackets). Decode tokens/s: generated tokens "
        f"/ generation wall time on the validation set ({b['num_beams']} beams, batch {b['eval_batch_size']}).",
        "",
        "## Budget (the same for every way)",
        "",
        f"- {b['steps']} optimizer steps, batch {b['batch_size']}, lr {b['lr']:g} (linear warm-up over "
        f"{b['warmup']:g} {'steps' if b['warmup'] >= 1 else 'of the steps'}, then linear decay; {b['new_param_lr_multiplier']:g}x for newly initialised weights when there is no MLM "
        f"warm-up), weight decay {b['weight_decay']:g}, label smoothing {b['label_smoothing']:g}, seed {b['seed']}",
        f"- sources {b['max_source_length']} tokens, targets {b['max_target_length']} tokens (special tokens included)",
        f"- MLM warm-up: {b['mlm_warmup_steps']} steps on the training sources before seq2seq training "
        "(prefix and causal ways, random-init included; not the encoder-decoder ways)",
        f"- evaluation: {'all' if b['limit_eval'] is None else 'the first ' + str(b['limit_eval'])} validation pairs, "
        f"{b['num_beams']} beams, no-repeat n-gram {b['no_repeat_ngram_size']}, length penalty {b['length_penalty']:g}",
        "",
        "## Machine",
        "",
        result["machine"] + (f"; all ways took {result['wall_s'] / 60:.0f} minutes wall ({result['wall_s']:.0f} s)"
                             if result.get("wall_s") else ""),
        "",
        "## Command",
        "",
        "```",
        command,
        "```",
        "",
    ]
    return "\n".join(lines)


def plot_rouge(result: dict[str, Any], path: Path) -> None:
    """Horizontal bars of ROUGE-L per way, the lead-10 baseline as a vertical line (atomic write)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["results"]
    names = [r["way"] for r in rows][::-1]
    values = [r["rougeL"] for r in rows][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.5))
    ax.barh(names, values, color="tab:blue")
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.1f}", va="center", fontsize=8)
    lead = (result.get("lead10") or {}).get("rougeL")
    if lead is not None:
        ax.axvline(lead, color="tab:red", linestyle="--", label=f"lead-10 baseline ({lead:.1f})")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("ROUGE-L")
    b = result["budget"]
    ax.set_title(f"{result['dataset']}: {b['steps']} steps each, batch {b['batch_size']}", fontsize=10)
    ax.set_xlim(0, max(values + [lead or 0, 1.0]) * 1.15)
    fig.tight_layout()

    def _save(tmp: str) -> None:
        fig.savefig(tmp, format="png", dpi=120)
    try:
        atomic_write(path, _save)
    finally:
        plt.close(fig)


def write_report(result: dict[str, Any], output_dir: Path, command: str) -> dict[str, Path]:
    output_dir = Path(output_dir)
    paths = {"markdown": output_dir / "comparison.md", "png": output_dir / "comparison.png",
             "json": output_dir / "comparison.json"}
    write_json(paths["json"], {**result, "command": command})
    plot_rouge(result, paths["png"])
    write_text(paths["markdown"], format_markdown(result, command))
    return paths
