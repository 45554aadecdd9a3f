"""Seq2seq fine-tuning (summarization, headline generation, translation): the one training path
every way of making BERT generate goes through, from ``scripts/train_summarization.py`` and from
the comparison alike.

:class:`Seq2SeqRecipe` holds every setting; its fields are the script's flags and its defaults the
default run (all-MiniLM-L6-v2 fine-tuned into a BBC headline generator, a soup of two models, about
15 minutes on 2 CPU cores). Lengths count special tokens: ``max_source_length`` is the whole
``[CLS] source [SEP]`` and ``max_target_length`` the target with its closing ``[SEP]`` (=
``max_new_tokens`` at generation), which is what :class:`genbert.TextGenerator` means by them too.
:func:`run` trains and evaluates one recipe; :func:`main` is the command line.
"""
from __future__ import annotations

import itertools
import json
import shutil
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

from ..config import DECODER_INITS, DIFFUSION_MASKS, DIFFUSION_ORDERS, OBJECTIVES, SCHEMES, TASKS
from ..data.datasets import NAMED_DATASETS
from . import common as C
from .common import UsageError, flag

PROG = "train_summarization.py"
FINAL = "final"
WARMUP_DIR = "mlm-warmup"
SOUP_DIR = "soup"  # OUTPUT/soup: SOUP_START (the members' common start) and member-I/ (each one's run)
SOUP_START = f"{SOUP_DIR}/start.safetensors"
# fields whose default changed what a run does when they were added: what a run stored before them did
STORED_BEFORE = {"freeze_vocabulary": False, "copy_attention": False, "soup": 1}
ENCODE_BATCH = 1000  # pairs tokenized at a time
# the copy prior summarization decodes with by default (GenerationConfig.copy_bias), chosen on the BBC
# validation split for the default way (prefix pseudo-mask) and for masked diffusion (docs/summarization.md)
COPY_BIAS = {"autoregressive": 2.5, "bidirectional": 2.0}
DIFFUSION_ONLY = ("diffusion_mask", "diffusion_replace", "diffusion_weight", "fit_block")  # --scheme bidirectional's
WARMUP_MAX_DOCUMENTS = 20_000  # the MLM warm-up reads at most this many training sources (a few epochs' worth)
# what a run writes into its output directory (removed by --overwrite; nothing else is touched)
RUN_ARTIFACTS = (FINAL, C.TOKENIZER_DIR, C.RUN_CONFIG, "log.jsonl", "loss.png", "metrics.json",
                 "predictions.jsonl", WARMUP_DIR, SOUP_DIR, "tensorboard")


def _frozen(freeze_vocabulary: Optional[bool], scheme: str) -> bool:
    """--freeze-vocabulary as given, else on for the prefix and bidirectional schemes (the ones measured
    with it; causal was not)."""
    return freeze_vocabulary if freeze_vocabulary is not None else scheme in ("prefix", "bidirectional")


COPY_HEAD = "copy_head."  # the parameter names of the model's copy head


def _souped(soup: Optional[int], scheme: str) -> int:
    """--soup as given, else 2 for the prefix and bidirectional schemes (the ones measured with it) and 1
    for the others."""
    return soup if soup is not None else 2 if scheme in ("prefix", "bidirectional") else 1


