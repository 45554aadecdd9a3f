"""Pretraining (or continued pretraining) of a genbert model on plain text: the reusable pieces of
``scripts/pretrain.py`` (recipe, documents, held-out split, chunking, objectives, evaluation).

Objectives (:data:`OBJECTIVES`):

* ``mlm`` - BERT masked LM over ``[CLS] chunk [SEP]`` (optionally whole-word masking).
* ``mlm+nsp`` - BERT's masked LM plus next-sentence prediction over sentence pairs.
* ``unilm`` - UniLM: per row one of bidirectional / left-to-right / right-to-left / seq2seq
  masks, MLM on every row (the loss per scheme can be tracked, see :class:`SchemeLossTracker`).
* ``infilling`` - BART text infilling: an **encoder-decoder** model reconstructs each chunk
  from a copy whose spans were replaced by one ``[MASK]`` each. An encoder checkpoint gets a
  decoder by ``decoder_init`` (``bert`` = BERT2BERT, ``shared`` = BERTShare, ``random``).

Held-out evaluation: the documents are de-duplicated, then about ``heldout_fraction`` of them
are held out by a hash of their text (:func:`split_heldout`: deterministic, independent of
the input order and of the training seed). The held-out chunks are masked once with
``eval_seed`` (:func:`make_eval_sets`), so the metrics of the model before and after training
(:func:`evaluate`) are computed on exactly the same inputs.

Errors in the user's input raise :class:`UsageError` (shared with ``genbert.summarization``)
or :class:`genbert.data.DataError`, both one-line ``ValueError`` messages.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import masks
from .data.datasets import DataError, bbc_documents, read_documents, wikipedia_documents
from .data.objectives import (
    IGNORE_INDEX,
    UNILM_SCHEMES,
    InfillingCollator,
    MLMCollator,
    NSPCollator,
    SpecialIds,
    UniLMCollator,
    make_nsp_examples,
)
from .io import atomic_dir, write_json
from .summarization import UsageError, read_run_config, special_ids
from .training import trim_jsonl
from .tokenization import Tokenizer

__all__ = [
    "OBJECTIVES",
    "CORPORA",
    "DECODER_INITS",
    "DEFAULT_RECIPE",
    "RUN_CONFIG",
    "EVAL_FILE",
    "SCHEME_LOSS_FILE",
    "TOKENIZER_DIR",
    "UsageError",
    "DataError",
    "Documents",
    "HeldoutSplit",
    "resolve_recipe",
    "check_recipe",
    "load_documents",
    "split_heldout",
    "split_sentences",
    "chunk_documents",
    "sentence_documents",
    "continuation_ids",
    "build_model",
    "training_examples",
    "make_collator",
    "SchemeLossTracker",
    "EvalSets",
    "make_eval_sets",
    "masked_token_accuracy",
    "evaluate",
    "format_eval",
    "save_final",
]

OBJECTIVES = ("mlm", "mlm+nsp", "infilling", "unilm")
CORPORA = ("bbc", "wikipedia")
DECODER_INITS = ("bert", "shared", "random")

# The default recipe: every key is a flag of scripts/pretrain.py (flag = key with "-" for "_").
DEFAULT_RECIPE: dict[str, Any] = {
    # data
    "text": None,  # list of files
    "corpus": None,  # list of CORPORA names
    "text_field": "text",
    "limit_documents": None,
    "heldout_fraction": 0.05,
    "max_length": 128,  # tokens per training sequence, [CLS]/[SEP] included
    # model
    "init": "minilm",
    "objective": "mlm",
    "whole_word_masking": False,
    "mask_prob": 0.15,  # mlm, mlm+nsp, unilm
    "infill_ratio": 0.3,  # infilling: share of tokens inside masked spans
    "infill_lambda": 3.0,  # infilling: Poisson mean of the span lengths
    "decoder_init": None,  # infilling only; None = bert
    "decoder_layers": None,  # infilling only; None = as many as the encoder
    # --init scratch only
    "hidden_size": 256,
    "layers": 4,
    "heads": 4,
    "intermediate_size": 1024,
    "vocab_size": 8000,
    "max_position_embeddings": 512,
    # optimisation
    "epochs": 1.0,
    "max_steps": None,
    "batch_size": 16,
    "grad_accum": 1,
    "lr": 1e-4,
    "new_param_lr_multiplier": 10.0,  # e.g. the MLM head all-MiniLM-L6-v2 ships without
    "weight_decay": 0.01,
    "warmup": 0.06,
    "max_grad_norm": 1.0,
    "seed": 0,
    "save_steps": 100,
    "save_total_limit": 2,
    "log_steps": 10,
    "bf16": True,  # autocast on CUDA only; ignored on CPU
    "fp16": False,
    "gradient_checkpointing": False,
    # held-out evaluation
    "eval_seed": 0,
    "max_eval_sequences": 512,
    "eval_batch_size": 32,
}

RUN_CONFIG = "run_config.json"  # the resolved recipe, reused by --resume
EVAL_FILE = "mlm_eval.json"
SCHEME_LOSS_FILE = "scheme_loss.jsonl"  # unilm: training loss per mask scheme
TOKENIZER_DIR = "tokenizer"  # the sentencepiece model of a --init scratch run
RUN_ARTIFACTS = ("final", TOKENIZER_DIR, RUN_CONFIG, EVAL_FILE, SCHEME_LOSS_FILE, "log.jsonl", "loss.png")


# --------------------------------------------------------------------------- recipe
def resolve_recipe(explicit: Mapping[str, Any], stored: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """Flag values: explicit ones, else the stored run's (on --resume), else DEFAULT_RECIPE.
    Data sources (``text`` / ``corpus``) given explicitly replace both stored ones."""
    recipe = dict(DEFAULT_RECIPE)
    if stored:
        recipe.update({k: v for k, v in stored.items() if k in DEFAULT_RECIPE})
    if explicit.get("text") is not None or explicit.get("corpus") is not None:
        recipe["text"], recipe["corpus"] = None, None
    recipe.update({k: v for k, v in explicit.items() if v is not None and k in DEFAULT_RECIPE})
    if explicit.get("fp16"):
        recipe["bf16"] = False
    return recipe


def check_recipe(r: Mapping[str, Any]) -> None:
    """Range checks and flag combinations; UsageError names the flag."""
    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise UsageError(f"--{key.replace('_', '-')}={r[key]}: {what}")
    if r["objective"] not in OBJECTIVES:
        raise UsageError(f"--objective {r['objective']!r}: choose one of {', '.join(OBJECTIVES)}")
    for c in r.get("corpus") or ():
        if c not in CORPORA:
            raise UsageError(f"--corpus {c!r}: choose one of {', '.join(CORPORA)}")
    if not r.get("text") and not r.get("corpus"):
        raise UsageError("no training text: pass --text FILE [FILE ...] and/or --corpus "
                         + "|".join(CORPORA))
    for key in ("batch_size", "grad_accum", "eval_batch_size", "hidden_size", "layers", "heads",
                "intermediate_size", "log_steps", "save_total_limit", "max_position_embeddings"):
        need(r.get(key) is not None and int(r[key]) >= 1, key, "must be >= 1")
    for key in ("limit_documents", "max_steps", "decoder_layers", "max_eval_sequences"):
        need(r.get(key) is None or int(r[key]) >= 1, key, "must be >= 1")
    need(r["max_length"] >= 8, "max_length", "must be >= 8")
    need(0 <= r["heldout_fraction"] <= 0.5, "heldout_fraction", "must be in [0, 0.5]")
    need(0 < r["mask_prob"] <= 1, "mask_prob", "must be in (0, 1]")
    need(0 < r["infill_ratio"] <= 1, "infill_ratio", "must be in (0, 1]")
    need(r["infill_lambda"] > 0, "infill_lambda", "must be > 0")
    need(r["epochs"] > 0, "epochs", "must be > 0")
    need(r["lr"] > 0, "lr", "must be > 0")
    need(r["new_param_lr_multiplier"] > 0, "new_param_lr_multiplier", "must be > 0")
    need(r["warmup"] >= 0 and (r["warmup"] < 1 or float(r["warmup"]).is_integer()), "warmup",
         "must be a fraction in [0, 1) or a whole number of steps")
    need(r["save_steps"] >= 0, "save_steps", "must be >= 0 (0: only at the end)")
    need(r["max_grad_norm"] is None or r["max_grad_norm"] >= 0, "max_grad_norm", "must be >= 0 (0: no clipping)")
    need(r["vocab_size"] >= 16, "vocab_size", "must be >= 16")
    need(r["hidden_size"] % r["heads"] == 0, "hidden_size", f"must be divisible by --heads={r['heads']}")
    if r["whole_word_masking"] and r["objective"] != "mlm":
        raise UsageError(f"--whole-word-masking applies to --objective mlm only, not {r['objective']}")
    if r["objective"] != "infilling":
        for key in ("decoder_init", "decoder_layers"):
            if r.get(key) is not None:
                raise UsageError(f"--{key.replace('_', '-')} applies to --objective infilling only "
                                 "(the other objectives train an encoder)")
    if r.get("decoder_init") is not None and r["decoder_init"] not in DECODER_INITS:
        raise UsageError(f"--decoder-init {r['decoder_init']!r}: choose one of {', '.join(DECODER_INITS)}")


# --------------------------------------------------------------------------- documents
@dataclass
class Documents:
    texts: list[str]
    sources: dict[str, int] = field(default_factory=dict)  # source name -> documents read
    duplicates: int = 0  # dropped as duplicates of an earlier document


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def load_documents(text_files: Sequence[str] = (), corpora: Sequence[str] = (), text_field: str = "text",
                   limit: Optional[int] = None) -> Documents:
    """Documents from files (:func:`genbert.data.read_documents`: JSONL with ``text_field``, or
    blank-line-separated blocks) and named offline corpora, in that order. Exact duplicates
    (case and whitespace ignored) are dropped; ``limit`` keeps the first N documents."""
    raw: list[str] = []
    sources: dict[str, int] = {}
    for f in text_files or ():
        docs = read_documents(f, text_field)
        sources[str(f)] = len(docs)
        raw += docs
    for name in corpora or ():
        if name not in CORPORA:
            raise UsageError(f"--corpus {name!r}: choose one of {', '.join(CORPORA)}")
        try:
            docs = bbc_documents() if name == "bbc" else wikipedia_documents()
        except (ModuleNotFoundError, FileNotFoundError) as e:
            raise UsageError(f"--corpus {name}: {e}") from None
        sources[name] = len(docs)
        raw += docs
    seen: set[str] = set()
    texts: list[str] = []
    for t in raw:
        key = _norm(t)
        if key and key not in seen:
            seen.add(key)
            texts.append(t)
    out = Documents(texts, sources, len(raw) - len(texts))
    if limit is not None:
        out.texts = out.texts[:limit]
    return out


def _unit(text: str) -> float:
    """A uniform number in [0, 1) from the document's normalised text."""
    return int(hashlib.sha1(_norm(text).encode("utf-8")).hexdigest()[:15], 16) / 16 ** 15


