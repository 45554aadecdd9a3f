#!/usr/bin/env python
"""Fine-tune a genbert model for summarization / headline generation, then score it.

    python scripts/train_summarization.py            # the default recipe: MiniLM, BBC headlines
    python scripts/train_summarization.py --train train.jsonl --validation val.jsonl \
        --init minilm --scheme encoder-decoder --output-dir runs/mine
    python scripts/train_summarization.py --output-dir runs/mine --resume   # after an interruption

Writes OUTPUT/checkpoint-STEP/ (the newest two), OUTPUT/final/ (load it with
genbert.TextGenerator.from_pretrained), OUTPUT/log.jsonl, OUTPUT/loss.png and, unless --no-eval,
OUTPUT/metrics.json and OUTPUT/predictions.jsonl. Defaults: genbert.summarization.DEFAULT_RECIPE.
Bad input ends the run with one line on stderr and exit status 2. Works under torchrun.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, NoReturn, Optional

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # "sequence longer than 512": we truncate

PROG = "train_summarization.py"
EXIT_USAGE = 2

from genbert.cli_args import OneLineParser, add_scratch_size_arguments, add_training_arguments  # noqa: E402
from genbert.summarization import DECODER_INITS, DEFAULT_RECIPE, OBJECTIVES, SCHEMES  # noqa: E402

from genbert.data.datasets import NAMED_DATASETS as NAMED  # noqa: E402
from genbert.metrics import TASKS  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    R = DEFAULT_RECIPE
    p = OneLineParser(prog=PROG, description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    # every recipe flag defaults to None: explicit > stored run (--resume) > DEFAULT_RECIPE
    d = p.add_argument_group("data")
    src = d.add_mutually_exclusive_group()
    src.add_argument("--dataset", choices=NAMED, help=f"named dataset (default {R['dataset']})")
    src.add_argument("--train", help="training pairs: JSONL, CSV or TSV")
    d.add_argument("--validation", help="validation pairs (with --train)")
    d.add_argument("--source-field", help="source field / column (default source)")
    d.add_argument("--target-field", help="target field / column (default target)")
    d.add_argument("--limit-train", type=int, help="use the first N training pairs")
    d.add_argument("--limit-eval", type=int, help="evaluate on the first N validation pairs")
    d.add_argument("--task", choices=TASKS, help="scoring: ROUGE (summarization) or BLEU/chrF (translation); "
                                                 "default: the named dataset's task, else summarization")
    m = p.add_argument_group("model")
    m.add_argument("--init", help=f"transformers BERT or genbert directory, 'minilm' or 'scratch' (default {R['init']})")
    m.add_argument("--scheme", choices=SCHEMES, help=f"default {R['scheme']}")
    m.add_argument("--objective", choices=OBJECTIVES, help=f"prefix scheme only (default {R['objective']})")
    m.add_argument("--decoder-init", choices=DECODER_INITS, help=f"encoder-decoder (default {R['decoder_init']})")
    m.add_argument("--decoder-layers", type=int, help="encoder-decoder: decoder depth (default: the encoder's)")
    m.add_argument("--mask-prob", type=float, help=f"masked-target: share of target tokens masked ({R['mask_prob']})")
    m.add_argument("--mlm-warmup-steps", type=int,
                   help=f"MLM steps on the training sources before seq2seq training, prefix/causal only, "
                        f"0 = off (default {R['mlm_warmup_steps']})")
    add_scratch_size_arguments(m, R)
    t = p.add_argument_group("training")
    add_training_arguments(t, R, "default runs/DATASET")
    t.add_argument("--label-smoothing", type=float, help=f"default {R['label_smoothing']}")
    t.add_argument("--max-source-length", type=int, help=f"tokens incl. [CLS]/[SEP] (default {R['max_source_length']})")
    t.add_argument("--max-target-length", type=int, help=f"tokens incl. [SEP] (default {R['max_target_length']})")
    t.add_argument("--bf16", action="store_true", default=None, help="bf16 autocast (CUDA only)")
    t.add_argument("--fp16", action="store_true", default=None, help="fp16 autocast (CUDA only)")
    e = p.add_argument_group("evaluation")
    e.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    e.add_argument("--eval-each-epoch", action="store_true", help="also score the validation set after every epoch")
    e.add_argument("--num-beams", type=int, help=f"default {R['num_beams']}")
    e.add_argument("--no-repeat-ngram-size", type=int, help=f"default {R['no_repeat_ngram_size']}")
    e.add_argument("--length-penalty", type=float, help=f"default {R['length_penalty']}")
    e.add_argument("--eval-batch-size", type=int, help=f"default {R['eval_batch_size']}")
    return p


RECIPE_FLAGS = [k for k in DEFAULT_RECIPE] + ["train", "validation", "source_field", "target_field",
                                              "gradient_checkpointing", "bf16", "fp16"]


def say(msg: str = "") -> None:
    print(msg, flush=True)


def fail(message: str) -> NoReturn:
    if os.environ.get("RANK", "0") == "0":  # under torchrun every process fails alike: say it once
        print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)


def run(args: argparse.Namespace, no_arguments: bool) -> int:
    from genbert import summarization as S
    from genbert.training import init_distributed

    explicit = {k: getattr(args, k, None) for k in RECIPE_FLAGS}
    for k in ("train", "validation"):
        if explicit[k] is not None:
            explicit[k] = str(Path(explicit[k]).resolve())
    out = S.resolve_output_dir(args.output_dir, S.resolve_recipe(explicit), no_arguments)
    stored = S.read_run_config(out) if args.resume else None
    recipe = S.resolve_recipe(explicit, stored)
    dinfo = init_distributed(args.device)
    main = dinfo.is_main
    S.check_output_dir(out, args.resume, args.overwrite)
    if no_arguments and out != S.default_output_dir(recipe) and main:
        say(f"note: {S.default_output_dir(recipe)} holds an earlier run; writing this one to {out}")
    S.check_recipe({**recipe, "device": args.device})
    objective = S.collator_objective(recipe["scheme"], recipe["objective"], explicit["objective"] is not None)
    eval_wanted = not args.no_eval or args.eval_each_epoch

    data = S.load_data(recipe.get("dataset"), recipe.get("train"), recipe.get("validation"),
                       recipe.get("source_field") or "source", recipe.get("target_field") or "target",
                       recipe["limit_train"], recipe["limit_eval"], need_validation=eval_wanted)
    task = recipe.get("task") or data.task
    if main:
        say(f"data: {data.name}: {len(data.train)} training pairs, {len(data.validation)} validation pairs"
            + (f" ({task})" if task != "summarization" else ""))
        for f, n in data.skipped.items():
            say(f"note: skipped {n} record(s) with an empty source or target in {f}")
    sizes = {k: recipe[k] for k in ("hidden_size", "layers", "heads", "intermediate_size")}
    texts = [t for r in data.train for t in (r["source"], r["target"])] if recipe["init"] == "scratch" else ()
    built = S.build_model(recipe["init"], recipe["scheme"], objective, recipe["decoder_init"],
                          recipe["decoder_layers"], texts, out / S.TOKENIZER_DIR if args.resume else None,
                          sizes, recipe["vocab_size"], recipe["max_position_embeddings"],
                          lowercase=task != "translation")  # BLEU is case-sensitive; ROUGE is not
    S.check_lengths(built.model, objective, recipe["max_source_length"], recipe["max_target_length"])
    model, tokenizer = built.model, built.tokenizer
    if main:
        say(f"model: {built.description}; scheme {recipe['scheme']}, objective {objective}")
        for note in built.notes:
            say(f"note: {note}")

    settings = S.generation_settings(recipe, objective)

    from genbert import TextGenerator
    from genbert.io import write_json
    from genbert.training import TrainConfig, Trainer

    pairs = S.encode_pairs(tokenizer, data.train, recipe["max_source_length"], recipe["max_target_length"])
    collate = S.make_collator(tokenizer, objective, recipe["max_source_length"], recipe["max_target_length"],
                              recipe["mask_prob"], recipe["seed"])
    warmup = (recipe.get("mlm_warmup_steps") or 0) if recipe["scheme"] != "encoder-decoder" else 0
    # after an MLM warm-up the head is trained: then one learning rate for all parameters
    new_params = frozenset() if warmup else frozenset(built.new_params)
    try:
        config = TrainConfig(
            lr=recipe["lr"], weight_decay=recipe["weight_decay"], warmup=recipe["warmup"], epochs=recipe["epochs"],
            max_steps=recipe["max_steps"], batch_size=recipe["batch_size"], grad_accum=recipe["grad_accum"],
            max_grad_norm=recipe["max_grad_norm"], label_smoothing=recipe["label_smoothing"], seed=recipe["seed"],
            save_steps=recipe["save_steps"], save_total_limit=recipe["save_total_limit"],
            log_steps=recipe["log_steps"], bf16=bool(recipe.get("bf16")), fp16=bool(recipe.get("fp16")),
            gradient_checkpointing=bool(recipe.get("gradient_checkpointing")),
            new_param_lr_multiplier=recipe["new_param_lr_multiplier"], new_params=new_params,
            device=args.device, progress=not args.no_progress)
        config.validate()
    except ValueError as e:
        raise S.UsageError(str(e)) from None

    def on_save(ckpt: Path) -> None:  # checkpoints load with TextGenerator.from_pretrained too
        tokenizer.save(ckpt)
        write_json(ckpt / "generation.json", settings)

    eval_fn = None
    if args.eval_each_epoch:
        def eval_fn(m) -> dict[str, Any]:
            gen = TextGenerator(m, tokenizer, settings, device=next(m.parameters()).device)
            _, scores, _ = S.evaluate(gen, data.validation, recipe["eval_batch_size"], task=task)
            return scores

    try:
        trainer = Trainer(model, pairs, collate, config, out, eval_fn=eval_fn,
                          lengths=[len(s) + len(t) for s, t in pairs], on_save=on_save)
    except ValueError as e:
        raise S.UsageError(str(e)) from None
    ckpt = trainer.check_resume() if args.resume else None  # before anything is written
    if args.resume and ckpt is None and main:
        say(f"note: no checkpoint in {out}: starting a new run")

    # ---- from here on the output directory is written
    if main:
        S.prepare_output_dir(out, args.overwrite)
        if built.trained_tokenizer:
            tokenizer.save(out / S.TOKENIZER_DIR)
        write_json(out / S.RUN_CONFIG, {k: v for k, v in recipe.items() if k in RECIPE_FLAGS})
    if main:
        say(f"training: {trainer.total_steps} steps ({trainer.steps_per_epoch} an epoch), "
            f"batch {config.batch_size} x {config.grad_accum}, lr {config.lr:g}"
            + (f" ({config.new_param_lr_multiplier:g}x for {len(new_params)} new tensors)" if new_params else "")
            + f", {dinfo.world_size} process(es) on {trainer.device}; writing {out}")
    if warmup and ckpt is None:
        if main:
            say(f"MLM warm-up: {warmup} steps on the training sources (writing {out / 'mlm-warmup'})")
        w = S.mlm_warmup(model, tokenizer, [r["source"] for r in data.train], warmup, built.new_params,
                         out / "mlm-warmup", recipe["seed"], args.device, not args.no_progress)
        if main and w.get("final_loss") is not None:
            say(f"MLM warm-up done in {w['elapsed_s']:.0f}s, final loss {w['final_loss']:.4f}")
    summary = trainer.train(resume=args.resume)
    if not main:
        return 0
    say(f"trained {summary['steps']} steps in {summary['elapsed_s']:.0f}s "
        f"({summary['tokens_per_s']:.0f} tokens/s), final loss {summary['final_loss']:.4f}"
        if summary["final_loss"] is not None else f"trained {summary['steps']} steps")

    generator = TextGenerator(model, tokenizer, settings, device=trainer.device)
    final = out / "final"
    S.save_final(generator, final)
    if not args.no_eval:
        preds, scores, baselines = S.evaluate(generator, data.validation, recipe["eval_batch_size"],
                                              progress=not args.no_progress, task=task)
        meta = {**settings, "data": data.name, "task": task, "num_examples": len(data.validation), "model": str(final),
                "init": recipe["init"], "train_steps": summary["steps"], "train_loss": summary["final_loss"]}
        S.write_evaluation(out, data.validation, preds, scores, baselines, meta)
        say("")
        say(S.format_table(scores, baselines))
        say("")
        for r, p in list(zip(data.validation, preds))[:5]:
            say(f"  generated: {p}")
            say(f"  reference: {r['target']}")
            say("")
        say(f"wrote {out / 'metrics.json'} and {out / 'predictions.jsonl'}")
    say(f"model saved to {final} (load it with genbert.TextGenerator.from_pretrained)")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    from genbert.data.datasets import DataError
    from genbert.summarization import UsageError
    from genbert.training import ResumeError
    try:
        return run(args, no_arguments=not argv)
    except (UsageError, DataError, ResumeError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; continue with --resume", file=sys.stderr)
        return 130
    finally:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
