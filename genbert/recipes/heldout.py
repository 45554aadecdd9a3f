"""The torch side of pretraining: training examples and collators per objective, the UniLM
per-scheme loss tracker, and the held-out evaluation (masked once with a seed, so the model before
and after training is scored on exactly the same inputs). Kept apart from :mod:`.pretrain` so that
its command line parses without importing torch."""
from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import masks
from ..config import PRETRAINING_OBJECTIVES
from ..data.documents import chunk_documents, sentence_documents
from ..data.objectives import (
    IGNORE_INDEX,
    UNILM_SCHEMES,
    InfillingCollator,
    MLMCollator,
    NSPCollator,
    SpecialIds,
    UniLMCollator,
    make_nsp_examples,
)
from ..tokenization import Tokenizer
from .common import UsageError


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
        return InfillingCollator(ids, max_source_length=max_length - 2,
                                 max_target_length=max_length - 2, generator=g, mask_ratio=infill_ratio,
                                 poisson_lambda=infill_lambda)
    raise UsageError(f"--objective {objective!r}: choose one of {', '.join(PRETRAINING_OBJECTIVES)}")


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
    ids = SpecialIds.from_tokenizer(tokenizer)
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
        coll = InfillingCollator(ids, max_source_length=max_length - 2,
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