@dataclass
class HeldoutSplit:
    train: list[str]
    heldout: list[str]

    @property
    def fingerprint(self) -> str:
        """sha1 over the held-out documents' normalised texts (in held-out order)."""
        h = hashlib.sha1()
        for t in self.heldout:
            h.update(_norm(t).encode("utf-8") + b"\0")
        return h.hexdigest()[:16]


def split_heldout(texts: Sequence[str], fraction: float = 0.05) -> HeldoutSplit:
    """Hold out about ``fraction`` of the documents: a document is held out when a hash of its
    normalised text falls below ``fraction``, so the split depends on nothing else (not the
    order, not the other documents, not the training seed). At least one document is held out
    (when ``fraction > 0``) and at least one is kept for training. Held-out documents come in
    hash order; training documents keep their order."""
    if fraction <= 0:
        return HeldoutSplit(list(texts), [])
    if len(texts) < 2:
        raise UsageError(f"{len(texts)} document(s): at least 2 are needed to hold some out for evaluation "
                         "(or pass --heldout-fraction 0)")
    u = [_unit(t) for t in texts]
    held = {i for i, x in enumerate(u) if x < fraction}
    order = sorted(range(len(texts)), key=lambda i: u[i])
    if not held:
        held = {order[0]}
    if len(held) == len(texts):
        held.discard(order[-1])
    return HeldoutSplit([t for i, t in enumerate(texts) if i not in held],
                        [texts[i] for i in sorted(held, key=lambda i: u[i])])


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Sentences of a document: every line, split after ``.``/``!``/``?`` before a capital or digit."""
    out = []
    for line in text.split("\n"):
        line = line.strip()
        if line:
            out += [s.strip() for s in _SENTENCE_END.split(line) if s.strip()]
    return out


def _encode_all(tokenizer: Tokenizer, texts: Sequence[str], batch: int = 1000) -> list[list[int]]:
    out: list[list[int]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(0, len(texts), batch):
            out += tokenizer.batch_encode(list(texts[i:i + batch]))
    return out


def chunk_documents(tokenizer: Tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token-id chunks (no special tokens) of at most ``max_length - 2`` ids (room for [CLS] and
    [SEP]), in document order. A document's last chunk is dropped when it is shorter than an
    eighth of a chunk, unless it is the document's only one."""
    size = max_length - 2
    out: list[list[int]] = []
    for ids in _encode_all(tokenizer, texts):
        pieces = [ids[i:i + size] for i in range(0, len(ids), size)]
        if len(pieces) > 1 and len(pieces[-1]) < size / 8:
            pieces.pop()
        out += [p for p in pieces if p]
    return out


