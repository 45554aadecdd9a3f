"""Every way of making BERT generate, from one checkpoint, on one budget: the comparison.

A *way* is a name and a set of :class:`~genbert.recipes.seq2seq.Seq2SeqRecipe` overrides (its
scheme, objective, decoder initialisation); every way runs through :func:`seq2seq.run`, the path a
user's own ``train_summarization.py`` run takes, from the same base recipe (the budget). Each
(task, way, seed) result is written atomically to its own JSON file in ``RESULTS/`` as soon as it
is finished; a run that is interrupted resumes at the first missing result, and the report
(``comparison.md``, ``comparison.png``, ``comparison.json``) is assembled from whatever results exist.
"""
from __future__ import annotations

import json
import shlex
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from . import common as C
from . import seq2seq as S
from .common import UsageError

PROG = "compare_schemes.py"


@dataclass(frozen=True)
class Way:
    name: str
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)  # Seq2SeqRecipe fields


WAYS: tuple[Way, ...] = (
    Way("prefix-next-token", "prefix LM, next-token targets", {"scheme": "prefix", "objective": "next-token"}),
    Way("prefix-masked-target", "prefix LM, masked targets, mask-predict decoding",
        {"scheme": "prefix", "objective": "masked-target"}),
    Way("prefix-pseudo-mask", "prefix LM, pseudo-masks (UniLM s2s-ft)", {"scheme": "prefix", "objective": "pseudo-mask"}),
    Way("causal", "causal mask over source and target", {"scheme": "causal"}),
    Way("bert2bert", "encoder-decoder, decoder from BERT", {"scheme": "encoder-decoder", "decoder_init": "bert"}),
    Way("bertshare", "encoder-decoder, decoder shares the encoder",
        {"scheme": "encoder-decoder", "decoder_init": "shared"}),
    Way("bert2rnd", "encoder-decoder, random decoder", {"scheme": "encoder-decoder", "decoder_init": "random"}),
    Way("random-init", "prefix pseudo-mask from random weights of the same size",
        {"scheme": "prefix", "objective": "pseudo-mask", "random_weights": True}),
)
WAY_NAMES = tuple(w.name for w in WAYS)
# 2 CPU cores, under an hour for all eight ways
QUICK = {"max_steps": 300, "mlm_warmup_steps": 100, "limit_eval": 100}


def parse_ways(text: Optional[str]) -> list[Way]:
    if not text:
        return list(WAYS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in WAY_NAMES]
    if unknown or not names:
        raise UsageError(f"--ways {text!r}: unknown way(s) {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(WAY_NAMES)}")
    by_name = {w.name: w for w in WAYS}
    return [by_name[n] for n in dict.fromkeys(names)]


def result_path(results_dir: Path, task: str, way: str, seed: int) -> Path:
    return Path(results_dir) / f"{task}-{way}-seed{seed}.json"


def run_way(way: Way, base: S.Seq2SeqRecipe, seed: int, work_dir: Path, device: Optional[str], progress: bool,
            log: Callable[[str], None]) -> dict[str, Any]:
    """Train and evaluate one way (one seed) through the seq2seq recipe; its result record."""
    recipe = replace(base, **way.overrides, seed=seed, save_steps=0)
    recipe.check()
    out = Path(work_dir) / f"{way.name}-seed{seed}"
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    r = S.run(recipe, C.RunOptions(output_dir=out, device=device, no_progress=not progress),
              keep_checkpoints=False, log=lambda m: log(f"[{way.name}] {m}") if m else None)
    wall = time.perf_counter() - t0
    train = r["train"]
    return {"way": way.name, "description": way.description, "seed": seed, "task": r["task"],
            "scheme": recipe.scheme, "objective": recipe.seq2seq_objective,
            "decoder_init": recipe.decoder_init if recipe.scheme == "encoder-decoder" else None,
            "random_weights": recipe.random_weights, "parameters": r["parameters"],
            "mlm_warmup_steps": recipe.mlm_warmup_steps if recipe.scheme != "encoder-decoder" else 0,
            "warmup_s": round(r["warmup_s"], 2), "train_s": train["elapsed_s"], "train_steps": train["steps"],
            "train_loss": train["final_loss"], "train_tokens_per_s": train["tokens_per_s"],
            "validation": r["scores"], "baselines": r["baselines"], "decode": r["decode"],
            "num_examples": r["num_examples"], "wall_s": round(wall, 1), "recipe": C.recipe_dict(recipe),
            "machine": C.machine_description()}


