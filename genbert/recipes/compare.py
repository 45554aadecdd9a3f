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
from dataclasses import dataclass, field, fields, replace
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
    Way("bidirectional-diffusion", "BERT's own way: masked diffusion, iterative unmasking of a target block "
                                   "that fits the longest training target",
        {"scheme": "bidirectional"}),
    Way("random-init", "prefix pseudo-mask from random weights of the same size",
        {"scheme": "prefix", "objective": "pseudo-mask", "random_weights": True}),
)
WAY_NAMES = tuple(w.name for w in WAYS)
# the orderings the papers report, as (better, worse, who says so): each pair gets a paired interval
PAPER_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("bertshare", "bert2bert", "Rothe et al. 2020: BERTShare >= BERT2BERT"),
    ("bert2bert", "bert2rnd", "Rothe et al. 2020: BERT2BERT > BERT2Rnd"),
    ("bert2rnd", "random-init", "Rothe et al. 2020: BERT2Rnd > Rnd2Rnd (here: the random-weight control)"),
    ("prefix-pseudo-mask", "bert2bert", "UniLM: a prefix LM is competitive with an encoder-decoder at about half "
                                        "the parameters"),
)
# from scratch (translation) every way starts from random weights: the random-weight control is the
# pseudo-mask way again, and BERT2BERT's decoder copies a random encoder, i.e. it is BERT2Rnd
SCRATCH_SKIPS = ("random-init", "bert2bert")
SCRATCH_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("prefix-next-token", "bert2rnd", "UniLM: a prefix LM is competitive with an encoder-decoder at about half "
                                      "the parameters (from scratch: next-token prefix LM vs encoder-decoder)"),
    ("bertshare", "bert2rnd", "Rothe et al. 2020: sharing encoder and decoder weights costs nothing (from scratch)"),
)
# 2 CPU cores, under an hour for all eight ways
QUICK = {"max_steps": 300, "mlm_warmup_steps": 100, "limit_eval": 100}
# one model per way and seed unless --soup is given: a soup multiplies every way's training time alike
COMPARISON_DEFAULTS = {"soup": 1}


def task_of(base: S.Seq2SeqRecipe) -> str:
    from ..data.datasets import dataset_task
    return base.task or (dataset_task(base.dataset) if base.dataset else "summarization")


def default_ways(init: Optional[str]) -> list[Way]:
    """Every way that makes sense from ``init`` (from scratch, not those of SCRATCH_SKIPS)."""
    return [w for w in WAYS if not (init == "scratch" and w.name in SCRATCH_SKIPS)]


def parse_ways(text: Optional[str], init: Optional[str] = None) -> list[Way]:
    if not text:
        return default_ways(init)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in WAY_NAMES]
    if unknown or not names:
        raise UsageError(f"--ways {text!r}: unknown way(s) {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(WAY_NAMES)}")
    by_name = {w.name: w for w in WAYS}
    return [by_name[n] for n in dict.fromkeys(names)]


def result_path(results_dir: Path, task: str, way: str, seed: int) -> Path:
    return Path(results_dir) / f"{task}-{way}-seed{seed}.json"


def uses_shared_warmup(way: Way, base: S.Seq2SeqRecipe) -> bool:
    """Every way from the pretrained checkpoint starts from the one shared MLM warm-up (the
    encoder-decoder ways too: their decoder's LM head is a copy of the warmed head); the
    random-weight control has no pretrained head to warm up and trains its own."""
    return bool(base.mlm_warmup_steps) and base.init != "scratch" and not way.overrides.get("random_weights")


def shared_warmup(base: S.Seq2SeqRecipe, work_dir: Path, device: Optional[str], progress: bool,
                  log: Callable[[str], None]) -> Path:
    """The MLM warm-up of ``base.init``'s new head on the training sources, computed once for every
    way (a directory that is a valid --init; reused when it exists)."""
    from ..io import atomic_dir
    final = Path(work_dir) / "shared-mlm-warmup" / "final"
    if (final / "config.json").is_file():
        log(f"shared MLM warm-up: reusing {final}")
        return final
    recipe = replace(base, scheme="bidirectional", objective=None, copy_attention=None)
    data = S.load_data(recipe, need_validation=False)
    built = C.build_model(recipe.model_spec(recipe.task or data.task))
    log(f"shared MLM warm-up: {base.mlm_warmup_steps} steps on the training sources of {built.description}")
    S.mlm_warmup(built.model, built.tokenizer, [r["source"] for r in data.train], base.mlm_warmup_steps,
                 built.new_params, final.parent / "run", base.seed, device, progress)
    built.model.config.objective, built.model.config.decoding = None, "next-token"

    def write(d: Path) -> None:
        built.model.save_pretrained(d)
        built.tokenizer.save(d)
    atomic_dir(final, write)
    return final