def sentence_documents(tokenizer: Tokenizer, texts: Sequence[str]) -> list[list[list[int]]]:
    """Documents as lists of tokenized sentences (for next-sentence prediction)."""
    sents = [split_sentences(t) for t in texts]
    flat = _encode_all(tokenizer, [s for doc in sents for s in doc])
    out, k = [], 0
    for doc in sents:
        out.append([ids for ids in flat[k:k + len(doc)] if ids])
        k += len(doc)
    return out


def continuation_ids(tokenizer: Tokenizer) -> list[int]:
    """Ids of tokens that continue a word (for whole-word masking): WordPiece ``##`` pieces;
    sentencepiece pieces that do not start with ``\u2581``."""
    special = tokenizer.special_ids
    out = []
    for i in range(len(tokenizer)):
        if i in special:
            continue
        t = tokenizer.id_to_token(i)
        if not isinstance(t, str):
            continue
        if tokenizer.kind == "wordpiece":
            if t.startswith("##"):
                out.append(i)
        elif not t.startswith("\u2581"):
            out.append(i)
    return out


# --------------------------------------------------------------------------- model
def _init_has_decoder(init: str) -> bool:
    if init in ("minilm", "scratch"):
        return False
    p = Path(init) / "config.json"
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False  # build_model reports it
    return cfg.get("model_type") == "encoder-decoder" or (cfg.get("model_type") == "genbert"
                                                          and cfg.get("decoder") is not None)


