"""Pretraining (or continued pretraining) on plain text, with held-out masked-token accuracy
before and after: the recipe behind ``scripts/pretrain.py`` and ``scripts/eval_mlm.py``.

Objectives (config.PRETRAINING_OBJECTIVES):

* ``mlm`` - BERT masked LM over ``[CLS] chunk [SEP]`` (optionally whole-word masking).
* ``mlm+nsp`` - BERT's masked LM plus next-sentence prediction over sentence pairs.
* ``unilm`` - UniLM: per row one of bidirectional / left-to-right / right-to-left / seq2seq
  masks, MLM on every row (the loss per scheme is tracked, see :class:`SchemeLossTracker`).
* ``infilling`` - BART text infilling: an **encoder-decoder** model reconstructs each chunk
  from a copy whose spans were replaced by one ``[MASK]`` each. An encoder checkpoint gets a
  decoder by ``decoder_init`` (``bert`` = BERT2BERT, ``shared`` = BERTShare, ``random``).

Held-out evaluation: the documents are de-duplicated, then about ``heldout_fraction`` of them
are held out by a hash of their text (:func:`genbert.data.documents.split_heldout`). The
held-out chunks are masked once with ``eval_seed`` (:func:`make_eval_sets`), so the metrics of the
model before and after training (:func:`evaluate`) are computed on exactly the same inputs.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..config import DECODER_INITS, PRETRAINING_OBJECTIVES
from ..data.documents import (
    CORPORA,
    HeldoutSplit,
    StreamStats,
    TokenChunks,
    document_stream,
    heldout_order,
    load_documents,
    split_heldout,
    stream_heldout,
    write_chunks,
)
from ..data.sources import hub_dataset_name
from ..tokenization import Tokenizer
from . import common as C
from .common import UsageError, flag

if TYPE_CHECKING:
    from .heldout import EvalSets

PROG = "pretrain.py"
EVAL_FILE = "mlm_eval.json"
SCHEME_LOSS_FILE = "scheme_loss.jsonl"  # unilm: training loss per mask scheme
FINAL = "final"
STREAM_DIR = "stream-chunks"  # --streaming: the tokenized training sequences, on disk while the run lasts
STREAM_HELDOUT_DOCUMENTS = 10_000  # --streaming: held-out documents kept for evaluation (the first ones)
STREAM_TOKENIZER_DOCUMENTS = 20_000  # --streaming --init scratch: documents the tokenizer is trained on
RUN_ARTIFACTS = (FINAL, C.TOKENIZER_DIR, C.RUN_CONFIG, EVAL_FILE, SCHEME_LOSS_FILE, "log.jsonl", "loss.png",
                 "tensorboard")


@dataclass
class PretrainRecipe(C.ModelFields, C.TrainingFields):
    """Every setting of a pretraining run; each field is a flag of pretrain.py."""

    # data
    text: Optional[list[str]] = flag(None, 'JSONL (a "text" field a line) or plain text (documents separated '
                                           "by blank lines)", group="data")
    corpus: Optional[list[str]] = flag(None, "offline corpora (bbc: 2,225 BBC News articles; wikipedia: gensim's "
                                             "small dump)", group="data", choices=CORPORA)
    dataset: Optional[list[str]] = flag(None, "`datasets` sources: a hub name NAME[:CONFIG] (wikitext:wikitext-103-raw-v1), "
                                              "a directory written by save_to_disk, or parquet/JSON/CSV/text files",
                                        group="data")
    train_split: str = flag("train", "--dataset's split", group="data")
    text_field: str = flag("text", "JSONL field / dataset column holding the text", group="data")
    streaming: bool = flag(False, "read --dataset as a stream and keep the tokenized training sequences on disk: "
                                  "a corpus larger than memory trains (not with mlm+nsp)", group="data")
    limit_documents: Optional[int] = flag(None, "use the first N documents (after de-duplication)", group="data",
                                          min=1)
    heldout_fraction: float = flag(0.05, "share of documents held out for evaluation, 0 = none", group="data",
                                   min=0, max=0.5)
    max_length: int = flag(128, "tokens per training sequence incl. [CLS]/[SEP]", group="data", min=8)
    # model
    objective: str = flag("mlm", "pretraining objective", group="model", choices=PRETRAINING_OBJECTIVES)
    whole_word_masking: bool = flag(False, "mlm: mask whole words", group="model")
    mask_prob: float = flag(0.15, "mlm, mlm+nsp, unilm: share of tokens masked", group="model", above=0, max=1)
    infill_ratio: float = flag(0.3, "infilling: share of tokens inside masked spans", group="model", above=0, max=1)
    infill_lambda: float = flag(3.0, "infilling: mean span length (Poisson)", group="model", above=0)
    decoder_init: Optional[str] = flag(None, "infilling from an encoder checkpoint: bert (BERT2BERT, default), "
                                             "shared (BERTShare), random", group="model", choices=DECODER_INITS)
    decoder_layers: Optional[int] = flag(None, "infilling: decoder depth (default: the encoder's)", group="model",
                                         min=1)
    # optimisation: TrainingFields, with this recipe's defaults
    bf16: bool = flag(True, "bf16 autocast on CUDA (ignored on CPU)", group="training", negatable=True)
    # held-out evaluation
    eval_seed: int = flag(0, "seed of the held-out masking", group="held-out evaluation")
    max_eval_sequences: Optional[int] = flag(512, "held-out sequences scored", group="held-out evaluation", min=1)
    eval_batch_size: int = flag(32, "held-out batch size", group="held-out evaluation", min=1)

    @classmethod
    def resolve(cls, explicit: Mapping[str, Any], stored: Optional[Mapping[str, Any]] = None) -> "PretrainRecipe":
        """Explicit flags, else the stored run's (on --resume), else the defaults. Text files or
        corpora given explicitly replace both stored ones; --fp16 turns bf16 off."""
        layers: list[Mapping[str, Any]] = [stored or {}]
        if any(explicit.get(k) is not None for k in ("text", "corpus", "dataset")):
            layers.append({"text": None, "corpus": None, "dataset": None})
        if explicit.get("fp16"):
            layers.append({"bf16": False})
        return C.recipe_from(cls, *layers, explicit)

    def check(self) -> None:
        C.check_ranges(self)
        self.check_model()
        self.check_training()
        if not self.text and not self.corpus and not self.dataset:
            raise UsageError("no training text: pass --text FILE [FILE ...], --corpus " + "|".join(CORPORA)
                             + " and/or --dataset NAME|DIR|FILE")
        if self.streaming and self.objective == "mlm+nsp":
            raise UsageError("--streaming: --objective mlm+nsp draws sentence pairs across the whole corpus; "
                             "use mlm, unilm or infilling")
        if self.whole_word_masking and self.objective != "mlm":
            raise UsageError(f"--whole-word-masking applies to --objective mlm only, not {self.objective}")
        if self.objective != "infilling":
            for key in ("decoder_init", "decoder_layers"):
                if getattr(self, key) is not None:
                    raise UsageError(f"{C.flag_name(key)} applies to --objective infilling only "
                                     "(the other objectives train an encoder)")

    def model_spec(self) -> C.ModelSpec:
        seq2seq = self.objective == "infilling"
        return C.ModelSpec(init=self.init, scheme="encoder-decoder" if seq2seq else "bidirectional",
                           objective=self.objective,
                           decoder_init=self.decoder_init or ("random" if self.init == "scratch" else "bert"),
                           decoder_layers=self.decoder_layers, seed=self.seed, dropout=self.dropout,
                           hidden_size=self.hidden_size, layers=self.layers, heads=self.heads,
                           intermediate_size=self.intermediate_size, vocab_size=self.vocab_size,
                           max_position_embeddings=self.max_position_embeddings, task="pretraining")

    def default_output_dir(self) -> Path:
        name = self.init if self.init in C.INIT_NAMES else Path(self.init).name or "model"
        return Path("runs") / f"pretrain-{name}-{self.objective.replace('+', '-')}"


def build_model(recipe: PretrainRecipe, train_texts: Sequence[str] = (),
                tokenizer_dir: Optional[Path] = None) -> C.BuiltModel:
    """The model and tokenizer of the recipe: an encoder with the bidirectional scheme, or
    (``infilling``) an encoder-decoder. The NSP head is frozen unless mlm+nsp trains it."""
    built = C.build_model(recipe.model_spec(), train_texts, tokenizer_dir)
    if recipe.objective not in ("mlm+nsp", "infilling"):
        # a bidirectional model scores NSP in every forward, but only mlm+nsp gives it a loss: frozen,
        # it trains exactly as before, and DistributedDataParallel expects no gradient for it
        for p in built.model.nsp_head.parameters():
            p.requires_grad_(False)
        built.new_params = frozenset(n for n in built.new_params if not n.startswith("nsp_head."))
        built.notes.append("the NSP head is frozen (only --objective mlm+nsp gives it a loss)")
    limit = built.model.config.max_position_embeddings
    if recipe.max_length > limit:
        raise UsageError(f"--max-length {recipe.max_length}: the model has {limit} positions")
    return built


# --------------------------------------------------------------------------- held-out results file
def read_eval(path: Path) -> Optional[dict[str, Any]]:
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return d if isinstance(d, dict) else None


def _pct(v: Any) -> str:
    return f"{100 * v:.2f}%" if isinstance(v, float) else "-"


# --------------------------------------------------------------------------- streamed text
class StreamedDocuments:
    """--streaming: the recipe's documents as a stream, de-duplicated and split like
    :func:`load_documents` + :func:`split_heldout` (the same training sequences, in the same
    order), the training sequences written to ``directory`` (:class:`TokenChunks`) and the first
    :data:`STREAM_HELDOUT_DOCUMENTS` held-out documents kept for evaluation."""

    def __init__(self, recipe: PretrainRecipe, directory: Path) -> None:
        self.recipe, self.directory = recipe, directory
        self.stats = StreamStats()
        self.heldout: list[str] = []

    def _training_documents(self, stats: StreamStats, heldout: list[str], limit: int):
        r = self.recipe
        docs = document_stream(r.text or (), r.corpus or (), r.dataset or (), r.text_field, r.train_split,
                               r.limit_documents, stats)
        return stream_heldout(docs, r.heldout_fraction, heldout, limit, stats)

    def tokenizer_sample(self) -> list[str]:
        """The first training documents (for a tokenizer trained on them: --init scratch)."""
        import itertools
        docs = self._training_documents(StreamStats(), [], 0)
        return list(itertools.islice(docs, STREAM_TOKENIZER_DOCUMENTS))

    def chunks(self, tokenizer: Tokenizer, max_length: int) -> TokenChunks:
        """One pass over the stream: the training sequences on disk, the held-out documents kept."""
        self.stats, self.heldout = StreamStats(), []
        chunks = write_chunks(tokenizer, self._training_documents(self.stats, self.heldout, STREAM_HELDOUT_DOCUMENTS),
                              max_length, self.directory)
        if not len(chunks):
            chunks.remove()
            raise UsageError("the training documents give no training sequence")
        return chunks


# --------------------------------------------------------------------------- the run
def run(recipe: PretrainRecipe, opts: C.RunOptions, eval_each_epoch: bool = False,
        log: Callable[[str], None] = C.say) -> dict[str, Any]:
    """Pretrain one recipe into ``opts.output_dir`` (already chosen); returns the held-out record."""
    from ..data.objectives import SpecialIds, continuation_ids_from_tokenizer
    from ..io import write_json
    from ..training import Trainer, init_distributed, trim_jsonl
    from .heldout import EvalSets, SchemeLossTracker, evaluate, make_collator, make_eval_sets, training_examples

    t_start = time.perf_counter()
    out = Path(opts.output_dir)
    dinfo = init_distributed(opts.device)
    main = dinfo.is_main
    objective = recipe.objective
    L = recipe.max_length
    if recipe.streaming:
        stream = StreamedDocuments(recipe, out / STREAM_DIR / f"rank{dinfo.rank}")
        built = build_model(recipe, stream.tokenizer_sample() if recipe.init == "scratch" else (),
                            out / C.TOKENIZER_DIR if opts.resume else None)
        examples = stream.chunks(built.tokenizer, L)
        lengths = examples.lengths(2)
        split = HeldoutSplit([], heldout_order(stream.heldout))
        if main:
            src = ", ".join(f"{k}: {v}" for k, v in stream.stats.sources.items())
            kept = f" (the first {len(split.heldout)} kept)" if stream.stats.heldout > len(split.heldout) else ""
            log(f"data: documents streamed ({src}), {stream.stats.duplicates} duplicates dropped: "
                f"{stream.stats.documents - stream.stats.heldout} for training, {stream.stats.heldout} held out{kept}; "
                f"training sequences on disk in {examples.directory}")
    else:
        docs = load_documents(recipe.text or (), recipe.corpus or (), recipe.text_field, recipe.limit_documents,
                              recipe.dataset or (), recipe.train_split)
        split = split_heldout(docs.texts, recipe.heldout_fraction)
        if main:
            src = ", ".join(f"{k}: {v}" for k, v in docs.sources.items())
            limited = f", the first {len(docs.texts)} used" if recipe.limit_documents else ""
            log(f"data: documents read ({src}), {docs.duplicates} duplicates dropped{limited}: "
                f"{len(split.train)} for training, {len(split.heldout)} held out")
        built = build_model(recipe, split.train, out / C.TOKENIZER_DIR if opts.resume else None)
    model, tokenizer = built.model, built.tokenizer
    if main:
        log(f"model: {built.description}; objective {objective}"
            + (f", decoder {model.config.decoder.init} ({model.config.decoder.num_hidden_layers} layers)"
               if model.decoder is not None else ""))
        for note in built.notes:
            log(f"note: {note}")
    ids = SpecialIds.from_tokenizer(tokenizer)
    if not recipe.streaming:
        examples, lengths = training_examples(objective, tokenizer, split.train, L, recipe.seed)
    if not examples:
        raise UsageError("the training documents give no training sequence")
    cont = continuation_ids_from_tokenizer(tokenizer) if recipe.whole_word_masking else None
    if cont is not None and not cont:
        raise UsageError("--whole-word-masking: the tokenizer has no word-continuation pieces")
    collate = make_collator(objective, ids, L, recipe.mask_prob, recipe.seed, recipe.whole_word_masking, cont,
                            recipe.infill_ratio, recipe.infill_lambda)
    tracker = None
    if objective == "unilm":
        tracker = SchemeLossTracker(collate, model)
        collate = tracker
    sets = EvalSets()
    if main and split.heldout:
        sets = make_eval_sets(objective, tokenizer, split.heldout, L, recipe.mask_prob, recipe.eval_seed,
                              recipe.max_eval_sequences, recipe.eval_batch_size, recipe.infill_ratio,
                              recipe.infill_lambda)
    if main:
        what = "sentence pairs" if objective == "mlm+nsp" else "sequences"
        log(f"training data: {len(examples)} {what} of <= {L} tokens"
            + (f"; held-out evaluation: {sets.info['sequences']} sequences of {sets.info['documents']} documents, "
               f"{sets.info['masked_tokens']} masked tokens (eval seed {recipe.eval_seed})" if sets else ""))
    # bf16 on CUDA only (the flag's help): CPU bf16 is measured for the seq2seq recipes, not for pretraining
    import torch
    cuda = torch.device(opts.device).type == "cuda" if opts.device else torch.cuda.is_available()
    config = recipe.train_config(built.new_params, opts.device, not opts.no_progress,
                                 bf16=recipe.bf16 and not recipe.fp16 and cuda)

    def on_save(ckpt: Path) -> None:  # checkpoints are complete model directories too
        tokenizer.save(ckpt)

    def eval_fn(m) -> Optional[dict[str, Any]]:
        return evaluate(m, sets) if sets else None

    step_callback = None
    if tracker is not None and main:
        def step_callback(trainer, record) -> None:
            if record["step"] % config.log_steps == 0 or record["step"] == trainer.total_steps:
                losses = tracker.take()
                if losses:
                    with open(out / SCHEME_LOSS_FILE, "a", encoding="utf-8") as f:
                        f.write(json.dumps({"step": record["step"], **losses}, sort_keys=True) + "\n")
    try:
        trainer = Trainer(model, examples, collate, config, out, eval_fn=eval_fn if eval_each_epoch else None,
                          lengths=lengths, on_save=on_save, step_callback=step_callback)
    except ValueError as e:
        if isinstance(examples, TokenChunks):
            examples.remove()
        raise UsageError(str(e)) from None
    ckpt = trainer.check_resume() if opts.resume else None  # before anything is written
    if opts.resume and ckpt is None and main:
        log(f"note: no checkpoint in {out}: starting a new run")

    # ---- from here on the output directory is written
    eval_path = out / EVAL_FILE
    eval_meta = {"heldout": {**sets.info, "fraction": recipe.heldout_fraction, "fingerprint": split.fingerprint},
                 "eval_seed": recipe.eval_seed, "mask_prob": recipe.mask_prob, "max_length": L,
                 "objective": objective, "init": recipe.init}
    before = None
    reporter = None
    if main:
        C.prepare_output_dir(out, opts.overwrite, RUN_ARTIFACTS)
        reporter = C.tracker(opts, out, ckpt)
        trainer.on_log = reporter
        if built.trained_tokenizer:
            tokenizer.save(out / C.TOKENIZER_DIR)
        C.write_run_config(out, recipe)
        if ckpt is not None:
            trim_jsonl(out / SCHEME_LOSS_FILE, int(ckpt.name.rsplit("-", 1)[-1]))
        elif tracker is not None:
            (out / SCHEME_LOSS_FILE).unlink(missing_ok=True)
        if sets:
            old = read_eval(eval_path) if opts.resume else None
            if old and old.get("before") and all(old.get(k) == v for k, v in eval_meta.items()):
                before = old["before"]  # the initial model's scores, computed by the interrupted run
            else:
                t0 = time.perf_counter()
                before = evaluate(model.to(trainer.device), sets)
                log(f"held-out before training: masked-token accuracy {_pct(before['masked_token_accuracy'])}, "
                    f"loss {before['masked_token_loss']:.4f} ({time.perf_counter() - t0:.0f}s)")
            write_json(eval_path, {**eval_meta, "before": before})
            if reporter is not None and ckpt is None:
                reporter.log_scores(0, before, "heldout")
        else:
            log("note: no held-out documents (--heldout-fraction 0): no evaluation")
        log(f"training: {trainer.total_steps} steps ({trainer.steps_per_epoch} an epoch), "
            f"batch {config.batch_size} x {config.grad_accum}, lr {config.lr:g}"
            + (f" ({config.new_param_lr_multiplier:g}x for {len(built.new_params)} new tensors)"
               if built.new_params else "")
            + f", {dinfo.world_size} process(es) on {trainer.device}{trainer.autocast_note}; writing {out}")
    try:
        summary = trainer.train(resume=opts.resume)
    finally:
        if isinstance(examples, TokenChunks):
            examples.remove()
    record: dict[str, Any] = {**eval_meta, "before": before, "train_steps": summary["steps"]}
    if not main:
        return record
    try:
        _finish(recipe, opts, record, summary, model, tokenizer, sets, before, tracker, reporter, t_start, log)
    finally:
        if reporter is not None:
            reporter.close()
    return record


def _finish(recipe: PretrainRecipe, opts: C.RunOptions, record: dict[str, Any], summary: dict[str, Any], model,
            tokenizer: Tokenizer, sets: EvalSets, before: Optional[dict[str, Any]], tracker, reporter, t_start: float,
            log: Callable[[str], None]) -> None:
    """After training (main process): the final model with its card, the held-out evaluation."""
    from ..hub import write_model_card
    from .heldout import evaluate, format_eval
    from ..io import atomic_dir, write_json
    out = Path(opts.output_dir)
    eval_path = out / EVAL_FILE
    if summary["final_loss"] is not None:
        log(f"trained {summary['steps']} steps in {summary['elapsed_s']:.0f}s "
            f"({summary['tokens_per_s']:.0f} tokens/s), final loss {summary['final_loss']:.4f}")
    if tracker is not None:
        tracker.take()
        per = tracker.totals()
        if per:
            log("training loss per UniLM scheme (this process, this session): "
                + ", ".join(f"{k} {v:.3f}" for k, v in per.items()))
        tracker.remove()
    final = out / FINAL

    card = C.card_fields(recipe.init, ", ".join([*(recipe.dataset or ()), *(recipe.corpus or ()),
                                                 *(Path(t).name for t in recipe.text or ())]) or None,
                         "pretraining", recipe)
    card["hub_dataset"] = next(filter(None, map(hub_dataset_name, recipe.dataset or ())), None)

    def write_final(d: Path) -> None:
        model.save_pretrained(d)
        tokenizer.save(d)
        write_model_card(d, model.config.to_dict(), **card)
    atomic_dir(final, write_final)
    if sets:
        after = evaluate(model, sets)
        record.update(after=after, train_loss=summary["final_loss"], train_elapsed_s=summary["elapsed_s"],
                      wall_s=round(time.perf_counter() - t_start, 1), model=str(final))
        write_json(eval_path, record)
        if reporter is not None:
            reporter.log_scores(summary["steps"], after, "heldout")
        write_model_card(final, model.config.to_dict(), evaluated_on=f"{sets.info['sequences']} held-out sequences "
                         f"of {sets.info['documents']} documents (masked-token accuracy before training: "
                         f"{_pct(before['masked_token_accuracy']) if before else '-'})", scores=after, **card)
        log("")
        log(format_eval(before, after))
        log("")
        log(f"held-out masked-token accuracy: {_pct(before['masked_token_accuracy'])} before, "
            f"{_pct(after['masked_token_accuracy'])} after ({after['masked_tokens']} masked tokens); "
            f"wrote {eval_path}")
    log(f"model saved to {final} (GenBert.from_pretrained, or --init of scripts/train_summarization.py)")


# --------------------------------------------------------------------------- command line
def build_parser(prog: str = PROG, doc: str = "") -> Any:
    p = C.new_parser(prog, doc)
    C.add_recipe_arguments(p, PretrainRecipe)
    C.add_run_arguments(p, "default runs/pretrain-INIT-OBJECTIVE")
    p.add_argument_group("held-out evaluation").add_argument(
        "--eval-each-epoch", action="store_true", help="also evaluate after every epoch (log.jsonl)")
    return p


def main(argv: Optional[list[str]] = None, prog: str = PROG, doc: str = "") -> int:
    import sys
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(prog, doc).parse_args(argv)

    def body() -> int:
        explicit = C.explicit_values(args, PretrainRecipe)
        if explicit.get("text") is not None:
            explicit["text"] = [str(Path(f).resolve()) for f in explicit["text"]]
        if explicit.get("dataset") is not None:  # a local path still names the data after a cd (--resume)
            explicit["dataset"] = [str(Path(d).resolve()) if Path(d).exists() else d for d in explicit["dataset"]]
        if explicit.get("init") not in (None, *C.INIT_NAMES) and Path(explicit["init"]).is_dir():
            explicit["init"] = str(Path(explicit["init"]).resolve())
        opts = C.run_options(args)
        out = Path(opts.output_dir) if opts.output_dir is not None else PretrainRecipe.resolve(explicit).default_output_dir()
        recipe = PretrainRecipe.resolve(explicit, C.read_run_config(out) if opts.resume else None)
        recipe.check()
        C.check_device(opts.device)
        C.check_output_dir(out, opts.resume, opts.overwrite)
        run(recipe, replace(opts, output_dir=out), eval_each_epoch=args.eval_each_epoch)
        return 0

    return C.main_entry(prog, body)


# --------------------------------------------------------------------------- eval_mlm.py
def eval_parser(prog: str = "eval_mlm.py", doc: str = "") -> Any:
    R = PretrainRecipe()
    p = C.new_parser(prog, doc)
    p.add_argument("model", help="genbert or transformers BERT directory (with its tokenizer), a Hugging Face "
                                 "model id, or 'minilm'")
    p.add_argument("--text", nargs="+", action="extend", metavar="FILE", help="as pretrain.py --text")
    p.add_argument("--corpus", nargs="+", action="extend", choices=CORPORA)
    p.add_argument("--dataset", nargs="+", action="extend", metavar="SPEC", help="as pretrain.py --dataset")
    p.add_argument("--train-split", default=R.train_split, help="--dataset's split (as in pretraining)")
    p.add_argument("--text-field", default=R.text_field)
    p.add_argument("--limit-documents", type=int)
    p.add_argument("--heldout-fraction", type=float, default=R.heldout_fraction)
    p.add_argument("--max-length", type=int, default=R.max_length)
    p.add_argument("--mask-prob", type=float, default=R.mask_prob)
    p.add_argument("--eval-seed", type=int, default=R.eval_seed)
    p.add_argument("--max-eval-sequences", type=int, default=R.max_eval_sequences)
    p.add_argument("--eval-batch-size", type=int, default=R.eval_batch_size)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    return p


def eval_main(argv: Optional[list[str]] = None, prog: str = "eval_mlm.py", doc: str = "") -> int:
    """Held-out masked-token accuracy of any model, on the split pretrain.py holds out."""
    import sys
    import warnings
    a = eval_parser(prog, doc).parse_args(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        from ..model import GenBert
        from .heldout import evaluate, make_eval_sets
        if not a.text and not a.corpus and not a.dataset:
            raise UsageError("no text: pass --text FILE [FILE ...], --corpus " + "|".join(CORPORA)
                             + " and/or --dataset NAME|DIR|FILE")
        if a.heldout_fraction <= 0:
            raise UsageError("--heldout-fraction must be > 0")
        path = C.resolve_init(a.model, flag="") if a.model != "scratch" else None
        if path is None:
            raise UsageError("scratch: not a model")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "newly initialised: lm_head": that is what is measured
                model = GenBert.from_pretrained(path)
            tokenizer = Tokenizer.from_dir(path)
        except (ValueError, FileNotFoundError, ImportError) as e:
            raise UsageError(f"{path}: {e}") from None
        if a.max_length > model.config.max_position_embeddings:
            raise UsageError(f"--max-length {a.max_length}: the model has {model.config.max_position_embeddings} "
                             "positions")
        docs = load_documents(a.text or (), a.corpus or (), a.text_field, a.limit_documents, a.dataset or (),
                              a.train_split)
        split = split_heldout(docs.texts, a.heldout_fraction)
        sets = make_eval_sets("mlm", tokenizer, split.heldout, a.max_length, a.mask_prob, a.eval_seed,
                              a.max_eval_sequences, a.eval_batch_size)
        model.to(a.device)
        m = evaluate(model, sets)
        result = {**m, "model": str(path), "heldout": {**sets.info, "fingerprint": split.fingerprint},
                  "eval_seed": a.eval_seed, "max_length": a.max_length}
        if a.json:
            print(json.dumps(result, sort_keys=True))
        else:
            print(f"{path}: held-out masked-token accuracy {100 * m['masked_token_accuracy']:.2f}%, "
                  f"loss {m['masked_token_loss']:.4f} ({m['masked_tokens']} masked tokens in "
                  f"{sets.info['sequences']} sequences of {sets.info['documents']} documents)")
        return 0

    return C.main_entry(prog, body)