def run_comparison(base: S.Seq2SeqRecipe, ways: Sequence[Way], seeds: Sequence[int], results_dir: Path,
                   work_dir: Path, device: Optional[str] = None, progress: bool = False,
                   log: Callable[[str], None] = C.say) -> list[dict[str, Any]]:
    """Every (way, seed) result, training those not yet in ``results_dir`` (each written as soon as
    it is finished, so an interrupted comparison resumes at the first missing one)."""
    from ..io import write_json
    task = base.task or ("translation" if base.dataset == "bible-en-fr" else "summarization")
    results = []
    for way in ways:
        for seed in seeds:
            path = result_path(results_dir, task, way.name, seed)
            if path.is_file():
                log(f"[{way.name}] seed {seed}: done before ({path})")
                results.append(json.loads(path.read_text(encoding="utf-8")))
                continue
            rec = run_way(way, base, seed, work_dir, device, progress, log)
            write_json(path, rec)
            v = rec["validation"] or {}
            log(f"[{way.name}] seed {seed}: ROUGE-L {v.get('rougeL', float('nan')):.2f}, "
                f"trained {rec['train_s']:.0f}s (+{rec['warmup_s']:.0f}s MLM warm-up); wrote {path}")
            results.append(rec)
    return results


def load_results(results_dir: Path) -> list[dict[str, Any]]:
    """Every result file in ``results_dir`` (in WAYS order, then seed)."""
    recs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(results_dir).glob("*-seed*.json"))]
    order = {n: i for i, n in enumerate(WAY_NAMES)}
    return sorted(recs, key=lambda r: (r["task"], order.get(r["way"], len(order)), r["seed"]))


def assemble(results: Sequence[dict[str, Any]], base: S.Seq2SeqRecipe) -> dict[str, Any]:
    """The report's data: one entry per way with its seeds, means, and the lead baselines."""
    ways: dict[str, dict[str, Any]] = {}
    for r in results:
        w = ways.setdefault(r["way"], {k: r[k] for k in ("description", "scheme", "objective", "decoder_init",
                                                          "random_weights", "parameters", "mlm_warmup_steps")}
                            | {"name": r["way"], "task": r["task"], "seeds": []})
        w["seeds"].append({k: r[k] for k in ("seed", "validation", "train_s", "warmup_s", "train_steps",
                                             "train_loss", "train_tokens_per_s", "decode", "num_examples",
                                             "machine")})
    for w in ways.values():
        vals = [s["validation"]["rougeL"] for s in w["seeds"] if s["validation"]]
        w["validation_rougeL_mean"] = sum(vals) / len(vals) if vals else None
    baselines = next((r["baselines"] for r in results if r.get("baselines")), {})
    return {"task": results[0]["task"] if results else None, "dataset": base.dataset or base.train,
            "budget": C.recipe_dict(base), "baselines": baselines, "ways": list(ways.values())}