def build_model(recipe: Mapping[str, Any], train_texts: Sequence[str] = (), tokenizer_dir: Optional[Path] = None):
    """The model and tokenizer for ``recipe["init"]`` (directory | minilm | scratch): an encoder
    with the bidirectional scheme, or (``infilling``) an encoder-decoder. Returns
    :class:`genbert.summarization.BuiltModel` (``new_params``: the newly initialised tensors, e.g.
    MiniLM's MLM head). For scratch the sentencepiece tokenizer is loaded from ``tokenizer_dir``
    when it holds one (resume), else trained on ``train_texts``; the random weights are a
    function of ``recipe["seed"]``."""
    from . import summarization as S
    objective = recipe["objective"]
    seq2seq = objective == "infilling"
    init = str(recipe["init"])
    if not seq2seq and _init_has_decoder(init):
        raise UsageError(f"--init {init} is an encoder-decoder model: only --objective infilling trains it")
    torch.manual_seed(int(recipe["seed"]))  # scratch weights (and new heads) depend on the seed only
    sizes = {k: int(recipe[k]) for k in ("hidden_size", "layers", "heads", "intermediate_size")}
    # summarization's builder knows every kind of --init; "prefix" only picks an encoder-only
    # model, whose scheme is set to bidirectional below
    decoder_init = recipe.get("decoder_init") or ("random" if init == "scratch" else "bert")
    built = S.build_model(init, "encoder-decoder" if seq2seq else "prefix", objective,
                          decoder_init, recipe.get("decoder_layers"), train_texts,
                          tokenizer_dir, sizes, int(recipe["vocab_size"]), int(recipe["max_position_embeddings"]))
    c = built.model.config
    c.mask_scheme = "bidirectional"
    extra = {k: v for k, v in c.extra.items() if k not in ("objective", "task", "scheme")}
    c.objective, c.decoding = objective, "next-token"
    c.extra = {**extra, "task": "pretraining", "scheme": "encoder-decoder" if seq2seq else "bidirectional"}
    if objective != "mlm+nsp" and not seq2seq:
        # a bidirectional model scores NSP in every forward, but only mlm+nsp gives it a loss: frozen,
        # it trains exactly as before, and DistributedDataParallel expects no gradient for it
        for p in built.model.nsp_head.parameters():
            p.requires_grad_(False)
        built.new_params = {n for n in built.new_params if not n.startswith("nsp_head.")}
        built.notes.append("the NSP head is frozen (only --objective mlm+nsp gives it a loss)")
    limit = c.max_position_embeddings
    if recipe["max_length"] > limit:
        raise UsageError(f"--max-length {recipe['max_length']}: the model has {limit} positions")
    return built