def _diffusion_steps(steps: Optional[int], block: int) -> int:
    """--steps as given, else a quarter of the target block, rounded up (BBC headlines: 4 passes over 16
    tokens, about 0.8 passes per generated token; docs/diffusion.md)."""
    return steps or -(-block // 4)


def _copying(copy_attention: Optional[bool], scheme: str) -> bool:
    """--copy-attention as given, else on for the prefix and bidirectional (diffusion) schemes."""
    return copy_attention if copy_attention is not None else scheme in ("prefix", "bidirectional")


@dataclass
class Seq2SeqRecipe(C.ModelFields, C.TrainingFields):
    """Every setting of a seq2seq fine-tuning run; each field is a flag of train_summarization.py."""

    # data
    dataset: Optional[str] = flag("bbc-headlines", f"a built-in dataset ({', '.join(NAMED_DATASETS)}), a `datasets` "
                                                   "hub name NAME[:CONFIG] (cnn_dailymail:3.0.0), a directory written "
                                                   "by save_to_disk, or data files (parquet, JSONL, CSV, ...)",
                                  group="data")
    train_split: str = flag("train", "--dataset's split to train on", group="data")
    validation_split: str = flag("validation", "--dataset's split to evaluate on", group="data")
    train: Optional[str] = flag(None, 'training pairs: JSONL ({"source": ..., "target": ...} a line), JSON, CSV or '
                                      "TSV with a header, parquet or arrow; replaces --dataset", group="data")
    validation: Optional[str] = flag(None, "validation pairs, same formats (with --train)", group="data")
    source_field: str = flag("source", "field / column of the source text", group="data")
    target_field: str = flag("target", "field / column of the target text", group="data")
    limit_train: Optional[int] = flag(None, "use the first N training pairs", group="data", min=1)
    limit_eval: Optional[int] = flag(None, "evaluate on the first N validation pairs", group="data", min=1)
    task: Optional[str] = flag(None, "scoring: ROUGE (summarization) or BLEU/chrF (translation); default: "
                                     "the named dataset's task, else summarization", group="data", choices=TASKS)
    # model
    scheme: str = flag("prefix", "how the model generates", group="model", choices=SCHEMES)
    objective: Optional[str] = flag(None, "training objective; prefix: pseudo-mask (default), next-token, "
                                          "masked-target; the other schemes have one each", group="model",
                                    choices=tuple(dict.fromkeys(o for v in OBJECTIVES.values() for o in v)))
    decoder_init: str = flag("bert", "encoder-decoder: BERT2BERT (bert), BERTShare (shared) or BERT2Rnd (random)",
                             group="model", choices=DECODER_INITS)
    decoder_layers: Optional[int] = flag(None, "encoder-decoder: decoder depth (default: the encoder's)",
                                         group="model", min=1)
    mask_prob: float = flag(0.7, "masked-target: share of target tokens masked", group="model", above=0, max=1)
    diffusion_mask: str = flag("source-block", "bidirectional: source-block (the source sees only the source: "
                                               "its keys and values are computed once) or bidirectional (ablation)",
                               group="model", choices=DIFFUSION_MASKS)
    # 80/10/10 measured better than all-[MASK] on BBC validation (docs/diffusion.md)
    diffusion_replace: str = flag("80/10/10", "bidirectional: a masked target token becomes BERT's 80/10/10 "
                                              "([MASK] / a random token / itself) or [MASK] (mask)",
                                  group="model", choices=("mask", "80/10/10"))
    diffusion_weight: str = flag("elbo", "bidirectional: a masked token's loss weight: elbo (1/(t*L), MDLM / LLaDA) "
                                         "or mean (the mean over the row's masked tokens, Mask-Predict)",
                                 group="model", choices=("elbo", "mean"))
    freeze_vocabulary: Optional[bool] = flag(None, "keep the word embeddings (tied to the vocabulary projection) "
                                                   "and the vocabulary bias as the MLM warm-up leaves them in "
                                                   "seq2seq training (default: on for the prefix and bidirectional "
                                                   "schemes)",
                                             group="model", negatable=True, show_default=False)
    copy_attention: Optional[bool] = flag(None, "a pointer-generator copy head: each next token mixes the "
                                                "vocabulary's distribution with an attention over the source's "
                                                "tokens (prefix and bidirectional schemes; default: on)",
                                          group="model", negatable=True, show_default=False)
    random_weights: bool = flag(False, "keep --init's architecture and vocabulary but draw every weight anew "
                                       "(the no-pretraining control)", group="model")
    soup: Optional[int] = flag(
        None, "train SOUP models from the same start (after the MLM warm-up) with seeds SEED, ..., SEED+SOUP-1 "
              "(data order, masking, dropout) and average their weights, a uniform model soup; SOUP times the "
              "training time "
              "(default: 2 for the prefix scheme, +0.6 to +2.0 ROUGE-L over either seed alone on three held-out "
              "BBC topics, and for the bidirectional one, +0.9 on BBC validation; 1 for the others)", group="training", min=1, show_default=False)
    # a fresh MLM head (all-MiniLM-L6-v2 has none) learns to predict tokens before seq2seq training
    mlm_warmup_steps: int = flag(200, "MLM steps on the training sources before seq2seq training "
                                      "(prefix, causal and bidirectional schemes), 0 = off", group="model", min=0)
    # lengths (special tokens included)
    max_source_length: int = flag(64, "source tokens incl. [CLS]/[SEP]; longer sources are cut", group="training",
                                  min=3)
    max_target_length: int = flag(24, "target tokens incl. [SEP] (= max new tokens when generating)",
                                  group="training", min=2)
    # optimisation: TrainingFields, with this recipe's defaults
    max_steps: Optional[int] = flag(1000, "optimizer steps (overrides --epochs; --epochs alone unsets it)",
                                    group="training", min=1)
    lr: float = flag(2e-4, "peak learning rate", group="training", above=0)
    new_param_lr_multiplier: float = flag(5.0, "LR factor for newly initialised weights (when there is no MLM "
                                               "warm-up)", group="training", above=0)
    warmup: float = flag(60, "LR warm-up: a fraction (<1) of the steps, or a number of steps", group="training",
                         min=0)
    save_steps: int = flag(250, "checkpoint every N steps, 0 = only at the end", group="training", min=0)
    label_smoothing: float = flag(0.1, "label smoothing", group="training", min=0, below=1)
    # generation / evaluation
    num_beams: int = flag(4, "beam size", group="evaluation", min=1)
    no_repeat_ngram_size: int = flag(3, "never repeat an n-gram of this size, 0 = off", group="evaluation", min=0)
    no_repeat_word_ngram_size: Optional[int] = flag(
        None, "never repeat a word n-gram of this size (words as a reader sees them, not word pieces), 0 = off "
              "(default: 1 for summarization, no word twice; 0 for translation)", group="evaluation", min=0)
    no_repeat_content_words: Optional[bool] = flag(
        None, "never repeat a content word (any word but a short English function-word list) within one output "
              "(default: on for summarization, off for translation; --no-no-repeat-content-words turns it off)",
        group="evaluation", negatable=True)
    length_penalty: float = flag(1.0, "beam score / length**penalty", group="evaluation")
    eval_batch_size: int = flag(32, "sources per generate call", group="evaluation", min=1)
    steps: Optional[int] = flag(None, "bidirectional: denoising passes over the target block (default: a "
                                      "quarter of --max-target-length, rounded up)", group="evaluation", min=1)
    order: str = flag("confidence", "bidirectional: which masked tokens are committed first",
                      group="evaluation", choices=DIFFUSION_ORDERS)
    block_length: Optional[int] = flag(None, "bidirectional: semi-autoregressive blocks of this many tokens "
                                             "(must divide --max-target-length)", group="evaluation", min=1)
    fit_block: bool = flag(True, "bidirectional: shrink the target block to the longest training target and its "
                                 "end token (at most --max-target-length; BBC headlines: 16 tokens, +1.2 ROUGE-L on "
                                 "validation over 24)", group="model", negatable=True)
    collapse_repeats: bool = flag(True, "bidirectional: keep a token repeated in a row once (+0.8 to +2.6 ROUGE-L "
                                        "on BBC validation)", group="evaluation", negatable=True)
    copy_bias: Optional[float] = flag(
        None, "added to the log-probability of every source token at every step, a copy prior (default for "
              "summarization, chosen on BBC validation: 2.5, 2 with --scheme bidirectional; 0 for translation)",
        group="evaluation")
    copy_subwords: Optional[bool] = flag(
        None, "a word of several word pieces must be a word of the source, so names are copied, not made up of "
              "pieces (default: on for summarization, chosen on validation; off for translation; --no-copy-subwords "
              "turns it off)", group="evaluation", negatable=True)
    copy_numbers: Optional[bool] = flag(
        None, "a number must be a number of the source, whole, so figures are copied, not made up (default: on "
              "for summarization decoded token by token, chosen on validation; off for translation and "
              "--scheme bidirectional; --no-copy-numbers turns it off)", group="evaluation", negatable=True)

    @property
    def seq2seq_objective(self) -> str:
        """The objective, the scheme's default when none is set."""
        return self.objective or OBJECTIVES[self.scheme][0]

    @classmethod
    def resolve(cls, explicit: dict[str, Any], stored: Optional[dict[str, Any]] = None) -> "Seq2SeqRecipe":
        """Explicit flags, else the stored run's (on --resume), else the defaults. Data files given
        explicitly replace the named dataset; a named dataset given explicitly drops stored files;
        --epochs alone sets the length of the run."""
        layers: list[dict[str, Any]] = [{**STORED_BEFORE, **stored} if stored is not None else {}]
        if explicit.get("train") is not None:
            layers.append({"dataset": None})
        elif explicit.get("dataset") is not None:
            layers.append({"train": None, "validation": None})
        if explicit.get("epochs") is not None and explicit.get("max_steps") is None:
            layers.append({"max_steps": None})
        return C.recipe_from(cls, *layers, explicit)

    def check(self) -> None:
        """Every flag and combination, before anything is read or written; UsageError names the flag."""
        C.check_ranges(self)
        self.check_model()
        self.check_training()
        if self.objective is not None and self.objective not in OBJECTIVES[self.scheme]:
            owners = [s for s, objs in OBJECTIVES.items() if self.objective in objs]
            raise UsageError(f"--objective {self.objective} applies to --scheme {' or '.join(owners)} only; "
                             f"--scheme {self.scheme} trains {', '.join(OBJECTIVES[self.scheme])}")
        if self.train is None and self.validation is not None:
            raise UsageError("--validation needs --train (or use --dataset)")
        if self.copy_attention and self.scheme not in ("prefix", "bidirectional"):  # an explicit --copy-attention
            raise UsageError(f"--copy-attention applies to --scheme prefix or bidirectional only, not {self.scheme}")
        if self.freeze_vocabulary and self.scheme == "encoder-decoder":
            raise UsageError("--freeze-vocabulary applies to the encoder-only schemes (prefix, causal, bidirectional)")
        if self.scheme == "bidirectional":
            for name in ("no_repeat_word_ngram_size",):
                if getattr(self, name):
                    raise UsageError(f"{C.flag_name(name)} does not apply to --scheme bidirectional (diffusion "
                                     "decoding)")
            steps = self.diffusion_steps
            if steps > self.max_target_length:
                raise UsageError(f"--steps={steps}: must be <= --max-target-length={self.max_target_length}")
            if self.block_length is not None and (self.max_target_length % self.block_length
                                                  or steps % (self.max_target_length // self.block_length)):
                raise UsageError(f"--block-length={self.block_length}: must divide --max-target-length="
                                 f"{self.max_target_length} into blocks that divide --steps={steps}")

    @property
    def diffusion_steps(self) -> int:
        return _diffusion_steps(self.steps, self.max_target_length)

    def model_spec(self, task: str) -> C.ModelSpec:
        return C.ModelSpec(init=self.init, scheme=self.scheme, objective=self.seq2seq_objective,
                           decoder_init=self.decoder_init, decoder_layers=self.decoder_layers, seed=self.seed,
                           dropout=self.dropout, hidden_size=self.hidden_size, layers=self.layers, heads=self.heads,
                           intermediate_size=self.intermediate_size, vocab_size=self.vocab_size,
                           max_position_embeddings=self.max_position_embeddings,
                           lowercase=task != "translation",  # BLEU is case-sensitive; ROUGE is not
                           task=task, random_weights=self.random_weights, diffusion_mask=self.diffusion_mask,
                           copy_attention=self.copying)

    def content_word_blocking(self, task: str) -> bool:
        """--no-repeat-content-words, else on for summarization: blocking repeated content words took
        the BBC validation headlines that repeat one from 21% to 0% at -0.2 ROUGE-L (docs/summarization.md);
        the word list is English, so a translation (into French) leaves it off."""
        return self.no_repeat_content_words if self.no_repeat_content_words is not None else task == "summarization"

    def word_ngram_blocking(self, task: str) -> int:
        """--no-repeat-word-ngram-size, else 1 for summarization (no word twice in a headline, function
        words included: 1.2% of the BBC training headlines repeat a word, the model's 7% on unseen
        topics; ROUGE-L +0.05 on average on the validation articles of six models, +0.23 / +0.38 on the
        sports / business held-out tests; docs/summarization.md) and 0 for translation. Diffusion has
        its own exact-word rule."""
        if self.no_repeat_word_ngram_size is not None:
            return self.no_repeat_word_ngram_size
        return int(task == "summarization" and self.scheme != "bidirectional")

    def copy_prior(self, task: str) -> float:
        """--copy-bias, else COPY_BIAS for summarization (chosen on BBC validation: headlines reuse the
        article's words, docs/summarization.md) and 0 for translation (its source is another language)."""
        if self.copy_bias is not None:
            return self.copy_bias
        return COPY_BIAS["bidirectional" if self.scheme == "bidirectional" else "autoregressive"] \
            if task == "summarization" else 0.0

    @staticmethod
    def resolve_defaults(fields: dict[str, Any]) -> dict[str, Any]:
        """A recipe's fields with the defaults that depend on the scheme resolved (a None that means on
        for one scheme and off for another), as a run stores them: a later change of a default cannot
        change what resuming a stored run does."""
        scheme = fields.get("scheme", "prefix")
        steps = fields.get("steps")
        if scheme == "bidirectional" and fields.get("max_target_length"):
            steps = _diffusion_steps(steps, fields["max_target_length"])
        return {**fields, "freeze_vocabulary": _frozen(fields.get("freeze_vocabulary"), scheme),
                "copy_attention": _copying(fields.get("copy_attention"), scheme),
                "soup": _souped(fields.get("soup"), scheme), "steps": steps}

    @property
    def copying(self) -> bool:
        """--copy-attention, else on for the prefix and bidirectional schemes: trained on four BBC
        topics, the prefix model with the copy head scored +3.3 and +1.7 ROUGE-L on the fifth (sports,
        business), and +5.08 over lead-10 pooled over all five held-out topics, against +3.11 without
        it (docs/summarization.md); the diffusion model +3.6 on the BBC validation split
        (docs/diffusion.md)."""
        return _copying(self.copy_attention, self.scheme)

    @property
    def soup_size(self) -> int:
        """--soup, else 2 for the prefix and bidirectional schemes. Prefix: trained on four BBC topics,
        the average of two seeds' weights beat both seeds on the fifth topic's validation and test
        articles for sports, business and entertainment (test ROUGE-L +0.6 to +2.0 over either seed
        alone; docs/summarization.md). Bidirectional: +0.9 ROUGE-L over its first seed alone on BBC
        validation (the mean of four decodings), and the prefix default's training budget
        (docs/diffusion.md)."""
        return _souped(self.soup, self.scheme)

    @property
    def frozen_vocabulary(self) -> bool:
        """--freeze-vocabulary, else on for the prefix and bidirectional schemes: trained on four BBC
        topics, the prefix model then scored +3.9 and +5.6 ROUGE-L on the fifth (business, sports),
        the diffusion model +2.4 and +3.0, at +1.4 / -0.6 and +1.3 / -0.3 on their four topics'
        validation articles (docs/summarization.md, docs/diffusion.md). Causal was not measured."""
        return _frozen(self.freeze_vocabulary, self.scheme)

    def subword_copying(self, task: str) -> bool:
        """--copy-subwords, else on for summarization: it took the BBC validation ROUGE-L of the
        default from 28.24 to 28.55 (+0.47 on average over six prefix models, +0.37 over seven
        diffusion models; docs/summarization.md, docs/diffusion.md). A translation's source is
        another language."""
        if self.copy_subwords is not None:
            return self.copy_subwords
        return task == "summarization"

    def number_copying(self, task: str) -> bool:
        """--copy-numbers, else on for summarization decoded token by token: the default model wrote a
        number its article does not have in 5 of 223 BBC validation headlines ("76.1.13bn", "2-20-000",
        "fewer-000") and none with it, at -0.02 ROUGE-L [-0.10, +0.03] (docs/summarization.md). Diffusion commits a
        number's pieces in any order, which the rule cannot follow; a translation may rewrite numbers."""
        if self.copy_numbers is not None:
            return self.copy_numbers
        return task == "summarization" and self.scheme != "bidirectional"

    def generation_settings(self, task: str = "summarization") -> dict[str, Any]:
        """What TextGenerator stores in generation.json for this run."""
        content = self.content_word_blocking(task)
        common = {"max_source_length": self.max_source_length, "max_target_length": self.max_target_length,
                  "max_new_tokens": self.max_target_length, "scheme": self.scheme,
                  "objective": self.seq2seq_objective, "copy_bias": self.copy_prior(task),
                  "copy_subwords": self.subword_copying(task)}
        if self.scheme == "bidirectional":
            return {**common, "steps": self.diffusion_steps, "order": self.order, "block_length": self.block_length,
                    "collapse_repeats": self.collapse_repeats, "no_repeat_content_words": content}
        return {**common, "num_beams": self.num_beams, "no_repeat_ngram_size": self.no_repeat_ngram_size,
                "no_repeat_word_ngram_size": self.word_ngram_blocking(task),
                "no_repeat_content_words": content, "length_penalty": self.length_penalty,
                "copy_numbers": self.number_copying(task)}

    def default_output_dir(self) -> Path:
        from ..data.sources import describe
        return Path("runs") / describe(self.train or self.dataset or "summarization")


# --------------------------------------------------------------------------- data
@dataclass
class PairData:
    train: Any  # genbert.data.sources.PairSplit: {"id", "source", "target"} records, read in batches
    validation: list[dict]
    skipped: dict[str, int] = field(default_factory=dict)  # where -> empty records skipped
    name: str = ""
    task: str = "summarization"  # "translation" for translation datasets (scored with BLEU/chrF)


def load_data(recipe: Seq2SeqRecipe, need_validation: bool = True) -> PairData:
    """Files (``--train``/``--validation``) or ``--dataset``'s ``--train-split``/``--validation-split``
    (any data spec of :mod:`genbert.data.sources`). The training pairs stay where datasets keeps
    them (read in batches); the validation pairs, which are generated for, are a list."""
    from ..data.datasets import dataset_task
    from ..data.sources import describe, pair_split
    fields = (recipe.source_field, recipe.target_field)
    if recipe.train is not None:
        train = pair_split(recipe.train, "train", *fields, flag="--train", limit=recipe.limit_train)
        data = PairData(train, [], {}, describe(recipe.train))
        where = {"train": str(recipe.train), "validation": str(recipe.validation)}
        if recipe.validation is not None:
            validation = pair_split(recipe.validation, "train", *fields, flag="--validation", id_prefix="validation",
                                    limit=recipe.limit_eval)
            data.validation = list(validation)
            if validation.skipped:
                data.skipped[where["validation"]] = validation.skipped
        elif need_validation:
            raise UsageError("--train needs --validation for evaluation (or pass --no-eval)")
    else:
        name = recipe.dataset or "bbc-headlines"
        train = pair_split(name, recipe.train_split, *fields, split_flag="--train-split", limit=recipe.limit_train)
        data = PairData(train, [], {}, describe(name), dataset_task(name))
        where = {"train": f"{name} ({recipe.train_split})"}
        if need_validation:
            validation = pair_split(name, recipe.validation_split, *fields, split_flag="--validation-split",
                                    limit=recipe.limit_eval)
            data.validation = list(validation)
            if validation.skipped:
                data.skipped[f"{name} ({recipe.validation_split})"] = validation.skipped
    len(train)  # counts the pairs with an empty side too
    if train.skipped:
        data.skipped = {where["train"]: train.skipped, **data.skipped}
    return data


def encode_pairs(tokenizer, records: Iterable[dict], max_source_length: int,
                 max_target_length: int) -> list[tuple[list[int], list[int]]]:
    """(source ids, target ids) without special tokens, cut so that ``[CLS] src [SEP]`` has at most
    ``max_source_length`` tokens and ``tgt [SEP]`` at most ``max_target_length``. The records are
    read a batch at a time: only the (cut) ids of a large dataset are held."""
    out: list[tuple[list[int], list[int]]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for batch in _batched(records, ENCODE_BATCH):
            src = tokenizer.batch_encode([r["source"] for r in batch], max_length=max_source_length - 2)
            tgt = tokenizer.batch_encode([r["target"] for r in batch], max_length=max_target_length - 1)
            out += zip(src, tgt)
    return out


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def make_collator(recipe: Seq2SeqRecipe, tokenizer):
    """The training collator of the recipe's scheme and objective (reseeded by the Trainer)."""
    import torch

    from ..data.objectives import DiffusionCollator, Seq2SeqCollator, SpecialIds
    if recipe.scheme == "bidirectional":
        return DiffusionCollator(SpecialIds.from_tokenizer(tokenizer), recipe.max_source_length - 2,
                                 recipe.max_target_length, generator=torch.Generator().manual_seed(recipe.seed),
                                 replace=recipe.diffusion_replace, attention=recipe.diffusion_mask,
                                 weight=recipe.diffusion_weight)
    kw = {"mask_prob": recipe.mask_prob} if recipe.seq2seq_objective == "masked-target" else {}
    return Seq2SeqCollator(SpecialIds.from_tokenizer(tokenizer), recipe.seq2seq_objective,
                           recipe.max_source_length - 2, recipe.max_target_length - 1,
                           generator=torch.Generator().manual_seed(recipe.seed), scheme=recipe.scheme, **kw)


def fitted_block(recipe: Seq2SeqRecipe, pairs: Sequence[tuple[list[int], list[int]]]) -> int:
    """The target length a run trains and decodes with: for the bidirectional scheme with
    fit_block (and one block), the longest encoded training target plus its end token, at most
    max_target_length. Every block position is trained and decoded, so a block much longer than
    the targets is mostly end tokens (BBC headlines: median 6 tokens, longest 15)."""
    if recipe.scheme != "bidirectional" or not recipe.fit_block or recipe.block_length is not None or not pairs:
        return recipe.max_target_length
    return min(recipe.max_target_length, max(len(t) for _, t in pairs) + 1)


def check_lengths(model, recipe: Seq2SeqRecipe) -> None:
    """The packed sequences must fit the model's position embeddings."""
    limit = model.config.max_position_embeddings
    src, tgt = recipe.max_source_length, recipe.max_target_length
    if model.decoder is not None:
        need = max(src, tgt + 1)
    elif recipe.scheme == "bidirectional":
        need = src + tgt
    else:
        need = src + tgt * (2 if recipe.seq2seq_objective == "pseudo-mask" else 1) + 1
    if need > limit:
        raise UsageError(f"--max-source-length {src} with --max-target-length {tgt} needs {need} positions; "
                         f"the model has {limit}")


# --------------------------------------------------------------------------- MLM warm-up
def mlm_warmup(model, tokenizer, texts: Sequence[str], steps: int, new_params: frozenset, output_dir: Path,
               seed: int, device: Optional[str], progress: bool, batch_size: int = 16, max_length: int = 128,
               lr: float = 1e-4, later_s: Optional[Callable[[float], float]] = None,
               on_log: Optional[Callable[[dict], None]] = None) -> dict[str, Any]:
    """MLM on ``texts`` (the training sources) for ``steps`` steps, in place, before seq2seq training.

    Chunks of ``max_length`` tokens (at most the model's positions), 15% masked 80/10/10, a
    bidirectional (explicit) mask whatever the model's scheme, new parameters (the MLM head) at 10x
    the learning rate. A function of the seed alone, so an interrupted run that redoes it gets the
    same weights. Only the main process writes or removes files. Returns the Trainer summary."""
    import torch

    from ..data.documents import chunk_documents
    from ..data.objectives import MLMCollator, SpecialIds
    from ..training import TrainConfig, Trainer, barrier, init_distributed

    dinfo = init_distributed(device)
    new_params = frozenset(n for n in new_params if not n.startswith(COPY_HEAD))  # see below: not trained here
    max_length = min(max_length, model.config.max_position_embeddings)  # a small model reads fewer positions
    chunks = chunk_documents(tokenizer, texts, max_length)
    collate = MLMCollator(SpecialIds.from_tokenizer(tokenizer), max_length, 0.15,
                          generator=torch.Generator().manual_seed(seed), explicit_mask=True)
    config = TrainConfig(lr=lr, warmup=0.06, max_steps=steps, batch_size=batch_size, seed=seed, save_steps=0,
                         save_total_limit=1, log_steps=10, new_param_lr_multiplier=10.0,
                         new_params=frozenset(new_params), device=device, progress=progress,
                         progress_label="MLM warm-up")
    if dinfo.is_main and output_dir.exists():
        shutil.rmtree(output_dir)
    barrier(dinfo)
    # the warm-up trains the vocabulary head alone: a copy head (trained in seq2seq) sits out
    copy_head, model.copy_head = model.copy_head, None
    try:
        trainer = Trainer(model, chunks, collate, config, output_dir, lengths=[len(c) + 2 for c in chunks],
                          later_s=later_s, on_log=on_log)
        summary = trainer.train()
    finally:
        model.copy_head = copy_head
    if dinfo.is_main:
        for ckpt in output_dir.glob("checkpoint-*"):  # the seq2seq checkpoints hold these weights anyway
            shutil.rmtree(ckpt)
    barrier(dinfo)
    return summary


# --------------------------------------------------------------------------- evaluation
# the cost of one generated token (per beam) and of one source token at evaluation, in training
# tokens (forward + backward), for the whole job's time estimate; measured on the default run
DECODE_TOKEN_COST = 1.0
ENCODE_TOKEN_COST = 0.33


def job_tokens(recipe: Seq2SeqRecipe, pairs: Sequence[tuple[list[int], list[int]]], total_steps: int,
               num_eval: int) -> tuple[float, float]:
    """(training tokens of the seq2seq run, evaluation work in training-token units): what the
    progress display divides by the measured tokens/s to tell the whole job's remaining time."""
    pseudo = recipe.scheme == "prefix" and recipe.seq2seq_objective == "pseudo-mask"
    per_example = sum(len(s) + len(t) * (2 if pseudo else 1) + 3 for s, t in pairs) / max(len(pairs), 1)
    train = total_steps * recipe.batch_size * recipe.grad_accum * per_example
    if recipe.scheme == "bidirectional":  # every denoising pass feeds the whole block
        decode = recipe.diffusion_steps * recipe.max_target_length
    else:
        decode = recipe.max_target_length * recipe.num_beams
    source = sum(len(s) + 2 for s, _ in pairs) / max(len(pairs), 1)
    return train, num_eval * (source * ENCODE_TOKEN_COST + decode * DECODE_TOKEN_COST)


def evaluate(generator, records: Sequence[dict], batch_size: int = 32, progress: bool = False,
             task: str = "summarization", **overrides: Any
             ) -> tuple[list[str], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Generate for ``records`` (the generator's stored settings, ``overrides`` on top); returns
    (predictions, scores, baselines, decode): ROUGE and the lead baselines for summarization,
    BLEU/chrF and the copy-the-source baseline for translation; ``decode`` = generation wall time
    and the generated token count (the timer wraps generate only)."""
    from ..metrics import baselines, score
    sources = [r["source"] for r in records]
    refs = [r["target"] for r in records]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # generation's own warnings stay out of the evaluation output
        t0 = time.perf_counter()
        preds = generator.generate(sources, batch_size=batch_size, progress=progress, **overrides)
        seconds = time.perf_counter() - t0
        tokens = generator.last_generated_tokens
    decode = {"seconds": round(seconds, 3), "tokens": tokens, "examples": len(sources),
              "tokens_per_s": round(tokens / seconds, 1) if seconds > 0 else None}
    return preds, score(task, preds, refs), baselines(task, sources, refs), decode


def write_evaluation(output_dir: Path, records: Sequence[dict], predictions: Sequence[str],
                     scores: dict[str, Any], baselines: dict[str, Any], settings: dict[str, Any]) -> None:
    """``metrics.json`` ({"scores", "baselines", "settings"}, like scripts/benchmark.py) and
    ``predictions.jsonl`` ({"id", "prediction", "reference"} per line)."""
    from ..io import write_json, write_text
    lines = "".join(json.dumps({"id": r.get("id", i), "prediction": p, "reference": r["target"]},
                               ensure_ascii=False) + "\n" for i, (r, p) in enumerate(zip(records, predictions)))
    write_text(Path(output_dir) / "predictions.jsonl", lines)
    write_json(Path(output_dir) / "metrics.json", {"scores": scores, "baselines": baselines, "settings": settings})


# --------------------------------------------------------------------------- the run
def run(recipe: Seq2SeqRecipe, opts: C.RunOptions, *, evaluate_at_end: bool = True, eval_each_epoch: bool = False,
        keep_checkpoints: bool = True, log: Callable[[str], None] = C.say) -> dict[str, Any]:
    """Train and evaluate one recipe into ``opts.output_dir`` (already chosen). Returns what the
    run measured: {"output_dir", "final", "parameters", "train": Trainer summary, "warmup_s",
    "scores", "baselines", "decode", "task", "num_examples"} (scores None without evaluation)."""
    from ..io import write_json
    from ..textgen import TextGenerator
    from ..training import Trainer, init_distributed

    out = Path(opts.output_dir)
    dinfo = init_distributed(opts.device)
    main = dinfo.is_main
    data = load_data(recipe, need_validation=evaluate_at_end or eval_each_epoch)
    task = recipe.task or data.task
    if main:
        held = f", {len(data.validation)} validation pairs" if evaluate_at_end or eval_each_epoch else ""
        log(f"data: {data.name}: {len(data.train)} training pairs{held}"
            + (f" ({task})" if task != "summarization" else ""))
        for f, n in data.skipped.items():
            log(f"note: skipped {n} record(s) with an empty source or target in {f}")
    texts = [t for r in data.train for t in (r["source"], r["target"])] if recipe.init == "scratch" else ()
    built = C.build_model(recipe.model_spec(task), texts, out / C.TOKENIZER_DIR if opts.resume else None)
    check_lengths(built.model, recipe)
    model, tokenizer = built.model, built.tokenizer
    if main:
        log(f"model: {built.description}; scheme {recipe.scheme}, objective {recipe.seq2seq_objective}")
        for note in built.notes:
            log(f"note: {note}")
    settings = recipe.generation_settings(task)
    pairs = encode_pairs(tokenizer, data.train, recipe.max_source_length, recipe.max_target_length)
    block = fitted_block(recipe, pairs)
    if block != recipe.max_target_length:
        if main:
            log(f"note: diffusion block of {block} tokens: the longest training target and its end token "
                f"(--max-target-length {recipe.max_target_length} is the most; --no-fit-block keeps it)")
        steps = None if recipe.steps is None else min(recipe.steps, block)
        recipe = replace(recipe, max_target_length=block, steps=steps)
        settings = recipe.generation_settings(task)
    warmup = recipe.mlm_warmup_steps if recipe.scheme != "encoder-decoder" else 0
    # after an MLM warm-up the LM head is trained: then one learning rate for all parameters but a new
    # copy head's, which the warm-up leaves out
    new_params = frozenset(n for n in built.new_params if n.startswith(COPY_HEAD)) if warmup else built.new_params
    config = recipe.train_config(new_params, opts.device, not opts.no_progress)

    def on_save(ckpt: Path) -> None:  # checkpoints load with TextGenerator.from_pretrained too
        tokenizer.save(ckpt)
        write_json(ckpt / "generation.json", settings)

    eval_fn = None
    if eval_each_epoch:
        def eval_fn(m) -> dict[str, Any]:
            gen = TextGenerator(m, tokenizer, settings, device=next(m.parameters()).device)
            return evaluate(gen, data.validation, recipe.eval_batch_size, task=task)[1]
    # built now, the seq2seq optimizer leaves a frozen vocabulary out; the MLM warm-up below trains it
    vocabulary = [model.embeddings.word.weight, model.lm_head.bias] if recipe.frozen_vocabulary else []
    for p in vocabulary:
        p.requires_grad_(False)
    # a soup's members train one after another, each in its own directory with its own seed
    soup = recipe.soup_size
    member_dirs = [out] if soup == 1 else [out / SOUP_DIR / f"member-{i}" for i in range(soup)]
    lengths = [len(s) + len(t) for s, t in pairs]

    def member(i: int):
        try:
            t = Trainer(model, pairs, make_collator(recipe, tokenizer), replace(config, seed=recipe.seed + i),
                        member_dirs[i], eval_fn=eval_fn, lengths=lengths, on_save=on_save)
        except ValueError as e:
            raise UsageError(str(e)) from None
        t.later_s = lambda rate: ((soup - 1 - i) * train_tokens + eval_tokens) / rate if rate else 0.0
        t.on_log = member_log(i)
        return t

    def member_log(i: int):
        return tracker if soup == 1 or tracker is None else tracker.child(f"member-{i}/")

    tracker = None
    trainer = member(0)
    ckpt = trainer.check_resume() if opts.resume else None  # before anything is written
    start = out / SOUP_START  # the members' common start, written before the first trains
    resumed = ckpt is not None if soup == 1 else opts.resume and start.is_file()
    if opts.resume and not resumed and main:
        log(f"note: no checkpoint in {out}: starting a new run")
    train_tokens, eval_tokens = job_tokens(recipe, pairs, trainer.total_steps,
                                           len(data.validation) if evaluate_at_end else 0)

    # ---- from here on the output directory is written
    if main:
        C.prepare_output_dir(out, opts.overwrite, RUN_ARTIFACTS)
        tracker = C.tracker(opts, out, ckpt if soup == 1 else None)
        trainer.on_log = member_log(0)
        if built.trained_tokenizer:
            tokenizer.save(out / C.TOKENIZER_DIR)
        C.write_run_config(out, recipe, resolve=Seq2SeqRecipe.resolve_defaults)
    warmup_s = 0.0
    if warmup and not resumed:
        if main:
            log(f"MLM warm-up: {warmup} steps on the training sources, so that the new MLM head predicts tokens "
                f"before seq2seq training (writing {out / WARMUP_DIR})")
        t0 = time.perf_counter()
        sources = [r["source"] for r in itertools.islice(data.train, WARMUP_MAX_DOCUMENTS)]
        for p in vocabulary:
            p.requires_grad_(True)
        w = mlm_warmup(model, tokenizer, sources, warmup, built.new_params,
                       out / WARMUP_DIR, recipe.seed, opts.device, not opts.no_progress,
                       later_s=lambda rate: (soup * train_tokens + eval_tokens) / rate if rate else 0.0,
                       on_log=tracker.child("mlm_warmup/") if tracker is not None else None)
        for p in vocabulary:
            p.requires_grad_(False)
            p.grad = None
        warmup_s = time.perf_counter() - t0
        if main and w.get("final_loss") is not None:
            log(f"MLM warm-up done in {w['elapsed_s']:.0f}s, final loss {w['final_loss']:.4f}")
    if main:
        log(f"training: {trainer.total_steps} steps ({trainer.steps_per_epoch} an epoch), "
            f"batch {config.batch_size} x {config.grad_accum}, lr {config.lr:g}"
            + (f" ({config.new_param_lr_multiplier:g}x for {len(new_params)} new tensors)" if new_params else "")
            + f", {dinfo.world_size} process(es) on {trainer.device}{trainer.autocast_note}; "
            + (f"writing {out}" if soup == 1 else
               f"a soup of {soup} models (seeds {recipe.seed}..{recipe.seed + soup - 1}) in {out / SOUP_DIR}"))
    if soup == 1:
        summary = trainer.train(resume=opts.resume)
    else:
        summary = train_soup(model, trainer, member, soup, start, resumed, opts.resume,
                             log if main else lambda m: None)
    result: dict[str, Any] = {"output_dir": str(out), "final": str(out / FINAL), "task": task,
                              "parameters": model.num_parameters(), "train": summary, "warmup_s": warmup_s,
                              "scores": None, "baselines": None, "decode": None,
                              "num_examples": len(data.validation)}
    if not main:
        return result
    try:
        _finish(recipe, opts, data, task, summary, model, tokenizer, settings, trainer, result, evaluate_at_end,
                keep_checkpoints, tracker, log)
    finally:
        if tracker is not None:
            tracker.close()
    return result


def train_soup(model, first, member: Callable[[int], Any], size: int, start: Path, resumed: bool, resume: bool,
               log: Callable[[str], None]) -> dict[str, Any]:
    """Train ``size`` members (``member(i)``: member i's Trainer, ``first`` = member 0's) one after
    another from one start, the model's weights now, or ``start``'s when ``resumed``; then load the
    mean of their weights into the model. Every member resumes from its own newest checkpoint
    (a finished member just loads its last). Returns the first member's summary with the soup's
    elapsed time, tokens/s and mean final loss, and every member's summary under "members"."""
    from safetensors.torch import load_file

    from ..training import load_mean_weights
    if not resumed:
        start.parent.mkdir(parents=True, exist_ok=True)
        first.save_weights(start)
    initial = load_file(str(start), device=str(first.device))
    states, summaries = [], []
    for i in range(size):
        trainer = first if i == 0 else member(i)
        model.load_state_dict(initial, strict=False)  # the file holds every floating-point weight
        log(f"soup member {i + 1} of {size}: seed {trainer.config.seed}, writing {trainer.output_dir}")
        summaries.append(trainer.train(resume=resume))
        states.append({k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()})
        del trainer
    load_mean_weights(model, states)
    elapsed = sum(s["elapsed_s"] for s in summaries)
    tokens = sum(s["tokens_per_s"] * s["elapsed_s"] for s in summaries)
    losses = [s["final_loss"] for s in summaries if s["final_loss"] is not None]
    return {**summaries[0], "elapsed_s": round(elapsed, 2), "tokens_per_s": round(tokens / max(elapsed, 1e-9), 1),
            "final_loss": sum(losses) / len(losses) if losses else None, "members": summaries}


def _finish(recipe: Seq2SeqRecipe, opts: C.RunOptions, data: PairData, task: str, summary: dict[str, Any], model,
            tokenizer, settings: dict[str, Any], trainer, result: dict[str, Any], evaluate_at_end: bool,
            keep_checkpoints: bool, tracker, log: Callable[[str], None]) -> None:
    """After training (main process): the final model with its card, the evaluation, the report."""
    from ..hub import write_model_card
    from ..io import atomic_dir
    from ..textgen import TextGenerator
    out = Path(opts.output_dir)
    if summary["final_loss"] is not None:
        soup = recipe.soup_size
        log(f"trained {f'{soup} x ' if soup > 1 else ''}{summary['steps']} steps in {summary['elapsed_s']:.0f}s "
            f"({summary['tokens_per_s']:.0f} tokens/s), final loss {summary['final_loss']:.4f}"
            + (" (the members' mean); the model is the mean of their weights" if soup > 1 else ""))
    if not keep_checkpoints:
        for c in [*out.glob("checkpoint-*"), *out.glob(f"{SOUP_DIR}/member-*/checkpoint-*")]:
            shutil.rmtree(c, ignore_errors=True)
        (out / SOUP_START).unlink(missing_ok=True)
    generator = TextGenerator(model, tokenizer, settings, device=trainer.device)
    card = C.card_fields(recipe.init, recipe.dataset if recipe.train is None else recipe.train, task, recipe)
    atomic_dir(out / FINAL, lambda d: generator.save_pretrained(d, card))
    if evaluate_at_end:
        preds, scores, baselines, decode = evaluate(generator, data.validation, recipe.eval_batch_size,
                                                    progress=not opts.no_progress, task=task)
        meta = {**settings, "data": data.name, "task": task, "num_examples": len(data.validation),
                "model": str(out / FINAL), "init": recipe.init, "train_steps": summary["steps"],
                "train_loss": summary["final_loss"]}
        write_evaluation(out, data.validation, preds, scores, baselines, meta)
        split = recipe.validation_split if recipe.train is None else "validation"
        write_model_card(out / FINAL, model.config.to_dict(), settings=settings, scores=scores, baselines=baselines,
                         evaluated_on=f"the {split} split ({len(data.validation)} examples)", **card)
        result.update(scores=scores, baselines=baselines, decode=decode, predictions=preds)
        if tracker is not None:
            tracker.log_scores(summary["steps"], scores, "final")
        log("")
        log(C.format_table(scores, baselines))
        log("")
        for r, p in list(zip(data.validation, preds))[:5]:
            log(f"  generated: {p}")
            log(f"  reference: {r['target']}")
            log("")
        log(f"wrote {out / 'metrics.json'} and {out / 'predictions.jsonl'}")
    log(f"model saved to {out / FINAL} (load it with genbert.TextGenerator.from_pretrained)")


# --------------------------------------------------------------------------- command line
def build_parser(prog: str = PROG, doc: str = "") -> Any:
    p = C.new_parser(prog, doc)
    C.add_recipe_arguments(p, Seq2SeqRecipe)
    C.add_run_arguments(p, "default runs/DATASET, or runs/DATASET-TIMESTAMP when that holds an earlier run "
                           "(an explicit --output-dir holding a run needs --resume or --overwrite)")
    e = p.add_argument_group("evaluation")
    e.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    e.add_argument("--eval-each-epoch", action="store_true", help="also score the validation set after every epoch")
    return p


def output_dir_for(recipe: Seq2SeqRecipe, opts: C.RunOptions) -> Path:
    """--output-dir, else runs/DATASET, or a fresh timestamped directory beside it when that one
    holds an earlier run (a default never fails on an existing run)."""
    if opts.output_dir is not None:
        return Path(opts.output_dir)
    out = recipe.default_output_dir()
    if not (opts.resume or opts.overwrite) and out.is_dir() and any(out.iterdir()):
        out = C.timestamped(out)
    return out


def main(argv: Optional[list[str]] = None, prog: str = PROG, doc: str = "") -> int:
    import sys
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(prog, doc).parse_args(argv)

    def body() -> int:
        explicit = C.explicit_values(args, Seq2SeqRecipe)
        for k in ("train", "validation", "dataset"):  # a local path still names the data after a cd (--resume)
            if explicit.get(k) is not None and (k != "dataset" or Path(explicit[k]).exists()):
                explicit[k] = str(Path(explicit[k]).resolve())
        opts = C.run_options(args)
        out = output_dir_for(Seq2SeqRecipe.resolve(explicit), opts)
        stored = C.read_run_config(out) if opts.resume else None
        recipe = Seq2SeqRecipe.resolve(explicit, stored)
        recipe.check()
        C.check_device(opts.device)
        C.check_output_dir(out, opts.resume, opts.overwrite)
        if opts.output_dir is None and out != recipe.default_output_dir() and C.is_main_process():
            C.say(f"note: {recipe.default_output_dir()} holds an earlier run; writing this one to {out}")
        run(recipe, replace(opts, output_dir=out), evaluate_at_end=not args.no_eval,
            eval_each_epoch=args.eval_each_epoch)
        return 0

    return C.main_entry(prog, body)