def format_markdown(report: dict[str, Any], command: str) -> str:
    b = report["budget"]
    lines = ["# Ways of making BERT generate: one checkpoint, one budget", "",
             f"Checkpoint `{b['init']}`, dataset `{report['dataset']}`, task {report['task']}.", "",
             "| way | scheme | objective | decoder init | seeds | parameters (M) | train time (s) "
             "| decode tokens/s | ROUGE-1 | ROUGE-2 | ROUGE-L |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]

    def mean(w: dict[str, Any], f: Callable[[dict[str, Any]], Any]) -> Optional[float]:
        xs = [f(s) for s in w["seeds"] if f(s) is not None]
        return sum(xs) / len(xs) if xs else None

    def fmt(v: Optional[float], spec: str) -> str:
        return "—" if v is None else format(v, spec)
    for w in report["ways"]:
        dec = w["decoder_init"] or ("random weights" if w["random_weights"] else "—")
        train = mean(w, lambda s: s["train_s"] + s["warmup_s"])
        score = {k: mean(w, lambda s, k=k: (s["validation"] or {}).get(k)) for k in ("rouge1", "rouge2", "rougeL")}
        lines.append(f"| {w['name']} | {w['scheme']} | {w['objective']} | {dec} | {len(w['seeds'])} "
                     f"| {w['parameters'] / 1e6:.2f} | {fmt(train, '.1f')} "
                     f"| {fmt(mean(w, lambda s: (s['decode'] or {}).get('tokens_per_s')), '.0f')} "
                     f"| {fmt(score['rouge1'], '.2f')} | {fmt(score['rouge2'], '.2f')} | {fmt(score['rougeL'], '.2f')} |")
    lead = (report.get("baselines") or {}).get("lead-10") or {}
    if lead:
        lines.append(f"| *lead-10 baseline* | — | — | — | — | — | — | — | {lead['rouge1']:.2f} | {lead['rouge2']:.2f} "
                     f"| {lead['rougeL']:.2f} |")
    machines = sorted({s["machine"] for w in report["ways"] for s in w["seeds"]})
    lines += ["", "ROUGE: mean F1 x 100 (rouge_score, Porter stemming) on the validation pairs, averaged over the "
              "seeds; lead-10: the first ten words of the source. Train time includes the MLM warm-up. Decode "
              "tokens/s: generated tokens / generation wall time on the validation set.", "",
              "## Budget (the same for every way)", "",
              f"- {b['max_steps']} optimizer steps, batch {b['batch_size']}, lr {b['lr']:g}, warm-up {b['warmup']:g}, "
              f"weight decay {b['weight_decay']:g}, label smoothing {b['label_smoothing']:g}",
              f"- sources {b['max_source_length']} tokens, targets {b['max_target_length']} tokens "
              "(special tokens included)",
              f"- MLM warm-up: {b['mlm_warmup_steps']} steps on the training sources before seq2seq training "
              "(prefix and causal ways, random-init included; not the encoder-decoder ways)",
              f"- evaluation: {'all' if b['limit_eval'] is None else 'the first ' + str(b['limit_eval'])} validation "
              f"pairs, {b['num_beams']} beams, no-repeat n-gram {b['no_repeat_ngram_size']}, length penalty "
              f"{b['length_penalty']:g}", "", "## Machine", "", *[f"- {m}" for m in machines], "",
              "## Command", "", "```", command, "```", ""]
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    """ROUGE-L per way (mean over seeds, each seed a dot), the lead-10 baseline as a line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..io import atomic_write
    ways = report["ways"][::-1]
    fig = Figure(figsize=(7, 0.45 * len(ways) + 1.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    means = [w["validation_rougeL_mean"] or 0.0 for w in ways]
    ax.barh([w["name"] for w in ways], means, color="tab:blue", alpha=0.6)
    for y, w in enumerate(ways):
        ax.plot([s["validation"]["rougeL"] for s in w["seeds"] if s["validation"]],
                [y] * sum(1 for s in w["seeds"] if s["validation"]), "k.", ms=4)
        ax.text(means[y], y, f" {means[y]:.1f}", va="center", fontsize=8)
    lead = ((report.get("baselines") or {}).get("lead-10") or {}).get("rougeL")
    if lead is not None:
        ax.axvline(lead, color="tab:red", linestyle="--", label=f"lead-10 baseline ({lead:.1f})")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("ROUGE-L (validation)")
    b = report["budget"]
    ax.set_title(f"{report['dataset']}: {b['max_steps']} steps each, batch {b['batch_size']}", fontsize=10)
    ax.set_xlim(0, max(means + [lead or 0, 1.0]) * 1.15)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def write_report(report: dict[str, Any], output_dir: Path, command: str) -> dict[str, Path]:
    from ..io import write_json, write_text
    output_dir = Path(output_dir)
    paths = {"markdown": output_dir / "comparison.md", "png": output_dir / "comparison.png",
             "json": output_dir / "comparison.json"}
    write_json(paths["json"], {**report, "command": command})
    plot(report, paths["png"])
    write_text(paths["markdown"], format_markdown(report, command))
    return paths


# --------------------------------------------------------------------------- command line
def build_parser(prog: str = PROG, doc: str = "") -> Any:
    p = C.new_parser(prog, doc)
    g = p.add_argument_group("comparison")
    g.add_argument("--ways", help=f"comma-separated subset of: {','.join(WAY_NAMES)} (default all)")
    g.add_argument("--seeds", type=int, nargs="+", help="training seeds of every way (default: --seed)")
    g.add_argument("--quick", action="store_true",
                   help="2 CPU cores, under an hour: " + ", ".join(f"--{k.replace('_', '-')} {v}"
                                                                   for k, v in QUICK.items()))
    g.add_argument("--output-dir", type=Path, default=Path("docs"),
                   help="the report: comparison.md, .png, .json (default docs)")
    g.add_argument("--results-dir", type=Path, help="one JSON per (task, way, seed) (default OUTPUT/comparison)")
    g.add_argument("--work-dir", type=Path, default=Path("runs/compare"), help="training runs (default runs/compare)")
    g.add_argument("--device", help="cpu, cuda (default: cuda if available)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    C.add_recipe_arguments(p, S.Seq2SeqRecipe, exclude=("scheme", "objective", "decoder_init", "random_weights"))
    return p


def main(argv: Optional[list[str]] = None, prog: str = PROG, doc: str = "") -> int:
    import sys
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(prog, doc).parse_args(argv)

    def body() -> int:
        ways = parse_ways(args.ways)
        explicit = C.explicit_values(args, S.Seq2SeqRecipe)
        for k in ("train", "validation"):
            if explicit.get(k) is not None:
                explicit[k] = str(Path(explicit[k]).resolve())
        base = S.Seq2SeqRecipe.resolve({**(QUICK if args.quick else {}), **explicit})
        base.check()
        C.check_device(args.device)
        seeds = args.seeds or [base.seed]
        results_dir = args.results_dir or Path(args.output_dir) / "comparison"
        C.say(f"ways: {', '.join(w.name for w in ways)}; seeds {seeds}; results in {results_dir}")
        run_comparison(base, ways, seeds, results_dir, args.work_dir, args.device, not args.no_progress)
        report = assemble(load_results(results_dir), base)
        command = "python scripts/compare_schemes.py" + (" " + shlex.join(argv) if argv else "")
        paths = write_report(report, args.output_dir, command)
        C.say("")
        C.say(format_markdown(report, command).split("\n\n")[2])  # the table
        C.say(f"\nwrote {paths['markdown']}, {paths['png']} and {paths['json']}")
        return 0

    return C.main_entry(prog, body)