# --------------------------------------------------------------------------- training data
def training_examples(objective: str, tokenizer: Tokenizer, texts: Sequence[str], max_length: int,
                      seed: int = 0) -> tuple[list[Any], list[int]]:
    """(examples, lengths) for the Trainer: token-id chunks, or for ``mlm+nsp`` BERT's sentence
    pairs (:func:`make_nsp_examples`, drawn once with ``seed``)."""
    if objective == "mlm+nsp":
        docs = sentence_documents(tokenizer, texts)
        g = torch.Generator().manual_seed(int(seed))
        examples = make_nsp_examples(docs, g, max_length)
        return examples, [len(e.tokens_a) + len(e.tokens_b) + 3 for e in examples]
    chunks = chunk_documents(tokenizer, texts, max_length)
    return chunks, [len(c) + 2 for c in chunks]


def make_collator(objective: str, ids: SpecialIds, max_length: int, mask_prob: float = 0.15, seed: int = 0,
                  whole_word: bool = False, continuation: Optional[Sequence[int]] = None,
                  infill_ratio: float = 0.3, infill_lambda: float = 3.0):
    """The training collator of ``objective`` (its ``generator`` is reseeded by the Trainer)."""
    g = torch.Generator().manual_seed(int(seed))
    if objective == "mlm":
        return MLMCollator(ids, max_length, mask_prob, whole_word=whole_word, generator=g,
                           continuation_ids=continuation if whole_word else None)
    if objective == "mlm+nsp":
        return NSPCollator(ids, max_length, mask_prob, generator=g)
    if objective == "unilm":
        return UniLMCollator(ids, max_length, mask_prob, generator=g)
    if objective == "infilling":
        return InfillingCollator(ids, "encoder-decoder", max_source_length=max_length - 2,
                                 max_target_length=max_length - 2, generator=g, mask_ratio=infill_ratio,
                                 poisson_lambda=infill_lambda)
    raise UsageError(f"--objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")