def shared_warmup_seconds(warm: Optional[Path]) -> Optional[float]:
    """How long the shared warm-up took (the last elapsed_s of its log), None if unknown."""
    log = Path(warm).parent / "run" / "log.jsonl" if warm is not None else None
    if log is None or not log.is_file():
        return None
    lines = [line for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    return json.loads(lines[-1]).get("elapsed_s") if lines else None


def decode_grid(recipe: S.Seq2SeqRecipe, length: Optional[int] = None,
                task: str = "summarization") -> list[dict[str, Any]]:
    """The small decoding search every way gets on validation: beam size and length penalty, or
    for diffusion the number of passes, the order and the repeat handling (the autoregressive
    ways block repeated trigrams, the recipe's default)."""
    if recipe.scheme == "bidirectional":
        n = length or recipe.max_target_length  # the trained block (see seq2seq.fitted_block)
        # a pass per token (steps = n) costs what the autoregressive ways cost; past 32 tokens it
        # only multiplies the search time (a block of 80 at 80 passes: ~10 min per setting on 2 cores)
        steps = sorted({max(1, n // 4), max(1, n // 2)} | ({n} if n <= 32 else set()))
        # explicit, since the stored defaults collapse repeats and (for summarization) block content words
        repeats = [{"collapse_repeats": c, "no_repeat_content_words": False} for c in (False, True)]
        if task == "summarization":  # the content-word list is English; translation writes French
            repeats.append({"collapse_repeats": True, "no_repeat_content_words": True})
        return [{"steps": k, "order": o, **r} for k in steps for o in ("confidence", "left-to-right") for r in repeats]
    return [{"num_beams": 1}] + [{"num_beams": 4, "length_penalty": lp} for lp in (0.6, 1.0, 1.4)]


COPY_GRID = (0.0, 1.0, 2.0, 2.5, 3.0, 4.0)  # GenerationConfig.copy_bias values the summarization search tries


def copy_grid(task: str, settings: dict[str, Any], stored: float) -> list[dict[str, Any]]:
    """The search's second stage: the best first-stage `settings` at every copy prior of COPY_GRID
    but the one it ran with (`stored`, the model's). Summarization only: a translation's source is
    in the other language."""
    if task != "summarization":
        return []
    return [{**settings, "copy_bias": b} for b in COPY_GRID if b != stored]


DECODINGS = ("search", "stored")  # how run_way decodes: chosen on validation, or as the model stores it
NOT_DECODING = ("max_source_length", "max_target_length", "max_new_tokens", "scheme", "objective")


def stored_decoding(stored: dict[str, Any], today: dict[str, Any]) -> dict[str, Any]:
    """The decoding a model stores (its generation settings, `stored`), limited to the keys its
    recipe decodes with today (`today`, Seq2SeqRecipe.generation_settings) and left unset where None."""
    return {k: stored.get(k, v) for k, v in today.items() if k not in NOT_DECODING and stored.get(k, v) is not None}


def passes_per_token(settings: dict[str, Any], tokens_per_example: float) -> float:
    """Forward passes of the model per generated token: one over the source, then one per token
    (autoregressive, cached; a beam's rows share a pass), or one per denoising step (diffusion)."""
    steps = settings.get("steps")
    return (1 + (steps if steps else tokens_per_example)) / max(tokens_per_example, 1e-9)


def measure_costs(generator, sources: Sequence[str], settings: dict[str, Any], n_latency: int = 16,
                  n_throughput: int = 64) -> dict[str, Any]:
    """Latency per example at batch 1 and examples/s at batch 32 (a timer around generate), and
    the peak memory: CUDA's allocator peak, else this process's peak resident set so far."""
    import resource

    import torch
    cuda = generator.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for src in sources[:n_latency]:
        generator.generate([src], batch_size=1, **settings)
    latency = (time.perf_counter() - t0) / max(1, min(n_latency, len(sources)))
    batch = list(sources[:n_throughput])
    t0 = time.perf_counter()
    generator.generate(batch, batch_size=32, **settings)
    throughput = len(batch) / (time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"latency_b1_s": round(latency, 4), "throughput_b32_per_s": round(throughput, 2),
            "peak_memory_mb": round(peak / 2**20, 1), "peak_memory_kind": "cuda allocated" if cuda else "process RSS"}


def evaluate_split(generator, records: Sequence[dict], task: str, batch_size: int,
                   settings: dict[str, Any]) -> dict[str, Any]:
    from ..metrics import per_example
    preds, scores, baselines, decode = S.evaluate(generator, records, batch_size, task=task, **settings)
    return {"scores": scores, "baselines": baselines, "decode": decode, "predictions": preds,
            "per_example": per_example(task, preds, [r["target"] for r in records])}


TRAINED = "comparison-trained.json"  # written last: the run's final model is complete
TRAINED_KEYS = ("task", "parameters", "train", "warmup_s")


def trained_run(out: Path, recipe: S.Seq2SeqRecipe) -> Optional[dict[str, Any]]:
    """What S.run returned for this recipe in ``out`` if that training finished, else None. A
    finished run of another recipe is never deleted: UsageError names the fields that differ.
    Decoding flags do not change the weights, nor do the diffusion flags of another scheme's run."""
    p = Path(out) / TRAINED
    if not p.is_file():
        return None
    rec = json.loads(p.read_text(encoding="utf-8"))
    ignored = {f.name for f in fields(recipe) if f.metadata.get("group") == "evaluation"}
    if recipe.scheme != "bidirectional":
        ignored |= set(S.DIFFUSION_ONLY)
    stored, wanted = rec.get("recipe") or {}, json.loads(json.dumps(C.recipe_dict(recipe)))
    # a field added since the run was stored ran at its default then (STORED_BEFORE), else at today's default
    defaults = {**json.loads(json.dumps(C.recipe_dict(type(recipe)()))), **S.STORED_BEFORE}
    stored = {**{k: v for k, v in defaults.items() if k not in stored}, **stored}
    stored, wanted = (S.Seq2SeqRecipe.resolve_defaults(d) for d in (stored, wanted))
    differ = sorted(k for k in set(stored) | set(wanted) if k not in ignored and stored.get(k) != wanted.get(k))
    if differ:
        what = ", ".join(f"{C.flag_name(k)} {stored.get(k)!r} -> {wanted.get(k)!r}" for k in differ[:3])
        raise UsageError(f"{out} holds a finished run of another recipe ({what}); move it away or choose "
                         "another --work-dir")
    return rec


def run_way(way: Way, base: S.Seq2SeqRecipe, seed: int, work_dir: Path, device: Optional[str], progress: bool,
            log: Callable[[str], None], warm: Optional[Path] = None, decoding: str = "search") -> dict[str, Any]:
    """Train one way (one seed) through the seq2seq recipe, choose its decoding on validation
    (``decoding="search"``) or take the one the trained model stores (``"stored"``: the recipe's
    default, no choice made on these articles), score validation and test with it, and measure its
    costs; its result record."""
    from ..data.datasets import load_named
    from ..textgen import TextGenerator
    overrides = dict(way.overrides)
    if warm is not None:
        overrides.update(init=str(warm), mlm_warmup_steps=0)
    recipe = replace(base, **overrides, seed=seed, save_steps=0)
    recipe.check()
    out = Path(work_dir) / f"{way.name}-seed{seed}"
    say = lambda m: log(f"[{way.name}] {m}") if m else None  # noqa: E731
    r = trained_run(out, recipe)
    if r is not None:  # trained before, killed while decoding: only the decoding is redone
        say(f"reusing the finished training run in {out}")
    else:
        if out.exists():
            shutil.rmtree(out)
        r = S.run(recipe, C.RunOptions(output_dir=out, device=device, no_progress=not progress),
                  evaluate_at_end=False, keep_checkpoints=False, log=say)
        from ..io import write_json
        # the scheme-dependent defaults stored resolved: a later change of a default cannot misread the run
        write_json(out / TRAINED, {"recipe": S.Seq2SeqRecipe.resolve_defaults(C.recipe_dict(recipe)),
                                   **{k: r[k] for k in TRAINED_KEYS}})
    task = r["task"]
    data = S.load_data(recipe)
    test = load_named(recipe.dataset, "test") if recipe.dataset else []
    if recipe.limit_eval is not None:
        test = test[:recipe.limit_eval]
    gen = TextGenerator.from_pretrained(out / S.FINAL, device=device)
    today = recipe.generation_settings(task)  # a run trained before a default changed decodes with today's
    gen.settings.update({k: today[k] for k in ("copy_bias", "no_repeat_content_words", "copy_subwords",
                                               "copy_numbers", "no_repeat_word_ngram_size") if k in today})
    gen.generate([data.validation[0]["source"]])  # one-time start-up costs stay out of the timings
    key = "rougeL" if task == "summarization" else "bleu"
    search: list[dict[str, Any]] = []
    best: Optional[tuple[dict[str, Any], dict[str, Any]]] = None

    def trial(settings: dict[str, Any]) -> None:
        nonlocal best
        v = evaluate_split(gen, data.validation, task, recipe.eval_batch_size, settings)
        search.append({"settings": settings, key: v["scores"][key], "decode_s": v["decode"]["seconds"]})
        say(f"validation {settings}: {key} {v['scores'][key]:.2f}")
        if best is None or v["scores"][key] > best[1]["scores"][key]:
            best = (settings, v)
    stored = today["copy_bias"]
    prior = {"copy_bias": stored} if task == "summarization" else {}
    if decoding == "stored":
        trial(stored_decoding(gen.settings, today))
    else:
        for settings in decode_grid(recipe, gen.settings.get("max_new_tokens"), task):
            trial({**settings, **prior})
        for settings in copy_grid(task, best[0], stored):
            trial(settings)
    settings, validation = best
    tested = evaluate_split(gen, test, task, recipe.eval_batch_size, settings) if test else None
    tokens = validation["decode"]["tokens"] / max(validation["decode"]["examples"], 1)
    costs = {**measure_costs(gen, [r["source"] for r in data.validation], settings),
             "passes_per_token": round(passes_per_token(settings, tokens), 3), "tokens_per_example": round(tokens, 2)}
    train = r["train"]
    return {"way": way.name, "description": way.description, "seed": seed, "task": task,
            "scheme": recipe.scheme, "objective": recipe.seq2seq_objective,
            "decoder_init": recipe.decoder_init if recipe.scheme == "encoder-decoder" else None,
            "random_weights": recipe.random_weights, "parameters": r["parameters"],
            "shared_warmup": warm is not None, "shared_warmup_s": shared_warmup_seconds(warm),
            "mlm_warmup_steps": base.mlm_warmup_steps if (warm is not None or recipe.mlm_warmup_steps) else 0,
            "warmup_s": round(r["warmup_s"], 2), "train_s": train["elapsed_s"], "train_steps": train["steps"],
            "train_loss": train["final_loss"], "train_tokens_per_s": train["tokens_per_s"],
            "decoding": settings, "decoding_choice": decoding, "search": search,
            "validation": _split_record(task, validation),
            "test": None if tested is None else _split_record(task, tested),
            "baselines": {"validation": validation["baselines"], "test": tested and tested["baselines"]},
            "baseline_per_example": _baseline_items(task, data.validation, test),
            "decode": validation["decode"], "costs": costs, "num_examples": len(data.validation),
            "num_test_examples": len(test), "recipe": C.recipe_dict(recipe), "machine": C.machine_description()}


def _split_record(task: str, scored: dict[str, Any]) -> dict[str, Any]:
    """A split's scores, per-example items and outputs; for headlines also the share that repeat a
    content word (the stutter a reader sees)."""
    from ..metrics import repeated_content_word_share
    extra = {"repeated_content_words": repeated_content_word_share(scored["predictions"])} \
        if task == "summarization" else {}
    return {**scored["scores"], **extra, "per_example": scored["per_example"], "predictions": scored["predictions"]}


def _baseline_items(task: str, validation: Sequence[dict], test: Sequence[dict]) -> dict[str, Any]:
    """Per-example items of the lead-10 (summarization) or copy-source (translation) baseline."""
    from ..metrics import lead_words, per_example
    pick = (lambda s: lead_words(s, 10)) if task == "summarization" else (lambda s: s)
    return {split: per_example(task, [pick(r["source"]) for r in recs], [r["target"] for r in recs]) if recs else None
            for split, recs in (("validation", validation), ("test", test))}


def run_comparison(base: S.Seq2SeqRecipe, ways: Sequence[Way], seeds: Sequence[int], results_dir: Path,
                   work_dir: Path, device: Optional[str] = None, progress: bool = False,
                   log: Callable[[str], None] = C.say, command: Optional[str] = None,
                   decoding: str = "search") -> list[dict[str, Any]]:
    """Every (way, seed) result, training those not yet in ``results_dir`` (each written as soon as
    it is finished, so an interrupted comparison resumes at the first missing one). Each result
    keeps the base recipe (its task's budget) and the command that made it. `decoding`: see run_way;
    a result stored with the other choice is an error, never mixed in."""
    from ..io import write_json
    task = task_of(base)
    results = []
    for way in ways:
        for seed in seeds:
            path = result_path(results_dir, task, way.name, seed)
            if path.is_file():
                done = json.loads(path.read_text(encoding="utf-8"))
                if done.get("decoding_choice", "search") != decoding:
                    raise UsageError(f"{path} was decoded with --decoding {done.get('decoding_choice', 'search')}, "
                                     f"not {decoding}; choose another --results-dir")
                log(f"[{way.name}] seed {seed}: done before ({path})")
                results.append(done)
                continue
            warm = shared_warmup(base, work_dir, device, progress, log) if uses_shared_warmup(way, base) else None
            rec = {**run_way(way, base, seed, work_dir, device, progress, log, warm, decoding),
                   "budget": C.recipe_dict(base), "command": command}
            write_json(path, rec)
            key = "rougeL" if task == "summarization" else "bleu"
            log(f"[{way.name}] seed {seed}: validation {key} {rec['validation'][key]:.2f} with {rec['decoding']}, "
                f"trained {rec['train_s']:.0f}s; wrote {path}")
            results.append(rec)
    return results


def load_results(results_dir: Path) -> list[dict[str, Any]]:
    """Every result file in ``results_dir`` (by task, then in WAYS order, then seed)."""
    recs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(results_dir).glob("*-seed*.json"))]
    order = {n: i for i, n in enumerate(WAY_NAMES)}
    return sorted(recs, key=lambda r: (r["task"], order.get(r["way"], len(order)), r["seed"]))


def _seed_mean(items_per_seed: list[list[Any]], task: str) -> list[Any]:
    """Per-example items averaged over seeds: ROUGE-L scores, or BLEU's sufficient statistics
    (whose corpus BLEU is then exactly the BLEU of every seed's outputs pooled)."""
    if len(items_per_seed) == 1:
        return items_per_seed[0]
    if task == "summarization":
        return [sum(xs) / len(xs) for xs in zip(*items_per_seed)]
    return [[sum(col) / len(col) for col in zip(*stats)] for stats in zip(*items_per_seed)]


def assemble(results: Sequence[dict[str, Any]], base: S.Seq2SeqRecipe, resamples: int = 1000) -> dict[str, Any]:
    """The report's data for one task: each way with its seeds, means, seed spread, bootstrap 95%
    intervals (validation and test) and the paired interval of its difference from the best way."""
    from ..metrics import bootstrap
    task = results[0]["task"] if results else "summarization"
    key = "rougeL" if task == "summarization" else "bleu"
    ways: dict[str, dict[str, Any]] = {}
    for r in results:
        w = ways.setdefault(r["way"], {"name": r["way"], "task": r["task"], "seeds": [], **{
            k: r.get(k) for k in ("description", "scheme", "objective", "decoder_init", "random_weights",
                                  "parameters", "mlm_warmup_steps", "shared_warmup", "shared_warmup_s")}})
        w["seeds"].append({k: r.get(k) for k in ("seed", "train_s", "warmup_s", "train_steps", "train_loss",
                                                 "train_tokens_per_s", "decoding", "search", "decode", "costs",
                                                 "machine")}
                          | {split: {k: v for k, v in (r.get(split) or {}).items()
                                   if k not in ("per_example", "predictions")} or None
                             for split in ("validation", "test")})
        w.setdefault("_items", {"validation": [], "test": []})
        for split in ("validation", "test"):
            if r.get(split):
                w["_items"][split].append(r[split]["per_example"])
    first = results[0] if results else {}
    base_items = first.get("baseline_per_example") or {}
    for split in ("validation", "test"):
        best = None
        for w in ways.values():
            if w["_items"][split]:
                w[f"_{split}"] = _seed_mean(w["_items"][split], task)
                b = bootstrap(task, w[f"_{split}"], resamples=resamples)
                w[f"{split}_{key}_mean"], w[f"{split}_{key}_ci"] = b["score"], b["ci"]
                seeds = [s[split][key] for s in w["seeds"] if s[split]]
                w[f"{split}_{key}_seed_spread"] = [min(seeds), max(seeds)]
                if best is None or b["score"] > best[f"{split}_{key}_mean"]:
                    best = w
        for w in ways.values():
            if best is not None and w is not best and w.get(f"_{split}") is not None:
                d = bootstrap(task, w[f"_{split}"], best[f"_{split}"], resamples=resamples)
                w[f"{split}_vs_best"] = {"best": best["name"], "difference": d["difference"],
                                         "ci": d["difference_ci"], "significant": d["difference_ci"][1] < 0}
            if base_items.get(split) and w.get(f"_{split}") is not None:
                d = bootstrap(task, w[f"_{split}"], base_items[split], resamples=resamples)
                w[f"{split}_vs_baseline"] = {"difference": d["difference"], "ci": d["difference_ci"],
                                             "significant": d["difference_ci"][0] > 0}
    # the budget the results were run at (each task has its own); the given base for older results
    budget = dict(next((r["budget"] for r in results if r.get("budget")), None) or C.recipe_dict(base))
    pairs: dict[str, list[dict[str, Any]]] = {}
    for split in ("validation", "test"):
        for a, b, claim in SCRATCH_PAIRS if budget.get("init") == "scratch" else PAPER_PAIRS:
            wa, wb = ways.get(a), ways.get(b)
            if wa is None or wb is None or wa.get(f"_{split}") is None or wb.get(f"_{split}") is None:
                continue
            d = bootstrap(task, wa[f"_{split}"], wb[f"_{split}"], resamples=resamples)
            pairs.setdefault(split, []).append({"better": a, "worse": b, "claim": claim,
                                                "difference": d["difference"], "ci": d["difference_ci"]})
    for w in ways.values():
        for k in [k for k in w if k.startswith("_")]:
            del w[k]
    baselines = first.get("baselines") or {}
    commands = list(dict.fromkeys(r["command"] for r in results if r.get("command")))
    machines = sorted({r["machine"] for r in results if r.get("machine")})
    # what the part took: every (way, seed)'s training, own warm-up and decoding search, the shared warm-up once
    shared = next((r.get("shared_warmup_s") for r in results if r.get("shared_warmup_s")), None) or 0.0
    wall = shared + sum((r.get("train_s") or 0.0) + (r.get("warmup_s") or 0.0)
                        + sum(x.get("decode_s") or 0.0 for x in r.get("search") or []) for r in results)
    return {"task": task, "metric": key, "dataset": budget.get("dataset") or budget.get("train"), "budget": budget,
            "machine": "; ".join(machines), "wall_s": round(wall, 1), "runs": len(results), "commands": commands,
            "examples": {"validation": first.get("num_examples"), "test": first.get("num_test_examples")},
            "baselines": baselines, "ways": list(ways.values()), "paper_pairs": pairs}


def _fmt(v: Optional[float], spec: str = ".2f") -> str:
    return "—" if v is None else format(v, spec)


def _ci(w: dict[str, Any], split: str, key: str) -> str:
    m, ci = w.get(f"{split}_{key}_mean"), w.get(f"{split}_{key}_ci")
    return "—" if m is None else f"{m:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def _verdict(ci: Sequence[float]) -> str:
    return "significant" if ci[0] > 0 or ci[1] < 0 else "not significant"


def answer(report: dict[str, Any]) -> list[str]:
    """The plain answer, read off the numbers: the winner, its margin, the ways one cannot tell
    from it, the baseline, the paper orderings, and the cheapest way that is as good."""
    key = report["metric"]
    name = {"rougeL": "ROUGE-L", "bleu": "BLEU"}[key]
    ways = [w for w in report["ways"] if w.get(f"validation_{key}_mean") is not None]
    if not ways:
        return []
    ways.sort(key=lambda w: -w[f"validation_{key}_mean"])
    best = ways[0]
    out = [f"- **Best on validation: {best['name']}**, {name} {_ci(best, 'validation', key)}; on test "
           f"{_ci(best, 'test', key)}."]
    if len(ways) > 1:
        second = ways[1]
        d = second.get("validation_vs_best") or {}
        if d:
            out.append(f"- Next: {second['name']}, {d['difference']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}] "
                       f"({_verdict(d['ci'])}).")
        ties = [w["name"] for w in ways[1:] if not (w.get("validation_vs_best") or {}).get("significant", True)]
        out.append("- Not significantly worse than the best on validation: " + (", ".join(ties) or "none") + ".")
    tb = best.get("test_vs_baseline")
    base = "lead-10" if key == "rougeL" else "copy-the-source"  # the per-example baseline of _baseline_items
    if tb:
        out.append(f"- Against the {base} baseline on test: {tb['difference']:+.2f} "
                   f"[{tb['ci'][0]:+.2f}, {tb['ci'][1]:+.2f}] ({_verdict(tb['ci'])}).")
    for pr in (report.get("paper_pairs") or {}).get("validation", []):
        holds = "holds" if pr["ci"][0] > 0 else ("is reversed" if pr["ci"][1] < 0 else "is not resolved")
        out.append(f"- {pr['claim']}: {pr['better']} - {pr['worse']} = {pr['difference']:+.2f} "
                   f"[{pr['ci'][0]:+.2f}, {pr['ci'][1]:+.2f}] on validation: the ordering {holds} at this budget.")
    as_good = [best] + [w for w in ways[1:] if not (w.get("validation_vs_best") or {}).get("significant", True)]

    def latency(w: dict[str, Any]) -> float:
        return ((w["seeds"][0].get("costs") or {}).get("latency_b1_s")) or float("inf")
    cheapest = min(as_good, key=latency)
    if cheapest is not best and latency(cheapest) < latency(best):
        out.append(f"- **Pick**: {cheapest['name']} decodes fastest among the ways as good as the best "
                   f"({latency(cheapest):.3f} s against {latency(best):.3f} s per example at batch 1); else {best['name']}.")
    else:
        out.append(f"- **Pick**: {best['name']} (no way as good decodes faster).")
    run = {w["name"] for w in report["ways"]}
    missing = [w.name for w in default_ways((report.get("budget") or {}).get("init")) if w.name not in run]
    if missing:
        out.append(f"- Not run yet (the same command resumes with them): {', '.join(missing)}.")
    top = [w for w in ways[:3] if len(w["seeds"]) < 2]
    if top:
        out.append(f"- One seed only for {', '.join(w['name'] for w in top)}: run --seeds 0 1 for the top three.")
    return out


def overview(reports: Sequence[dict[str, Any]]) -> list[str]:
    """The answer across tasks: each task's winner and runner-up, whether the tasks agree, and
    where BERT's own way (masked diffusion) ranks. Empty for fewer than two tasks."""
    lines, winners = [], {}
    for r in reports:
        key = r["metric"]
        name = {"rougeL": "ROUGE-L", "bleu": "BLEU"}[key]
        ways = sorted((w for w in r["ways"] if w.get(f"validation_{key}_mean") is not None),
                      key=lambda w: -w[f"validation_{key}_mean"])
        if not ways:
            continue
        best, init = ways[0], (r.get("budget") or {}).get("init")
        winners[r["task"]] = best
        text = (f"- {r['task'].capitalize()} (`{r['dataset']}`, from `{init}`): **{best['name']}** wins, {name} "
                f"{best[f'validation_{key}_mean']:.2f} on validation")
        if len(ways) > 1 and ways[1].get("validation_vs_best"):
            d = ways[1]["validation_vs_best"]
            text += (f", {ways[1]['name']} next at {d['difference']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}]"
                     f" ({_verdict(d['ci'])})")
        diffusion = [i for i, w in enumerate(ways) if w.get("scheme") == "bidirectional"]
        if diffusion:
            text += f"; masked diffusion ranks {diffusion[0] + 1} of {len(ways)}"
        lines.append(text + ".")
    if len(winners) < 2:
        return []
    schemes = {t: w.get("scheme") for t, w in winners.items()}
    if len(set(schemes.values())) == 1:
        lines.append(f"- Both tasks pick the {next(iter(schemes.values()))} scheme.")
    else:
        lines.append("- The tasks disagree: " + "; ".join(f"{t} picks {w['name']} ({schemes[t]})"
                                                         for t, w in winners.items())
                     + ". The ranking depends on the task and on where the weights start, so compare on your own "
                       "data before choosing.")
    return ["## In short", "", *lines, ""]


def _chrf_lines(report: dict[str, Any]) -> list[str]:
    """Translation: chrF per way (the mean of its seeds' corpus chrF) and sacrebleu's signatures."""
    if report["metric"] != "bleu":
        return []

    def mean(w: dict[str, Any], split: str) -> str:
        xs = [s[split]["chrf"] for s in w["seeds"] if (s.get(split) or {}).get("chrf") is not None]
        return f"{sum(xs) / len(xs):.2f}" if xs else "—"
    ways = sorted(report["ways"], key=lambda w: -(w.get("validation_bleu_mean") or -1e9))
    first = next((s["validation"] for w in ways for s in w["seeds"] if s.get("validation")), {})
    return ["chrF, the mean of the seeds' corpus chrF (validation / test): "
            + ", ".join(f"{w['name']} {mean(w, 'validation')} / {mean(w, 'test')}" for w in ways) + ".", "",
            f"sacrebleu signatures: BLEU `{first.get('signature', '?')}`; chrF `{first.get('chrf_signature', '?')}`.",
            ""]


def format_markdown(reports: Sequence[dict[str, Any]], command: str) -> str:
    lines = ["# Ways of making BERT generate: one checkpoint, one budget", "", *overview(reports)]
    machines: set[str] = set()
    for report in reports:
        b, key = report["budget"], report["metric"]
        name = {"rougeL": "ROUGE-L", "bleu": "BLEU"}[key]
        lines += [f"## {report['task']}: `{report['dataset']}` from `{b['init']}`", "",
                  "The answer, read off the numbers below (95% paired bootstrap intervals):", "",
                  *answer(report), "",
                  f"| way | seeds (validation range) | parameters (M) | validation {name} [95% CI] | test {name} [95% CI] "
                  "| vs best (validation) | vs baseline (test) | decoding (chosen on validation) |",
                  "|---|---:|---:|---|---|---|---|---|"]
        for w in sorted(report["ways"], key=lambda w: -(w.get(f"validation_{key}_mean") or -1e9)):
            vb = w.get("validation_vs_best")
            vs = "best" if vb is None else (f"{vb['difference']:+.2f} [{vb['ci'][0]:+.2f}, {vb['ci'][1]:+.2f}]"
                                            + (" *" if vb["significant"] else ""))
            tb = w.get("test_vs_baseline")
            base_txt = "—" if tb is None else (f"{tb['difference']:+.2f} [{tb['ci'][0]:+.2f}, {tb['ci'][1]:+.2f}]"
                                               + (" *" if tb["significant"] else ""))
            dec = "; ".join(sorted({json.dumps(s["decoding"], sort_keys=True) for s in w["seeds"]}))
            spread = w.get(f"validation_{key}_seed_spread")
            seeds = f"{len(w['seeds'])}" + (f" ({spread[0]:.2f}-{spread[1]:.2f})" if len(w["seeds"]) > 1 and spread else "")
            lines.append(f"| {w['name']} | {seeds} | {w['parameters'] / 1e6:.2f} | {_ci(w, 'validation', key)} "
                         f"| {_ci(w, 'test', key)} | {vs} | {base_txt} | `{dec}` |")
        for split, label in (("validation", "validation"), ("test", "test")):
            base_scores = (report.get("baselines") or {}).get(split) or {}
            for bname, sc in base_scores.items():
                if key in sc:
                    lines.append(f"| *{bname} baseline ({label})* | — | — | "
                                 + (f"{sc[key]:.2f} | — " if split == "validation" else f"— | {sc[key]:.2f} ")
                                 + "| — | — | — |")
        n = report.get("examples") or {}
        lines += ["", f"{name} on {n.get('validation') or '?'} validation and {n.get('test') or '?'} test examples; "
                  "[95% CI]: paired bootstrap, 1,000 resamples (Koehn 2004), over "
                  + ("the examples with each example's score averaged over the seeds" if key == "rougeL" else
                     "the examples with each example's n-gram statistics averaged over the seeds (BLEU of every "
                     "seed's outputs pooled)") + ". *: the interval of the difference "
                  "excludes 0 (vs best: worse than the best way; vs baseline: better than the baseline).", "",
                  *_chrf_lines(report),
                  "| way | train s (warm-up) | train tokens/s | decoding search s | passes / token | latency b1 (s) "
                  "| throughput b32 (ex/s) | peak memory (MB) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for w in report["ways"]:
            s = w["seeds"][0]
            c = s.get("costs") or {}
            machines.add(s["machine"])
            shared = w.get("shared_warmup_s") if w.get("shared_warmup") else None
            warm = f"{s['warmup_s']:.0f}" if not w.get("shared_warmup") else f"shared {_fmt(shared, '.0f')}"
            search = sum(x.get("decode_s") or 0.0 for x in s.get("search") or []) or None
            lines.append(f"| {w['name']} | {s['train_s']:.0f} ({warm}) | {_fmt(s['train_tokens_per_s'], '.0f')} "
                         f"| {_fmt(search, '.0f')} | {_fmt(c.get('passes_per_token'))} "
                         f"| {_fmt(c.get('latency_b1_s'), '.3f')} "
                         f"| {_fmt(c.get('throughput_b32_per_s'))} | {_fmt(c.get('peak_memory_mb'), '.0f')} |")
        lines += ["", f"Budget: {b['max_steps']} optimizer steps, batch {b['batch_size']}, lr {b['lr']:g}, "
                  f"sources {b['max_source_length']} / targets {b['max_target_length']} tokens, "
                  + (f"MLM warm-up {b['mlm_warmup_steps']} steps (computed once and shared by every way from the "
                     "checkpoint; the random-weight control warms up its own head; \"shared\" gives the shared "
                     "warm-up's time, paid once). " if b['mlm_warmup_steps'] else "no MLM warm-up. ")
                  + _repeat_note(report["task"], b)
                  + ("The search's second stage tries the copy priors "
                     f"{', '.join(f'{x:g}' for x in COPY_GRID)} (`copy_bias`) at each way's best first-stage "
                     "setting. " if report["task"] == "summarization" else "")
                  + "Costs of the first seed; peak memory is the process's peak resident set so far on CPU.",
                  ""]
        if report.get("wall_s"):
            lines += [f"Wall time of this part: {report['wall_s'] / 60:.0f} minutes for {report['runs']} training "
                      "runs (training, MLM warm-ups and decoding searches; scoring the test split and timing the "
                      "costs add a few seconds a run).", ""]
        if report.get("commands"):
            lines += ["The commands that produced these results:", "", "```", *report["commands"], "```", ""]
    lines += ["## Machine", "", *[f"- {m}" for m in sorted(machines)], "",
              "## Command (this report)", "", "```", command, "```", ""]
    return "\n".join(lines)


def _repeat_note(task: str, budget: dict[str, Any]) -> str:
    """How the autoregressive ways' decoding treated repeated content words (the search leaves it)."""
    on = budget.get("no_repeat_content_words")
    if task != "summarization":
        return ""
    if on is None:
        return "Repeated content words blocked (the summarization default). "
    return ("Repeated content words blocked. " if on else
            "Repeated content words not blocked in the autoregressive ways' decoding (the default before "
            "2026-11-30; `--no-no-repeat-content-words` reproduces it). ")


def plot(reports: Sequence[dict[str, Any]], path: Path) -> None:
    """Per task: the validation score with its 95% interval per way, and quality against decoding
    latency and training time (one point per way)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..io import atomic_write
    fig = Figure(figsize=(15, 3.2 * len(reports) + 0.8), dpi=110)
    FigureCanvasAgg(fig)
    for row, report in enumerate(reports):
        key = report["metric"]
        ways = [w for w in report["ways"] if w.get(f"validation_{key}_mean") is not None]
        ways.sort(key=lambda w: w[f"validation_{key}_mean"])
        ax = fig.add_subplot(len(reports), 3, 3 * row + 1)
        for y, w in enumerate(ways):
            m, (lo, hi) = w[f"validation_{key}_mean"], w[f"validation_{key}_ci"]
            ax.errorbar([m], [y], xerr=[[m - lo], [hi - m]], fmt="o", color="tab:blue", capsize=3)
        ax.set_yticks(range(len(ways)), [w["name"] for w in ways], fontsize=8)
        base = ((report.get("baselines") or {}).get("validation") or {})
        for bname, sc, color in zip(base, base.values(), ("tab:red", "tab:orange", "tab:gray")):
            if key in sc:
                ax.axvline(sc[key], color=color, linestyle="--", label=f"{bname} ({sc[key]:.1f})")
        ax.legend(fontsize=7)
        ax.set_xlabel(f"validation {key} (95% CI)")
        ax.set_title(f"{report['task']}: {report['dataset']}", fontsize=9)
        for k, (cost, label) in enumerate((("latency_b1_s", "decoding latency at batch 1 (s)"),
                                           ("train_s", "training time (s)"))):
            ax = fig.add_subplot(len(reports), 3, 3 * row + 2 + k)
            for w in ways:
                s = w["seeds"][0]
                x = (s.get("costs") or {}).get(cost) if cost != "train_s" else s["train_s"] + s["warmup_s"]
                if x is not None:
                    ax.plot([x], [w[f"validation_{key}_mean"]], "o")
                    ax.annotate(w["name"], (x, w[f"validation_{key}_mean"]), fontsize=7)
            ax.set_xlabel(label + (" (the way's own MLM warm-up included)" if cost == "train_s" else ""))
            ax.set_ylabel(f"validation {key}")
            ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def write_report(reports: Sequence[dict[str, Any]], output_dir: Path, command: str) -> dict[str, Path]:
    from ..io import write_json, write_text
    output_dir = Path(output_dir)
    paths = {"markdown": output_dir / "comparison.md", "png": output_dir / "comparison.png",
             "json": output_dir / "comparison.json"}
    write_json(paths["json"], {"reports": list(reports), "command": command})
    plot(reports, paths["png"])
    write_text(paths["markdown"], format_markdown(reports, command))
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
    add_run_arguments(g, Path("runs/compare"))
    C.add_recipe_arguments(p, S.Seq2SeqRecipe, exclude=("scheme", "objective", "decoder_init", "random_weights"))
    return p


def add_run_arguments(g: Any, work_dir: Path) -> None:
    """--work-dir, --device, --no-progress, --resamples: what every study that trains ways takes."""
    g.add_argument("--work-dir", type=Path, default=work_dir, help=f"training runs (default {work_dir})")
    g.add_argument("--device", help="cpu, cuda (default: cuda if available)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")


def main(argv: Optional[list[str]] = None, prog: str = PROG, doc: str = "") -> int:
    import sys
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(prog, doc).parse_args(argv)

    def body() -> int:
        explicit = C.explicit_values(args, S.Seq2SeqRecipe)
        for k in ("train", "validation"):
            if explicit.get(k) is not None:
                explicit[k] = str(Path(explicit[k]).resolve())
        base = S.Seq2SeqRecipe.resolve({**COMPARISON_DEFAULTS, **(QUICK if args.quick else {}), **explicit})
        base.check()
        ways = parse_ways(args.ways, base.init)
        C.check_device(args.device)
        seeds = args.seeds or [base.seed]
        results_dir = args.results_dir or Path(args.output_dir) / "comparison"
        C.say(f"ways: {', '.join(w.name for w in ways)}; seeds {seeds}; results in {results_dir}")
        command = "python scripts/compare_schemes.py" + (" " + shlex.join(argv) if argv else "")
        run_comparison(base, ways, seeds, results_dir, args.work_dir, args.device, not args.no_progress,
                       command=command)
        results = load_results(results_dir)
        reports = [assemble([r for r in results if r["task"] == t], base, args.resamples)
                   for t in dict.fromkeys(r["task"] for r in results)]
        paths = write_report(reports, args.output_dir, command)
        C.say("")
        C.say("\n\n".join(format_markdown(reports, command).split("\n\n")[1:4]))  # the answer and the table
        C.say(f"\nwrote {paths['markdown']}, {paths['png']} and {paths['json']}")
        return 0

    return C.main_entry(prog, body)
