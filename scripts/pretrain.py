#!/usr/bin/env python
"""Pretrain, or continue pretraining, a genbert model on plain text, with held-out masked-token
accuracy before and after.

    python scripts/pretrain.py --init minilm --corpus bbc wikipedia --objective mlm \
        --max-steps 300 --output-dir runs/minilm-mlm
    python scripts/pretrain.py --init scratch --text notes.txt more.jsonl --objective unilm
    python scripts/pretrain.py --output-dir runs/minilm-mlm --resume   # after an interruption

Text: --text FILE ... (JSONL with a "text" field, else one document per blank-line-separated
block) and/or --corpus bbc|wikipedia (offline corpora). Documents are de-duplicated, about 5%
are held out by a hash of their text, and the rest is cut into sequences of --max-length
tokens. Objectives: mlm, mlm+nsp, unilm (encoder) and infilling (BART-style, encoder-decoder:
an encoder checkpoint gets a decoder by --decoder-init).

Writes OUTPUT/checkpoint-STEP/ (the newest two), OUTPUT/final/ (model + tokenizer: load it with
GenBert.from_pretrained, or pass it as --init to scripts/train_summarization.py), OUTPUT/mlm_eval.json
(held-out metrics before / after), OUTPUT/log.jsonl, OUTPUT/loss.png and, for unilm,
OUTPUT/scheme_loss.jsonl. Defaults: genbert.pretraining.DEFAULT_RECIPE. Bad input ends the run
with one line on stderr and exit status 2. Works under torchrun.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn, Optional

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # "sequence longer than 512": we chunk

PROG = "pretrain.py"
EXIT_USAGE = 2

from genbert.cli_args import OneLineParser, add_scratch_size_arguments, add_training_arguments  # noqa: E402
from genbert.pretraining import CORPORA, DECODER_INITS, DEFAULT_RECIPE, OBJECTIVES  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    R = DEFAULT_RECIPE
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    # every recipe flag defaults to None: explicit > stored run (--resume) > DEFAULT_RECIPE
    d = p.add_argument_group("data")
    d.add_argument("--text", nargs="+", action="extend", metavar="FILE",
                   help="JSONL (a \"text\" field a line) or plain text (documents separated by blank lines)")
    d.add_argument("--corpus", nargs="+", action="extend", choices=CORPORA,
                   help="offline corpora (bbc: 2,225 BBC News articles; wikipedia: gensim's small dump)")
    d.add_argument("--text-field", help=f"JSONL field holding the text (default {R['text_field']})")
    d.add_argument("--limit-documents", type=int, help="use the first N documents (after de-duplication)")
    d.add_argument("--heldout-fraction", type=float,
                   help=f"share of documents held out for evaluation, 0 = none (default {R['heldout_fraction']})")
    d.add_argument("--max-length", type=int, help=f"tokens per sequence incl. [CLS]/[SEP] (default {R['max_length']})")
    m = p.add_argument_group("model")
    m.add_argument("--init", help=f"transformers BERT or genbert directory, 'minilm' or 'scratch' (default {R['init']})")
    m.add_argument("--objective", choices=OBJECTIVES, help=f"default {R['objective']}")
    m.add_argument("--whole-word-masking", action="store_true", default=None, help="mlm: mask whole words")
    m.add_argument("--mask-prob", type=float, help=f"mlm, mlm+nsp, unilm: share of tokens masked ({R['mask_prob']})")
    m.add_argument("--infill-ratio", type=float, help=f"infilling: share of tokens in masked spans ({R['infill_ratio']})")
    m.add_argument("--infill-lambda", type=float, help=f"infilling: mean span length, Poisson ({R['infill_lambda']})")
    m.add_argument("--decoder-init", choices=DECODER_INITS,
                   help="infilling from an encoder checkpoint: bert (BERT2BERT, default), shared (BERTShare), random")
    m.add_argument("--decoder-layers", type=int, help="infilling: decoder depth (default: the encoder's)")
    add_scratch_size_arguments(m, R)
    t = p.add_argument_group("training")
    add_training_arguments(t, R, "default runs/pretrain-INIT-OBJECTIVE",
                           new_param_help="LR factor for newly initialised weights, e.g. MiniLM's MLM head")
    t.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast on CUDA (default on; ignored on CPU)")
    t.add_argument("--fp16", action="store_true", default=None, help="fp16 autocast (CUDA only) instead of bf16")
    e = p.add_argument_group("held-out evaluation")
    e.add_argument("--eval-seed", type=int, help=f"seed of the held-out masking (default {R['eval_seed']})")
    e.add_argument("--max-eval-sequences", type=int, help=f"held-out sequences scored (default {R['max_eval_sequences']})")
    e.add_argument("--eval-batch-size", type=int, help=f"default {R['eval_batch_size']}")
    e.add_argument("--eval-each-epoch", action="store_true", help="also evaluate after every epoch (log.jsonl)")
    return p


RECIPE_FLAGS = list(DEFAULT_RECIPE)


def say(msg: str = "") -> None:
    print(msg, flush=True)


def fail(message: str) -> NoReturn:
    if os.environ.get("RANK", "0") == "0":  # under torchrun every process fails alike: say it once
        print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)


def _pct(v: Any) -> str:
    return f"{100 * v:.2f}%" if isinstance(v, float) else "-"


def run(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    from genbert import pretraining as P
    from genbert.summarization import check_output_dir, special_ids
    from genbert.training import init_distributed

    explicit = {k: getattr(args, k, None) for k in RECIPE_FLAGS}
    if explicit["text"] is not None:
        explicit["text"] = [str(Path(f).resolve()) for f in explicit["text"]]
    if explicit["init"] not in (None, "minilm", "scratch") and Path(explicit["init"]).is_dir():
        explicit["init"] = str(Path(explicit["init"]).resolve())
    out = Path(args.output_dir) if args.output_dir is not None else P.default_output_dir(P.resolve_recipe(explicit))
    stored = P.read_run_config(out) if args.resume else None
    recipe = P.resolve_recipe(explicit, stored)
    dinfo = init_distributed(args.device)
    main = dinfo.is_main
    check_output_dir(out, args.resume, args.overwrite)
    P.check_recipe(recipe)
    objective = recipe["objective"]

    # ---- data
    docs = P.load_documents(recipe["text"] or (), recipe["corpus"] or (), recipe["text_field"],
                            recipe["limit_documents"])
    split = P.split_heldout(docs.texts, recipe["heldout_fraction"])
    if main:
        src = ", ".join(f"{k}: {v}" for k, v in docs.sources.items())
        limited = f", the first {len(docs.texts)} used" if recipe["limit_documents"] else ""
        say(f"data: documents read ({src}), {docs.duplicates} duplicates dropped{limited}: "
            f"{len(split.train)} for training, {len(split.heldout)} held out")
    built = P.build_model(recipe, split.train, out / P.TOKENIZER_DIR if args.resume else None)
    model, tokenizer = built.model, built.tokenizer
    if main:
        say(f"model: {built.description}; objective {objective}"
            + (f", decoder {model.config.decoder.init} ({model.config.decoder.num_hidden_layers} layers)"
               if model.decoder is not None else ""))
        for note in built.notes:
            say(f"note: {note}")
    ids = special_ids(tokenizer)
    L = recipe["max_length"]
    examples, lengths = P.training_examples(objective, tokenizer, split.train, L, recipe["seed"])
    if not examples:
        raise P.UsageError("the training documents give no training sequence")
    cont = P.continuation_ids(tokenizer) if recipe["whole_word_masking"] else None
    if cont is not None and not cont:
        raise P.UsageError("--whole-word-masking: the tokenizer has no word-continuation pieces")
    collate = P.make_collator(objective, ids, L, recipe["mask_prob"], recipe["seed"], bool(recipe["whole_word_masking"]),
                              cont, recipe["infill_ratio"], recipe["infill_lambda"])
    tracker = None
    if objective == "unilm":
        tracker = P.SchemeLossTracker(collate, model)
        collate = tracker
    sets = P.EvalSets()
    if main and split.heldout:
        sets = P.make_eval_sets(objective, tokenizer, split.heldout, L, recipe["mask_prob"], recipe["eval_seed"],
                                recipe["max_eval_sequences"], recipe["eval_batch_size"], recipe["infill_ratio"],
                                recipe["infill_lambda"])
    if main:
        what = "sentence pairs" if objective == "mlm+nsp" else "sequences"
        say(f"training data: {len(examples)} {what} of <= {L} tokens"
            + (f"; held-out evaluation: {sets.info['sequences']} sequences of {sets.info['documents']} documents, "
               f"{sets.info['masked_tokens']} masked tokens (eval seed {recipe['eval_seed']})" if sets else ""))

    from genbert.io import write_json
    from genbert.training import TrainConfig, Trainer

    try:
        config = TrainConfig(
            lr=recipe["lr"], weight_decay=recipe["weight_decay"], warmup=recipe["warmup"], epochs=recipe["epochs"],
            max_steps=recipe["max_steps"], batch_size=recipe["batch_size"], grad_accum=recipe["grad_accum"],
            max_grad_norm=recipe["max_grad_norm"], seed=recipe["seed"], save_steps=recipe["save_steps"],
            save_total_limit=recipe["save_total_limit"], log_steps=recipe["log_steps"],
            bf16=bool(recipe["bf16"]) and not recipe["fp16"], fp16=bool(recipe["fp16"]),
            gradient_checkpointing=bool(recipe["gradient_checkpointing"]),
            new_param_lr_multiplier=recipe["new_param_lr_multiplier"], new_params=frozenset(built.new_params),
            device=args.device, progress=not args.no_progress)
        config.validate()
    except ValueError as e:
        raise P.UsageError(str(e)) from None

    def on_save(ckpt: Path) -> None:  # checkpoints are complete model directories too
        tokenizer.save(ckpt)

    def eval_fn(m) -> Optional[dict[str, Any]]:
        return P.evaluate(m, sets) if sets else None

    step_callback = None
    if tracker is not None and main:
        def step_callback(trainer, record) -> None:
            if record["step"] % config.log_steps == 0 or record["step"] == trainer.total_steps:
                losses = tracker.take()
                if losses:
                    with open(out / P.SCHEME_LOSS_FILE, "a", encoding="utf-8") as f:
                        f.write(json.dumps({"step": record["step"], **losses}, sort_keys=True) + "\n")

    try:
        trainer = Trainer(model, examples, collate, config, out, eval_fn=eval_fn if args.eval_each_epoch else None,
                          lengths=lengths, on_save=on_save, step_callback=step_callback)
    except ValueError as e:
        raise P.UsageError(str(e)) from None
    ckpt = trainer.check_resume() if args.resume else None  # before anything is written
    if args.resume and ckpt is None and main:
        say(f"note: no checkpoint in {out}: starting a new run")

    # ---- from here on the output directory is written
    eval_path = out / P.EVAL_FILE
    eval_meta = {"heldout": {**sets.info, "fraction": recipe["heldout_fraction"], "fingerprint": split.fingerprint},
                 "eval_seed": recipe["eval_seed"], "mask_prob": recipe["mask_prob"], "max_length": L,
                 "objective": objective, "init": recipe["init"]}
    before = None
    if main:
        P.prepare_output_dir(out, args.overwrite)
        if built.trained_tokenizer:
            tokenizer.save(out / P.TOKENIZER_DIR)
        write_json(out / P.RUN_CONFIG, {k: v for k, v in recipe.items() if k in RECIPE_FLAGS})
        if ckpt is not None:
            P.trim_jsonl(out / P.SCHEME_LOSS_FILE, int(ckpt.name.rsplit("-", 1)[-1]))
        elif tracker is not None:
            (out / P.SCHEME_LOSS_FILE).unlink(missing_ok=True)
        if sets:
            old = P.read_eval(eval_path) if args.resume else None
            if old and old.get("before") and all(old.get(k) == v for k, v in eval_meta.items()):
                before = old["before"]  # the initial model's scores, computed by the interrupted run
            else:
                t0 = time.perf_counter()
                before = P.evaluate(model.to(trainer.device), sets)
                say(f"held-out before training: masked-token accuracy {_pct(before['masked_token_accuracy'])}, "
                    f"loss {before['masked_token_loss']:.4f} ({time.perf_counter() - t0:.0f}s)")
            P.write_eval(eval_path, {**eval_meta, "before": before})
        else:
            say("note: no held-out documents (--heldout-fraction 0): no evaluation")
        say(f"training: {trainer.total_steps} steps ({trainer.steps_per_epoch} an epoch), "
            f"batch {config.batch_size} x {config.grad_accum}, lr {config.lr:g}"
            + (f" ({config.new_param_lr_multiplier:g}x for {len(built.new_params)} new tensors)" if built.new_params else "")
            + f", {dinfo.world_size} process(es) on {trainer.device}; writing {out}")
    summary = trainer.train(resume=args.resume)
    if not main:
        return 0
    say(f"trained {summary['steps']} steps in {summary['elapsed_s']:.0f}s "
        f"({summary['tokens_per_s']:.0f} tokens/s), final loss {summary['final_loss']:.4f}"
        if summary["final_loss"] is not None else f"trained {summary['steps']} steps")
    if tracker is not None:
        tracker.take()
        per = tracker.totals()
        if per:
            say("training loss per UniLM scheme (this process, this session): "
                + ", ".join(f"{k} {v:.3f}" for k, v in per.items()))
        tracker.remove()
    final = out / "final"
    P.save_final(model, tokenizer, final)
    if sets:
        after = P.evaluate(model, sets)
        record = {**eval_meta, "before": before, "after": after, "train_steps": summary["steps"],
                  "train_loss": summary["final_loss"], "train_elapsed_s": summary["elapsed_s"],
                  "wall_s": round(time.perf_counter() - t_start, 1), "model": str(final)}
        P.write_eval(eval_path, record)
        say("")
        say(P.format_eval(before, after))
        say("")
        say(f"held-out masked-token accuracy: {_pct(before['masked_token_accuracy'])} before, "
            f"{_pct(after['masked_token_accuracy'])} after ({after['masked_tokens']} masked tokens); "
            f"wrote {eval_path}")
    say(f"model saved to {final} (GenBert.from_pretrained, or --init of scripts/train_summarization.py)")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    from genbert.data.datasets import DataError
    from genbert.summarization import UsageError
    from genbert.training import ResumeError
    try:
        return run(args)
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