class SchemeLossTracker:
    """UniLM training loss per mask scheme, without a second forward pass.

    Wraps a :class:`UniLMCollator` (use it as the Trainer's ``collate_fn``; its ``generator`` is
    the collator's own) and hooks the model's MLM head: on the fast path the head scores exactly
    the labelled positions of the batch just collated, so the per-token losses are split by the
    scheme of their row. :meth:`take` returns the mean loss per scheme since the last call."""

    def __init__(self, collator: UniLMCollator, model: nn.Module) -> None:
        self.collator = collator
        self._pending: list[tuple[Tensor, Tensor]] = []
        self.sums = torch.zeros(len(UNILM_SCHEMES), dtype=torch.float64)
        self.counts = torch.zeros(len(UNILM_SCHEMES), dtype=torch.float64)
        self.total_sums = self.sums.clone()
        self.total_counts = self.counts.clone()
        self._handle = model.lm_head.register_forward_hook(self._hook)

    @property
    def generator(self) -> torch.Generator:
        return self.collator.generator

    def __call__(self, examples: Sequence[Any]) -> dict[str, Any]:
        batch, schemes = self.collator.collate_with_schemes(examples)
        idx = torch.tensor([UNILM_SCHEMES.index(s) for s in schemes], dtype=torch.long)
        self._pending = [(batch["labels"], idx)]  # one forward follows each collation
        return batch

    def _hook(self, module: nn.Module, inputs: Any, output: Tensor) -> None:
        if not self._pending or not torch.is_tensor(output):
            return
        labels, rows = self._pending.pop()
        keep = labels != IGNORE_INDEX
        if output.dim() != 2 or output.shape[0] != int(keep.sum()):
            return  # not the fast MLM path (e.g. compute_logits=True): nothing to split
        with torch.no_grad():
            ce = F.cross_entropy(output.detach().float(), labels[keep].to(output.device), reduction="none")
        scheme = rows[keep.nonzero()[:, 0]]
        self.sums.index_add_(0, scheme, ce.double().cpu())
        self.counts.index_add_(0, scheme, torch.ones_like(scheme, dtype=torch.float64))

    def take(self) -> dict[str, float]:
        """Mean loss per scheme (token-weighted) since the last call; schemes not seen are left out."""
        out = {s: float(self.sums[i] / self.counts[i]) for i, s in enumerate(UNILM_SCHEMES) if self.counts[i] > 0}
        self.total_sums += self.sums
        self.total_counts += self.counts
        self.sums.zero_()
        self.counts.zero_()
        return out

    def totals(self) -> dict[str, float]:
        """Mean loss per scheme over everything this process has seen."""
        s, c = self.total_sums + self.sums, self.total_counts + self.counts
        return {name: float(s[i] / c[i]) for i, name in enumerate(UNILM_SCHEMES) if c[i] > 0}

    def remove(self) -> None:
        self._handle.remove()


# --------------------------------------------------------------------------- held-out evaluation
def _seed(*values: int) -> int:
    h = hashlib.sha1(",".join(str(int(v)) for v in values).encode()).hexdigest()
    return int(h[:15], 16)


@dataclass
class EvalSets:
    """Pre-built held-out batches (masking drawn once), reused for every evaluation."""

    mlm: list[dict] = field(default_factory=list)
    nsp: list[dict] = field(default_factory=list)
    unilm: dict[str, list[dict]] = field(default_factory=dict)
    infilling: list[dict] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.mlm or self.nsp or self.unilm or self.infilling)


def _select(items: list[Any], limit: Optional[int], seed: int) -> list[Any]:
    if limit is None or len(items) <= limit:
        return list(items)
    keep = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed))[:limit].sort().values
    return [items[i] for i in keep.tolist()]


def _batches(collator, examples: Sequence[Any], lengths: Sequence[int], batch_size: int, seed: int) -> list[dict]:
    """Length-sorted batches, each collated with a generator seeded from (seed, batch index)."""
    order = sorted(range(len(examples)), key=lambda i: (-lengths[i], i))
    out = []
    for b, start in enumerate(range(0, len(order), batch_size)):
        collator.generator.manual_seed(_seed(seed, b))
        out.append(collator([examples[i] for i in order[start:start + batch_size]]))
    return out


def make_eval_sets(objective: str, tokenizer: Tokenizer, heldout_texts: Sequence[str], max_length: int,
                   mask_prob: float = 0.15, eval_seed: int = 0, max_sequences: Optional[int] = 512,
                   batch_size: int = 32, infill_ratio: float = 0.3, infill_lambda: float = 3.0) -> EvalSets:
    """Held-out batches for :func:`evaluate`, masked once with ``eval_seed``.

    Always ``mlm``: BERT masking (``mask_prob`` of the tokens, 80% [MASK] / 10% random / 10%
    kept; token-level, whatever the training used) of ``[CLS] chunk [SEP]``, up to
    ``max_sequences`` chunks picked with ``eval_seed``. Plus, by objective: ``nsp`` (held-out
    sentence pairs), ``unilm`` (the same chunks under each UniLM scheme), ``infilling``
    (BART-corrupted chunks and their reconstruction)."""
    ids = special_ids(tokenizer)
    sets = EvalSets()
    if not heldout_texts:
        return sets
    chunks = _select(chunk_documents(tokenizer, heldout_texts, max_length), max_sequences, eval_seed)
    lengths = [len(c) for c in chunks]
    sets.mlm = _batches(MLMCollator(ids, max_length, mask_prob, generator=torch.Generator()), chunks, lengths,
                        batch_size, _seed(eval_seed, 1))
    sets.info = {"documents": len(heldout_texts), "sequences": len(chunks),
                 "masked_tokens": int(sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in sets.mlm))}
    if objective == "mlm+nsp":
        g = torch.Generator().manual_seed(_seed(eval_seed, 2))
        pairs = _select(make_nsp_examples(sentence_documents(tokenizer, heldout_texts), g, max_length),
                        max_sequences, eval_seed)
        sets.nsp = _batches(NSPCollator(ids, max_length, mask_prob, generator=torch.Generator()), pairs,
                            [len(p.tokens_a) + len(p.tokens_b) for p in pairs], batch_size, _seed(eval_seed, 3))
        sets.info["nsp_pairs"] = len(pairs)
    elif objective == "unilm":
        for k, scheme in enumerate(UNILM_SCHEMES):
            probs = [1.0 if s == scheme else 0.0 for s in UNILM_SCHEMES]
            coll = UniLMCollator(ids, max_length, mask_prob, scheme_probs=probs, generator=torch.Generator())
            sets.unilm[scheme] = _batches(coll, chunks, lengths, batch_size, _seed(eval_seed, 4, k))
    elif objective == "infilling":
        coll = InfillingCollator(ids, "encoder-decoder", max_source_length=max_length - 2,
                                 max_target_length=max_length - 2, generator=torch.Generator(),
                                 mask_ratio=infill_ratio, poisson_lambda=infill_lambda)
        sets.infilling = _batches(coll, chunks, lengths, batch_size, _seed(eval_seed, 5))
    return sets


def _device_of(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _to(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}


def _encode(model: nn.Module, b: Mapping[str, Any]) -> Tensor:
    attn = b.get("attention_mask")
    scheme = getattr(getattr(model, "config", None), "mask_scheme", "bidirectional")
    if attn is not None and attn.dim() == 2 and scheme != "bidirectional":
        attn = masks.bidirectional(b["input_ids"], attn)  # MLM reads both sides, whatever the scheme
    return model.encode(b["input_ids"], attn, b.get("token_type_ids"))


@torch.no_grad()
def masked_token_accuracy(model: nn.Module, batches: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model.lm_head(model.encode(...))`` at the labelled
    positions (labels != -100, aligned) of ``batches``: ``{"accuracy", "loss", "tokens"}``.
    The model is put in eval mode for the call."""
    device = _device_of(model)
    was = model.training
    model.eval()
    correct, loss, total = 0, 0.0, 0
    try:
        for b in batches:
            b = _to(b, device)
            labels = b["labels"]
            keep = labels != IGNORE_INDEX
            if not bool(keep.any()):
                continue
            scores = model.lm_head(_encode(model, b)[keep]).float()
            targets = labels[keep]
            correct += int((scores.argmax(-1) == targets).sum())
            loss += float(F.cross_entropy(scores, targets, reduction="sum"))
            total += int(keep.sum())
    finally:
        model.train(was)
    return {"accuracy": correct / total if total else float("nan"),
            "loss": loss / total if total else float("nan"), "tokens": total}


@torch.no_grad()
def _nsp_accuracy(model: nn.Module, batches: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    device = _device_of(model)
    correct = total = 0
    for b in batches:
        b = _to(b, device)
        logits = model.nsp_head(_encode(model, b))
        correct += int((logits.argmax(-1) == b["next_sentence_label"]).sum())
        total += int(b["next_sentence_label"].numel())
    return {"accuracy": correct / total if total else float("nan"), "pairs": total}


@torch.no_grad()
def _infilling_accuracy(model: nn.Module, batches: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Teacher-forced token accuracy / loss of the decoder reconstructing the held-out chunks."""
    device = _device_of(model)
    pad = model.config.pad_token_id
    correct, loss, total = 0, 0.0, 0
    for b in batches:
        b = _to(b, device)
        labels = b["labels"].masked_fill(b["labels"] == pad, IGNORE_INDEX)
        out = model(b["input_ids"], token_type_ids=b.get("token_type_ids"), attention_mask=b["attention_mask"],
                    labels=labels, compute_logits=False)
        keep = labels != IGNORE_INDEX
        scores = model.decoder.lm_head(out.hidden_states[keep]).float()
        targets = labels[keep]
        correct += int((scores.argmax(-1) == targets).sum())
        loss += float(F.cross_entropy(scores, targets, reduction="sum"))
        total += int(keep.sum())
    return {"accuracy": correct / total if total else float("nan"),
            "loss": loss / total if total else float("nan"), "tokens": total}


def evaluate(model: nn.Module, sets: EvalSets) -> dict[str, float]:
    """Held-out metrics (flat, JSON-ready): ``masked_token_accuracy`` / ``masked_token_loss`` /
    ``masked_tokens`` always (the encoder and its MLM head; for an encoder-decoder model that
    head is only trained by a ``shared`` decoder), then ``nsp_accuracy``,
    ``unilm_<scheme>_accuracy`` or ``infilling_token_accuracy`` / ``infilling_loss`` by objective."""
    was = model.training
    model.eval()
    try:
        out: dict[str, float] = {}
        if sets.mlm:
            m = masked_token_accuracy(model, sets.mlm)
            out.update(masked_token_accuracy=m["accuracy"], masked_token_loss=m["loss"], masked_tokens=m["tokens"])
        if sets.nsp:
            m = _nsp_accuracy(model, sets.nsp)
            out.update(nsp_accuracy=m["accuracy"], nsp_pairs=m["pairs"])
        for scheme, batches in sets.unilm.items():
            out[f"unilm_{scheme}_accuracy"] = masked_token_accuracy(model, batches)["accuracy"]
        if sets.infilling:
            m = _infilling_accuracy(model, sets.infilling)
            out.update(infilling_token_accuracy=m["accuracy"], infilling_loss=m["loss"], infilling_tokens=m["tokens"])
        return out
    finally:
        model.train(was)


def format_eval(before: Mapping[str, Any], after: Optional[Mapping[str, Any]] = None) -> str:
    """An aligned table of held-out metrics: one row each, columns before / after."""
    keys = [k for k, v in before.items() if isinstance(v, float) and not k.endswith(("_tokens", "_pairs"))]

    def fmt(k: str, v: Any) -> str:
        if not isinstance(v, (int, float)) or (isinstance(v, float) and math.isnan(v)):
            return "-"
        return f"{100 * v:.2f}%" if k.endswith("accuracy") else f"{v:.4f}"
    header = ["held-out metric", "before"] + (["after"] if after is not None else [])
    rows = [[k, fmt(k, before.get(k))] + ([fmt(k, after.get(k))] if after is not None else []) for k in keys]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return "\n".join("  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])])
                     for r in [header] + rows)


# --------------------------------------------------------------------------- output directory
def default_output_dir(recipe: Mapping[str, Any]) -> Path:
    init = str(recipe.get("init") or "model")
    name = init if init in ("minilm", "scratch") else Path(init).name or "model"
    return Path("runs") / f"pretrain-{name}-{recipe['objective'].replace('+', '-')}"


def prepare_output_dir(path: Path, overwrite: bool) -> None:
    """Create the directory; with --overwrite remove a previous run's files (only those)."""
    from .training import CHECKPOINT_PREFIX, DELETE_PREFIX, TMP_PREFIX
    path.mkdir(parents=True, exist_ok=True)
    if not overwrite:
        return
    for p in path.iterdir():
        if p.name in RUN_ARTIFACTS or p.name.startswith((CHECKPOINT_PREFIX, TMP_PREFIX, DELETE_PREFIX)):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def save_final(model: nn.Module, tokenizer: Tokenizer, path: Path) -> None:
    """``GenBert.save_pretrained`` + ``Tokenizer.save`` into a temp dir renamed into place."""
    def write(d: Path) -> None:
        model.save_pretrained(d)
        tokenizer.save(d)
    atomic_dir(path, write)


def write_eval(path: Path, record: Mapping[str, Any]) -> None:
    write_json(path, dict(record))


def read_eval(path: Path) -> Optional[dict[str, Any]]:
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return d if isinstance(d, dict) else None


__all__ += ["read_run_config", "default_output_dir", "prepare_output_dir", "write_eval", "read_eval", "trim_jsonl",
            "RUN_ARTIFACTS"]
