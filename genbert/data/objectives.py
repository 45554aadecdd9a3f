"""Pre-training and fine-tuning objectives: token corruption and batch collators.

Conventions (shared with `genbert.masks` and the model):

* Inputs are already-tokenized lists of token ids *without* special tokens; the special ids
  come from :class:`SpecialIds`.
* Batches are padded on the right to the longest row. ``attention_mask`` is either 2-D
  ``(B, T)`` long (1 = real token; the model applies its configured scheme) or an explicit
  3-D boolean ``(B, T, T)`` mask (True = may attend) that the model uses as is.
* ``labels`` use -100 for "no loss". A batch whose labels are aligned with the inputs
  (MLM style: the logit at t predicts the label at t) carries ``"shift_labels": False``;
  next-token batches carry ``"shift_labels": True`` (the logit at t predicts the label at t+1).
* All randomness comes from an explicit ``torch.Generator``. Collators given ``generator=None``
  seed their own from ``torch.initial_seed()`` (so ``torch.manual_seed`` makes runs
  reproducible). Inside a ``DataLoader`` worker a collator re-seeds itself from its seed and
  the worker's seed, so workers (and epochs) never repeat each other's noise.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

import torch
from torch import Tensor

from genbert import masks
from genbert.config import OBJECTIVES

IGNORE_INDEX = -100

__all__ = [
    "IGNORE_INDEX",
    "SpecialIds",
    "special_tokens_mask",
    "mask_tokens",
    "continuation_ids_from_tokenizer",
    "MLMCollator",
    "NSPExample",
    "make_nsp_examples",
    "NSPCollator",
    "infill",
    "permute_sentences",
    "make_denoising_pair",
    "UNILM_SCHEMES",
    "UniLMCollator",
    "LAYOUTS",
    "Seq2SeqCollator",
    "InfillingCollator",
    "DIFFUSION_REPLACE",
    "DIFFUSION_ATTENTION",
    "DIFFUSION_WEIGHTS",
    "diffusion_times",
    "DiffusionCollator",
]


# --------------------------------------------------------------------------- special ids


@dataclass(frozen=True)
class SpecialIds:
    """The special token ids an objective needs, plus the vocabulary size.

    ``extra_special`` lists further ids (e.g. ``[UNK]``) that are never drawn as the
    "random token" of the 80/10/10 rule; they are not otherwise treated as special.
    """

    pad: int
    cls: int
    sep: int
    mask: int
    vocab_size: int
    extra_special: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in ("pad", "cls", "sep", "mask"):
            v = getattr(self, name)
            if v is None or not 0 <= v < self.vocab_size:
                raise ValueError(f"{name}={v} must be a token id in [0, vocab_size={self.vocab_size})")

    @classmethod
    def from_config(cls, cfg: Any) -> "SpecialIds":
        """From a :class:`genbert.config.GenBertConfig` (or anything with its field names)."""
        return cls(cfg.pad_token_id, cfg.cls_token_id, cfg.sep_token_id, cfg.mask_token_id, cfg.vocab_size)

    @classmethod
    def from_tokenizer(cls, tok: Any) -> "SpecialIds":
        """From a tokenizer with ``pad/cls/sep/mask_token_id`` and ``len(tok)``: genbert's
        :class:`~genbert.tokenization.Tokenizer` (WordPiece or sentencepiece; its
        ``special_ids``) or a transformers tokenizer (its ``all_special_ids``). [UNK] and every
        other special id go to ``extra_special``, so no random replacement is ever special."""
        core = (tok.pad_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id)
        special = getattr(tok, "special_ids", None)
        if not isinstance(special, (set, frozenset, list, tuple)):
            special = getattr(tok, "all_special_ids", None) or ()
        unk = getattr(tok, "unk_token_id", None)
        extra = {int(i) for i in special} | ({int(unk)} if unk is not None else set())
        return cls(*core, vocab_size=len(tok), extra_special=tuple(sorted(extra - set(core))))

    @property
    def special(self) -> tuple[int, int, int, int]:
        """pad, cls, sep, mask."""
        return (self.pad, self.cls, self.sep, self.mask)

    @functools.cached_property
    def random_pool(self) -> Tensor:
        """(V',) the ids the 80/10/10 rule may draw as a random replacement."""
        keep = torch.ones(self.vocab_size, dtype=torch.bool)
        banned = [i for i in (*self.special, *self.extra_special) if 0 <= i < self.vocab_size]
        keep[banned] = False
        pool = keep.nonzero().squeeze(1)
        if pool.numel() == 0:
            raise ValueError("the vocabulary has no non-special token to draw random replacements from")
        return pool


def special_tokens_mask(input_ids: Tensor, ids: SpecialIds) -> Tensor:
    """(B, T) bool, True where the token is pad / cls / sep / mask."""
    return torch.isin(input_ids, torch.tensor(ids.special, device=input_ids.device))


# --------------------------------------------------------------------------- small helpers


def _rand(g: Optional[torch.Generator]) -> float:
    return float(torch.rand(1, generator=g))


def _randint(g: Optional[torch.Generator], low: int, high: int) -> int:
    """Uniform integer in [low, high)."""
    return int(torch.randint(low, high, (1,), generator=g))


def _pad(rows: Sequence[Sequence[int]], value: int) -> Tensor:
    """Right-pad a list of id lists to (B, T_max) long."""
    t = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), t), value, dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r):
            out[i, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
    return out


def _ids_of(example: Any) -> list[int]:
    """A token-id list from a list or a mapping with ``input_ids``."""
    if isinstance(example, Mapping):
        example = example["input_ids"]
    if isinstance(example, Tensor):
        return example.tolist()
    return list(example)


def _is_pair(example: Any) -> bool:
    """A (source, target) pair rather than a flat list of ids."""
    return (isinstance(example, (tuple, list)) and len(example) == 2
            and all(not isinstance(x, int) and isinstance(x, (Sequence, Tensor)) for x in example))


def _truncate(x: list[int], n: Optional[int]) -> list[int]:
    return x if n is None else x[: max(n, 0)]


def _truncate_pair(a: list[int], b: list[int], max_tokens: int,
                   g: Optional[torch.Generator] = None) -> tuple[list[int], list[int]]:
    """Trim the longer of the two until ``len(a) + len(b) <= max_tokens``; from the end, or
    (with a generator, as BERT's create_pretraining_data) randomly from the front or the end."""
    a, b = list(a), list(b)
    while len(a) + len(b) > max(max_tokens, 0):
        longer = a if len(a) >= len(b) else b
        if g is not None and _rand(g) < 0.5:
            del longer[0]
        else:
            longer.pop()
    return a, b


def _mix_seed(base: int, other: int) -> int:
    return (base * 0x9E3779B97F4A7C15 + other + 1) % (2**63)


class _Randomized:
    """Holds a collator's generator; re-seeds it once per DataLoader worker (and per epoch,
    since the worker seed changes then), so workers never replay the same noise."""

    def __init__(self, generator: Optional[torch.Generator]) -> None:
        if generator is None:
            generator = torch.Generator().manual_seed(torch.initial_seed())
        self.generator = generator
        self._base_seed = generator.initial_seed()
        self._worker_key: Optional[tuple[int, int]] = None

    def _rng(self) -> torch.Generator:
        info = torch.utils.data.get_worker_info()
        if info is not None and (info.id, info.seed) != self._worker_key:
            self._worker_key = (info.id, info.seed)
            self.generator = torch.Generator().manual_seed(_mix_seed(self._base_seed, info.seed))
        return self.generator


# --------------------------------------------------------------------------- MLM


def _pick_tokens(cand: Tensor, prob: float, g: Optional[torch.Generator]) -> Tensor:
    """(B, T) bool: per row exactly round(prob * #candidates) candidates (at least one where
    the row has any), chosen uniformly."""
    n_cand = cand.sum(1)
    n_pick = torch.floor(prob * n_cand.double() + 0.5).long().clamp(min=1)
    n_pick = torch.where(n_cand > 0, torch.minimum(n_pick, n_cand), torch.zeros_like(n_pick))
    scores = torch.rand(cand.shape, generator=g)
    scores = scores.masked_fill(~cand, 2.0)  # non-candidates sort last
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return ranks < n_pick[:, None]


def _pick_whole_words(cand: Tensor, word_starts: Tensor, prob: float,
                      g: Optional[torch.Generator]) -> Tensor:
    """(B, T) bool: whole words (a start plus the candidates continuing it) chosen in random
    order while they fit a budget of round(prob * #candidates) tokens (at least one word)."""
    picked = torch.zeros_like(cand)
    for b, (c_row, s_row) in enumerate(zip(cand.tolist(), word_starts.tolist())):
        words: list[list[int]] = []
        current: Optional[list[int]] = None
        for t, (c, s) in enumerate(zip(c_row, s_row)):
            if not c:
                current = None
                continue
            if current is None or s:
                current = [t]
                words.append(current)
            else:
                current.append(t)
        if not words:
            continue
        n_tok = sum(len(w) for w in words)
        budget = max(1, int(math.floor(prob * n_tok + 0.5)))
        order = torch.randperm(len(words), generator=g).tolist()
        chosen: list[int] = []
        for w in order:
            if len(chosen) + len(words[w]) <= budget:
                chosen.extend(words[w])
        if not chosen:  # every word is longer than the budget: take one anyway
            chosen = words[order[0]]
        picked[b, chosen] = True
    return picked


def mask_tokens(
    input_ids: Tensor,
    special_mask: Optional[Tensor],
    ids: SpecialIds,
    prob: float = 0.15,
    generator: Optional[torch.Generator] = None,
    whole_word_starts: Optional[Tensor] = None,
    mask_replace_prob: float = 0.8,
    random_replace_prob: float = 0.1,
) -> tuple[Tensor, Tensor]:
    """BERT masking. Returns ``(masked_input_ids, labels)``, both (B, T) long.

    ``special_mask`` (B, T) bool marks positions that may never be picked (special tokens,
    padding); None means "pad / cls / sep / mask ids". Per row, round(prob * #candidates)
    candidates are picked (at least one where there is a candidate); of those 80% become
    [MASK], 10% a random non-special token, 10% stay. ``labels`` hold the original id at
    picked positions and -100 elsewhere. ``whole_word_starts`` (B, T) bool, True where a
    token starts a word, switches to whole-word masking (a word = its start and the
    following candidate tokens that are not starts).
    """
    if not 0.0 < prob <= 1.0:
        raise ValueError(f"masking prob must be in (0, 1], got {prob}")
    if mask_replace_prob < 0 or random_replace_prob < 0 or mask_replace_prob + random_replace_prob > 1:
        raise ValueError("mask_replace_prob and random_replace_prob must be >= 0 and sum to <= 1")
    if special_mask is None:
        special_mask = special_tokens_mask(input_ids, ids)
    cand = ~special_mask.bool()
    if whole_word_starts is None:
        picked = _pick_tokens(cand, prob, generator)
    else:
        picked = _pick_whole_words(cand, whole_word_starts.bool(), prob, generator)
    u = torch.rand(input_ids.shape, generator=generator)
    to_mask = picked & (u < mask_replace_prob)
    to_rand = picked & (u >= mask_replace_prob) & (u < mask_replace_prob + random_replace_prob)
    pool = ids.random_pool
    random_tokens = pool[torch.randint(len(pool), input_ids.shape, generator=generator)]
    out = input_ids.clone()
    out[to_mask] = ids.mask
    out[to_rand] = random_tokens[to_rand].to(out.dtype)
    labels = torch.where(picked, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return out, labels


def continuation_ids_from_tokenizer(tok: Any, prefix: str = "##") -> list[int]:
    """Ids of the tokens that continue a word, for whole-word masking; special ids never.

    genbert's :class:`~genbert.tokenization.Tokenizer`: WordPiece pieces starting with ``prefix``
    ("##"), or sentencepiece pieces *not* starting with "\u2581" (sentencepiece marks word
    starts). Any other tokenizer (transformers') is read as WordPiece through
    ``convert_ids_to_tokens``.
    """
    n = len(tok)
    special = SpecialIds.from_tokenizer(tok)
    banned = {*special.special, *special.extra_special}
    if hasattr(tok, "id_to_token") and hasattr(tok, "kind"):
        tokens = [tok.id_to_token(i) for i in range(n)]
    else:
        tokens = tok.convert_ids_to_tokens(list(range(n)))
    if getattr(tok, "kind", "wordpiece") == "sentencepiece":
        def continues(t: str) -> bool:
            return not t.startswith("\u2581")
    else:
        def continues(t: str) -> bool:
            return t.startswith(prefix)
    return [i for i, t in enumerate(tokens) if i not in banned and isinstance(t, str) and continues(t)]


def _word_starts(input_ids: Tensor, continuation_ids: Optional[Tensor]) -> Optional[Tensor]:
    if continuation_ids is None:
        return None
    return ~torch.isin(input_ids, continuation_ids)


class MLMCollator(_Randomized):
    """Masked LM over single documents: ``[CLS] x [SEP]``.

    Call on a list of token-id lists. Returns ``input_ids``, ``token_type_ids`` (zeros),
    ``attention_mask`` (2-D (B, T) long, or 3-D bidirectional bool with
    ``explicit_mask=True``), ``labels`` (B, T) and ``shift_labels=False``.
    ``whole_word=True`` needs ``continuation_ids`` (e.g. from
    :func:`continuation_ids_from_tokenizer`).
    """

    def __init__(self, ids: SpecialIds, max_length: int = 512, prob: float = 0.15,
                 whole_word: bool = False, generator: Optional[torch.Generator] = None,
                 continuation_ids: Optional[Sequence[int]] = None, explicit_mask: bool = False) -> None:
        super().__init__(generator)
        if max_length < 3:
            raise ValueError(f"max_length must be >= 3, got {max_length}")
        if whole_word and continuation_ids is None:
            raise ValueError("whole_word=True needs continuation_ids (ids of '##' tokens)")
        self.ids, self.max_length, self.prob = ids, max_length, prob
        self.whole_word, self.explicit_mask = whole_word, explicit_mask
        self.continuation_ids = (torch.as_tensor(list(continuation_ids), dtype=torch.long)
                                 if whole_word else None)

    def __call__(self, examples: Sequence[Any]) -> dict[str, Any]:
        ids = self.ids
        rows = [[ids.cls, *_ids_of(x)[: self.max_length - 2], ids.sep] for x in examples]
        input_ids = _pad(rows, ids.pad)
        attn = _pad([[1] * len(r) for r in rows], 0)
        g = self._rng()
        masked, labels = mask_tokens(input_ids, special_tokens_mask(input_ids, ids), ids, self.prob, g,
                                     _word_starts(input_ids, self.continuation_ids))
        token_type_ids = torch.zeros_like(input_ids)
        return {
            "input_ids": masked,
            "token_type_ids": token_type_ids,
            "attention_mask": masks.bidirectional(input_ids, attn) if self.explicit_mask else attn,
            "labels": labels,
            "shift_labels": False,
        }


# --------------------------------------------------------------------------- NSP


class NSPExample(NamedTuple):
    """A sentence pair. ``is_random_next``: B comes from another document (label 1)."""

    tokens_a: list[int]
    tokens_b: list[int]
    is_random_next: bool


def make_nsp_examples(
    documents: Sequence[Sequence[Sequence[int]]],
    generator: Optional[torch.Generator] = None,
    max_length: int = 512,
    short_seq_prob: float = 0.1,
    random_next_prob: float = 0.5,
) -> list[NSPExample]:
    """BERT's ``create_instances_from_document`` over every document.

    ``documents``: a list of documents, each a list of sentences (token-id lists, no special
    tokens). Sentences are gathered into chunks of about ``max_length - 3`` tokens (shorter
    with probability ``short_seq_prob``); a chunk is split at a random sentence boundary into
    A and B, and with probability ``random_next_prob`` B is replaced by a segment from another
    document (the unused sentences go back to the pool). Each pair is trimmed to fit
    ``[CLS] A [SEP] B [SEP]`` in ``max_length``. Unlike BERT, a one-sentence chunk that drew
    "true next" borrows the next sentence (or, at the document's end, the previous one as A)
    instead of always becoming a random pair, so labels stay close to 50/50 (only
    one-sentence documents are always random). With a single document no random pair can be
    made: every pair is a true one, and a one-sentence document is skipped.
    """
    g = generator
    max_tokens = max_length - 3
    if max_tokens < 2:
        raise ValueError(f"max_length must be >= 5, got {max_length}")
    docs = [[list(s) for s in d if len(s)] for d in documents]
    docs_idx = [i for i, d in enumerate(docs) if d]
    out: list[NSPExample] = []
    for di in docs_idx:
        doc = docs[di]
        others = [j for j in docs_idx if j != di]
        target = max_tokens if _rand(g) >= short_seq_prob else _randint(g, 2, max_tokens + 1)
        chunk: list[list[int]] = []
        length = 0
        i = 0
        while i < len(doc):
            chunk.append(doc[i])
            length += len(doc[i])
            if i == len(doc) - 1 or length >= target:
                random_next = bool(others) and _rand(g) < random_next_prob
                if not random_next and len(chunk) == 1:
                    if i + 1 < len(doc):  # borrow the next sentence so a true B exists
                        i += 1
                        chunk.append(doc[i])
                    elif i > 0:  # at the document's end: reuse the previous sentence as A
                        chunk.insert(0, doc[i - 1])
                    elif others:  # a one-sentence document
                        random_next = True
                    else:  # neither a true nor a random B is possible
                        chunk, length, i = [], 0, i + 1
                        continue
                a_end = _randint(g, 1, len(chunk)) if len(chunk) >= 2 else 1
                tokens_a = [t for s in chunk[:a_end] for t in s]
                if random_next:
                    other = docs[others[_randint(g, 0, len(others))]]
                    target_b = max(1, target - len(tokens_a))
                    start = _randint(g, 0, len(other))
                    tokens_b: list[int] = []
                    for s in other[start:]:
                        tokens_b.extend(s)
                        if len(tokens_b) >= target_b:
                            break
                    i -= len(chunk) - a_end  # the unused sentences are seen again
                else:
                    tokens_b = [t for s in chunk[a_end:] for t in s]
                tokens_a, tokens_b = _truncate_pair(tokens_a, tokens_b, max_tokens, g)
                if tokens_a and tokens_b:
                    out.append(NSPExample(tokens_a, tokens_b, random_next))
                chunk, length = [], 0
            i += 1
    return out


class NSPCollator(_Randomized):
    """Next-sentence prediction plus MLM over :class:`NSPExample` (or ``(a, b, is_random)``).

    Layout ``[CLS] A [SEP] B [SEP]``, ``token_type_ids`` 0 for ``[CLS] A [SEP]`` and 1 for
    ``B [SEP]``. Returns ``input_ids``, ``token_type_ids``, ``attention_mask`` (2-D),
    ``labels`` (MLM, aligned), ``next_sentence_label`` (B,) long (0 = B is the true next
    segment, 1 = random), ``shift_labels=False``.
    """

    def __init__(self, ids: SpecialIds, max_length: int = 512, prob: float = 0.15,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__(generator)
        self.ids, self.max_length, self.prob = ids, max_length, prob

    def __call__(self, examples: Sequence[Any]) -> dict[str, Any]:
        ids = self.ids
        g = self._rng()
        rows, types, nsp = [], [], []
        for a, b, is_random in examples:
            a, b = _truncate_pair(list(a), list(b), self.max_length - 3)
            rows.append([ids.cls, *a, ids.sep, *b, ids.sep])
            types.append([0] * (len(a) + 2) + [1] * (len(b) + 1))
            nsp.append(int(bool(is_random)))
        input_ids = _pad(rows, ids.pad)
        masked, labels = mask_tokens(input_ids, special_tokens_mask(input_ids, ids), ids, self.prob, g)
        return {
            "input_ids": masked,
            "token_type_ids": _pad(types, 0),
            "attention_mask": _pad([[1] * len(r) for r in rows], 0),
            "labels": labels,
            "next_sentence_label": torch.tensor(nsp, dtype=torch.long),
            "shift_labels": False,
        }


# --------------------------------------------------------------------------- BART text infilling


def infill(tokens: Sequence[int], ids: SpecialIds, generator: Optional[torch.Generator] = None,
           mask_ratio: float = 0.3, poisson_lambda: float = 3.0) -> list[int]:
    """BART text infilling: the corrupted source for ``tokens`` (the target is ``tokens``).

    Span lengths are drawn from Poisson(``poisson_lambda``) until they cover
    ceil(``mask_ratio`` * len) tokens (the last span is shortened to hit that exactly). The
    spans are laid out at uniformly random, non-overlapping places (they may touch); each is
    replaced by ONE [MASK], and a zero-length span inserts a [MASK]. So
    ``len(source) == len(tokens) - covered + n_spans`` and the unmasked tokens keep their order.
    """
    tokens = list(tokens)
    n = len(tokens)
    if not 0.0 <= mask_ratio <= 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1], got {mask_ratio}")
    budget = math.ceil(n * mask_ratio - 1e-9)
    if n == 0 or budget == 0:
        return tokens
    lengths: list[int] = []
    total = 0
    rate = torch.full((max(8, math.ceil(2 * budget / max(poisson_lambda, 1e-3))),), float(poisson_lambda))
    while total < budget:
        for length in torch.poisson(rate, generator=generator).long().tolist():
            length = min(length, budget - total)
            lengths.append(length)
            total += length
            if total >= budget:
                break
    k = len(lengths)
    slots = n - budget + k  # kept tokens and spans, in some order
    span_slots = torch.randperm(slots, generator=generator)[:k].sort().values.tolist()
    source: list[int] = []
    src_pos = 0
    span_iter = iter(lengths)  # already in random order
    span_set = set(span_slots)
    for slot in range(slots):
        if slot in span_set:
            source.append(ids.mask)
            src_pos += next(span_iter)
        else:
            source.append(tokens[src_pos])
            src_pos += 1
    return source


def permute_sentences(sentences: Sequence[Sequence[int]],
                      generator: Optional[torch.Generator] = None) -> list[list[int]]:
    """BART sentence permutation: the sentences in a uniformly random order."""
    order = torch.randperm(len(sentences), generator=generator).tolist()
    return [list(sentences[i]) for i in order]


def make_denoising_pair(document: Sequence[Any], ids: SpecialIds,
                        generator: Optional[torch.Generator] = None, mask_ratio: float = 0.3,
                        poisson_lambda: float = 3.0, permute: bool = False) -> tuple[list[int], list[int]]:
    """A BART ``(source, target)`` pair. ``document`` is a token-id list or, for
    ``permute=True``, a list of sentences. The target is the original text; the source is
    the (permuted, then) infilled text."""
    if document and not isinstance(document[0], int):
        sentences = [list(s) for s in document]
    else:
        if permute:
            raise ValueError("permute=True needs the document as a list of sentences")
        sentences = [list(document)]
    target = [t for s in sentences for t in s]
    shuffled = permute_sentences(sentences, generator) if permute else sentences
    source = infill([t for s in shuffled for t in s], ids, generator, mask_ratio, poisson_lambda)
    return source, target


# --------------------------------------------------------------------------- UniLM


UNILM_SCHEMES = ("bidirectional", "causal", "anti_causal", "prefix")
"""UniLM row schemes: bidirectional, left-to-right, right-to-left, seq2seq (`genbert.masks` names)."""


class UniLMCollator(_Randomized):
    """UniLM mixed pre-training: each row gets one scheme of :data:`UNILM_SCHEMES`, drawn
    with ``scheme_probs`` (default 1/3, 1/6, 1/6, 1/3), its 3-D mask from `genbert.masks`, and
    MLM (``prob``) on its non-special tokens.

    Examples are token-id lists (a document) or ``(a, b)`` pairs. A pair is laid out
    ``[CLS] a [SEP] b [SEP]`` (token types 0 / 1) for every scheme; a document is laid out
    ``[CLS] x [SEP]`` (token type 0), except for seq2seq (``"prefix"``) rows, where it is split
    at a uniformly random point into source and target.

    ``__call__`` returns only model inputs: ``input_ids``, ``token_type_ids``,
    ``attention_mask`` (3-D (B, T, T) bool), ``labels`` (aligned) and ``shift_labels=False``.
    :meth:`collate_with_schemes` returns ``(batch, schemes)`` with the per-row scheme names.
    """

    def __init__(self, ids: SpecialIds, max_length: int = 512, prob: float = 0.15,
                 scheme_probs: Sequence[float] = (1 / 3, 1 / 6, 1 / 6, 1 / 3),
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__(generator)
        if len(scheme_probs) != len(UNILM_SCHEMES) or min(scheme_probs) < 0 or sum(scheme_probs) <= 0:
            raise ValueError(f"scheme_probs needs {len(UNILM_SCHEMES)} non-negative weights for {UNILM_SCHEMES}")
        if max_length < 4:
            raise ValueError(f"max_length must be >= 4, got {max_length}")
        self.ids, self.max_length, self.prob = ids, max_length, prob
        self.scheme_probs = torch.tensor(list(scheme_probs), dtype=torch.double)

    def collate_with_schemes(self, examples: Sequence[Any]) -> tuple[dict[str, Any], list[str]]:
        ids, g = self.ids, self._rng()
        scheme_idx = torch.multinomial(self.scheme_probs, len(examples), replacement=True, generator=g).tolist()
        rows, types = [], []
        for x, s in zip(examples, scheme_idx):
            if _is_pair(x):
                a, b = _ids_of(x[0]), _ids_of(x[1])
            elif UNILM_SCHEMES[s] == "prefix":
                doc = _ids_of(x)
                cut = _randint(g, 1, len(doc)) if len(doc) >= 2 else len(doc)
                a, b = doc[:cut], doc[cut:]
            else:
                body = _ids_of(x)[: self.max_length - 2]
                rows.append([ids.cls, *body, ids.sep])
                types.append([0] * len(rows[-1]))
                continue
            a, b = _truncate_pair(a, b, self.max_length - 3)
            rows.append([ids.cls, *a, ids.sep, *b, ids.sep])
            types.append([0] * (len(a) + 2) + [1] * (len(b) + 1))
        input_ids = _pad(rows, ids.pad)
        token_type_ids = _pad(types, 0)
        attn = _pad([[1] * len(r) for r in rows], 0)
        sel = torch.tensor(scheme_idx, dtype=torch.long)
        all_masks = torch.stack([masks.build_mask(name, input_ids, attn, token_type_ids)
                                 for name in UNILM_SCHEMES])  # (S, B, T, T)
        mask3d = all_masks[sel, torch.arange(len(rows))]
        masked, labels = mask_tokens(input_ids, special_tokens_mask(input_ids, ids), ids, self.prob, g)
        batch = {
            "input_ids": masked,
            "token_type_ids": token_type_ids,
            "attention_mask": mask3d,
            "labels": labels,
            "shift_labels": False,
        }
        return batch, [UNILM_SCHEMES[s] for s in scheme_idx]

    def __call__(self, examples: Sequence[Any]) -> dict[str, Any]:
        return self.collate_with_schemes(examples)[0]


# --------------------------------------------------------------------------- seq2seq packers


# the layouts Seq2SeqCollator packs: the prefix scheme's objectives, then the other schemes'
LAYOUTS = ("next-token", "masked-target", "pseudo-mask", "causal", "encoder-decoder")


def _source_target_pairs(examples: Sequence[Any], max_source_length: Optional[int],
                         max_target_length: Optional[int]) -> list[tuple[list[int], list[int]]]:
    """``(source, target)`` pairs or ``{"source", "target"}`` mappings -> truncated id lists."""
    out = []
    for x in examples:
        if isinstance(x, Mapping):
            x = (x["source"], x["target"])
        src, tgt = x
        out.append((_truncate(_ids_of(src), max_source_length), _truncate(_ids_of(tgt), max_target_length)))
    return out


class Seq2SeqCollator(_Randomized):
    """Packs ``(source_ids, target_ids)`` pairs for one scheme (``"prefix"``, ``"causal"``,
    ``"encoder-decoder"``) and, for the prefix scheme, one objective (config.OBJECTIVES). The
    layouts, by the prefix objective or the other scheme:

    ``max_source_length`` / ``max_target_length`` cap the number of source / target ids,
    *not* counting the special tokens added here (None = no cap). With ``tgt' = tgt + [SEP]``:

    * ``"next-token"`` (prefix LM): ``[CLS] src [SEP] tgt [SEP]``, token types 0 for
      ``[CLS] src [SEP]`` and 1 for ``tgt [SEP]``, 2-D ``attention_mask`` (the model's prefix
      scheme builds the mask), ``labels`` = the ids on tgt' positions (-100 elsewhere),
      ``shift_labels=True``.
    * ``"masked-target"`` (UniLM fine-tuning): same layout; tgt' tokens masked with
      probability ``mask_prob`` (80/10/10, at least one per row), labels at their own
      positions, ``shift_labels=False``, 2-D mask (prefix scheme).
    * ``"pseudo-mask"`` (s2s-ft): ``[CLS] src [SEP] tgt' [MASK]*len(tgt')``; pseudo mask i
      has target i's position id (``position_ids`` returned) and token type 1; explicit 3-D
      mask: source sees source; real target j sees source + real targets <= j; pseudo i sees
      source + real targets < i + itself; nothing sees padding (a padding row sees only
      itself). Labels = tgt'[i] on pseudo i, -100 elsewhere; ``shift_labels=False``.
    * ``"causal"``: the next-token layout and labels, but every token type 0 (a causal-scheme
      model generates its tokens with token type 0, so training matches generation) and an
      explicit 3-D causal mask, so the objective is left-to-right whatever the model's
      configured scheme. (With ``explicit_mask=False`` the model's own scheme builds the mask:
      use a causal-scheme model then, since a prefix model would see all-zero token types as
      one bidirectional segment.)
    * ``"encoder-decoder"``: ``input_ids = [CLS] src [SEP]``, ``token_type_ids`` zeros, 2-D
      ``attention_mask``, ``labels`` = tgt' padded with -100 (the model builds decoder inputs by
      shifting right with ``decoder_start_token_id``); no ``shift_labels`` key.

    ``explicit_mask`` (None = the per-objective default above) forces a 3-D mask (True) for
    "next-token" / "masked-target" (prefix) and "causal", or a 2-D one (False) for "causal".
    """

    def __init__(self, ids: SpecialIds, objective: str = "next-token",
                 max_source_length: Optional[int] = None, max_target_length: Optional[int] = None,
                 generator: Optional[torch.Generator] = None, mask_prob: float = 0.7,
                 explicit_mask: Optional[bool] = None, scheme: str = "prefix") -> None:
        super().__init__(generator)
        if scheme not in ("prefix", "causal", "encoder-decoder"):
            raise ValueError(f"Seq2SeqCollator packs the prefix, causal and encoder-decoder schemes, not {scheme!r}")
        if objective not in OBJECTIVES[scheme]:
            raise ValueError(f"unknown objective {objective!r} for the {scheme} scheme; "
                             f"choose one of {list(OBJECTIVES[scheme])}")
        objective = objective if scheme == "prefix" else scheme  # the layout
        if explicit_mask is not None and objective in ("pseudo-mask", "encoder-decoder"):
            raise ValueError(f"explicit_mask does not apply to the {objective!r} layout")
        self.ids, self.objective = ids, objective
        self.max_source_length, self.max_target_length = max_source_length, max_target_length
        self.mask_prob = mask_prob
        self.explicit_mask = (objective == "causal") if explicit_mask is None else explicit_mask

    def _pairs(self, examples: Sequence[Any]) -> list[tuple[list[int], list[int]]]:
        return _source_target_pairs(examples, self.max_source_length, self.max_target_length)

    def __call__(self, examples: Sequence[Any]) -> dict[str, Any]:
        return self.pack(examples, self._rng())

    def pack(self, examples: Sequence[Any], generator: Optional[torch.Generator]) -> dict[str, Any]:
        """``__call__`` with an explicit generator (only "masked-target" draws from it)."""
        pairs = self._pairs(examples)
        if self.objective == "encoder-decoder":
            return self._encoder_decoder(pairs)
        if self.objective == "pseudo-mask":
            return self._pseudo_mask(pairs)
        return self._prefix_layout(pairs, generator)

    def _prefix_layout(self, pairs: list[tuple[list[int], list[int]]],
                       generator: Optional[torch.Generator]) -> dict[str, Any]:
        ids = self.ids
        rows, segments = [], []
        for src, tgt in pairs:
            rows.append([ids.cls, *src, ids.sep, *tgt, ids.sep])
            segments.append([0] * (len(src) + 2) + [1] * (len(tgt) + 1))
        input_ids = _pad(rows, ids.pad)
        is_target = _pad(segments, 0).bool()
        # the causal scheme generates with token type 0 everywhere; prefix models use 0 / 1
        token_type_ids = torch.zeros_like(input_ids) if self.objective == "causal" else is_target.long()
        attn = _pad([[1] * len(r) for r in rows], 0)
        if self.objective == "masked-target":
            inputs, labels = mask_tokens(input_ids, ~is_target, ids, self.mask_prob, generator)
            shift = False
        else:
            inputs = input_ids
            labels = input_ids.masked_fill(~is_target, IGNORE_INDEX)
            shift = True
        mask: Tensor = attn
        if self.explicit_mask:
            fn = masks.causal if self.objective == "causal" else masks.prefix
            mask = fn(input_ids, attn, token_type_ids)
        return {
            "input_ids": inputs,
            "token_type_ids": token_type_ids,
            "attention_mask": mask,
            "labels": labels,
            "shift_labels": shift,
        }

    def _pseudo_mask(self, pairs: list[tuple[list[int], list[int]]]) -> dict[str, Any]:
        ids = self.ids
        rows, types, positions, segs, idxs, labels = [], [], [], [], [], []
        for src, tgt in pairs:
            s = len(src) + 2
            tgt = [*tgt, ids.sep]
            m = len(tgt)
            rows.append([ids.cls, *src, ids.sep, *tgt, *[ids.mask] * m])
            types.append([0] * s + [1] * (2 * m))
            positions.append([*range(s), *range(s, s + m), *range(s, s + m)])
            segs.append([0] * s + [1] * m + [2] * m)  # 0 source, 1 real target, 2 pseudo, 3 pad
            idxs.append([0] * s + [*range(m)] * 2)
            labels.append([IGNORE_INDEX] * (s + m) + tgt)
        input_ids = _pad(rows, ids.pad)
        mask = masks.pseudo_mask(_pad(segs, 3), _pad(idxs, 0))
        return {
            "input_ids": input_ids,
            "token_type_ids": _pad(types, 0),
            "position_ids": _pad(positions, 0),
            "attention_mask": mask,
            "labels": _pad(labels, IGNORE_INDEX),
            "shift_labels": False,
        }

    def _encoder_decoder(self, pairs: list[tuple[list[int], list[int]]]) -> dict[str, Any]:
        ids = self.ids
        rows = [[ids.cls, *src, ids.sep] for src, _ in pairs]
        input_ids = _pad(rows, ids.pad)
        return {
            "input_ids": input_ids,
            "token_type_ids": torch.zeros_like(input_ids),
            "attention_mask": _pad([[1] * len(r) for r in rows], 0),
            "labels": _pad([[*tgt, ids.sep] for _, tgt in pairs], IGNORE_INDEX),
        }


class InfillingCollator(_Randomized):
    """BART denoising on the fly: each document (token-id list, or list of sentences when
    ``permute=True``) becomes :func:`make_denoising_pair`'s ``(source, target)``, packed by a
    :class:`Seq2SeqCollator` for ``scheme`` and ``objective``. Documents are cut to ``max_target_length``
    ids before corruption; the sources to ``max_source_length``."""

    def __init__(self, ids: SpecialIds, objective: str = "next-token",
                 max_source_length: Optional[int] = None, max_target_length: Optional[int] = None,
                 generator: Optional[torch.Generator] = None, mask_ratio: float = 0.3,
                 poisson_lambda: float = 3.0, permute: bool = False, scheme: str = "encoder-decoder",
                 **packer_kwargs: Any) -> None:
        super().__init__(generator)
        self.ids, self.mask_ratio, self.poisson_lambda, self.permute = ids, mask_ratio, poisson_lambda, permute
        self.max_target_length = max_target_length
        # the packer draws (masked-target only) from this collator's generator, see __call__
        self.packer = Seq2SeqCollator(ids, objective, max_source_length, max_target_length,
                                      generator=torch.Generator(), scheme=scheme, **packer_kwargs)

    def _cut(self, doc: Any) -> Any:
        if self.max_target_length is None:
            return doc
        if self.permute:
            out, n = [], 0
            for s in doc:
                s = list(s)[: self.max_target_length - n]
                if s:
                    out.append(s)
                n += len(s)
            return out
        return _ids_of(doc)[: self.max_target_length]

    def __call__(self, examples: Sequence[Any]) -> dict[str, Any]:
        g = self._rng()
        pairs = [make_denoising_pair(self._cut(d), self.ids, g, self.mask_ratio, self.poisson_lambda, self.permute)
                 for d in examples]
        return self.packer.pack(pairs, g)


# --------------------------------------------------------------------------- masked diffusion


DIFFUSION_REPLACE = ("mask", "80/10/10")
"""What a masked target-block token becomes: always [MASK], or BERT's 80/10/10 rule."""
DIFFUSION_ATTENTION = ("source-block", "bidirectional")
# "elbo": 1/(t*L), the MDLM / LLaDA bound; "mean": the mean over a row's masked tokens (CMLM), lower variance
DIFFUSION_WEIGHTS = ("elbo", "mean")
"""The diffusion attention masks (`genbert.config.DIFFUSION_MASKS`)."""


def diffusion_times(batch_size: int, eps: float = 1e-3,
                    generator: Optional[torch.Generator] = None) -> Tensor:
    """(B,) float64 masking rates t in [eps, 1), stratified as MDLM's antithetic sampling: one
    uniform u per batch, t = eps + (1 - eps) * ((u + k / B) mod 1), with the strata k a random
    permutation (so a row's place in a sorted batch does not set its rate). Each t is U(eps, 1)."""
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be in (0, 1), got {eps}")
    u = torch.rand(1, generator=generator, dtype=torch.float64)
    strata = torch.randperm(batch_size, generator=generator).double()
    return eps + (1.0 - eps) * torch.remainder(u + strata / batch_size, 1.0)


class DiffusionCollator(_Randomized):
    """Masked diffusion (MDLM / LLaDA SFT) over ``(source_ids, target_ids)`` pairs: BERT's own way
    to generate.

    Layout ``[CLS] src [SEP] block``, token types 0 for ``[CLS] src [SEP]`` and 1 for the block;
    the block holds exactly ``max_target_length`` ids: the target (cut to that length) followed
    by [SEP]s, the id generation stops at. Rows are right-padded; the default position ids
    (0..T-1) already place each block right after its own source, as generation does.

    Per row a rate t ~ U(eps, 1) (stratified across the batch, :func:`diffusion_times`); every
    block token, the trailing [SEP]s included (so the model learns where to stop), is masked with
    probability t; the source never is. ``replace="mask"`` puts [MASK] at every masked token;
    ``"80/10/10"`` puts [MASK] / a random non-special id / the original. No row is forced to
    hold a masked token: forcing one at small t would weigh it 1/(t*L) and bias the ELBO.
    ``weight="mean"`` (an ablation; Mask-Predict's loss) weighs each masked token 1/(masked tokens of its row)
    instead: every row with a masked token counts once, whatever its t, which removes the 1/t
    weight's variance at small batches.

    Returns ``input_ids``, ``token_type_ids``, ``attention_mask`` (3-D (B, T, T) bool:
    :func:`genbert.masks.source_block`, or :func:`genbert.masks.bidirectional` for
    ``attention="bidirectional"``), ``labels`` (aligned: the original id at masked positions,
    -100 elsewhere), ``shift_labels=False`` and ``label_weights`` (B, T) float32: 1/(t*L) at
    masked positions, 0 elsewhere, so that the model's weighted loss is the mean over rows of
    (1/L) * sum over masked tokens of CE / t, the MDLM/LLaDA ELBO weight.
    """

    def __init__(self, ids: SpecialIds, max_source_length: Optional[int] = None, max_target_length: int = 64,
                 generator: Optional[torch.Generator] = None, eps: float = 1e-3, replace: str = "mask",
                 attention: str = "source-block", weight: str = "elbo") -> None:
        super().__init__(generator)
        if not isinstance(max_target_length, int) or max_target_length < 1:
            raise ValueError(f"max_target_length must be an int >= 1 (the block length), got {max_target_length!r}")
        if not 0.0 < eps < 1.0:
            raise ValueError(f"eps must be in (0, 1), got {eps}")
        if replace not in DIFFUSION_REPLACE:
            raise ValueError(f"replace must be one of {DIFFUSION_REPLACE}, got {replace!r}")
        if attention not in DIFFUSION_ATTENTION:
            raise ValueError(f"attention must be one of {DIFFUSION_ATTENTION}, got {attention!r}")
        if weight not in DIFFUSION_WEIGHTS:
            raise ValueError(f"weight must be one of {DIFFUSION_WEIGHTS}, got {weight!r}")
        self.ids, self.eps, self.replace, self.attention, self.weight = ids, eps, replace, attention, weight
        self.max_source_length, self.max_target_length = max_source_length, max_target_length

    def __call__(self, examples: Sequence[Any]) -> dict[str, Any]:
        return self.collate_with_times(examples)[0]

    def collate_with_times(self, examples: Sequence[Any]) -> tuple[dict[str, Any], Tensor]:
        """``(batch, t)``: the batch and the (B,) float64 masking rate of each row."""
        ids, g, n = self.ids, self._rng(), self.max_target_length
        rows, types = [], []
        for src, tgt in _source_target_pairs(examples, self.max_source_length, n):
            rows.append([ids.cls, *src, ids.sep, *tgt, *[ids.sep] * (n - len(tgt))])
            types.append([0] * (len(src) + 2) + [1] * n)
        input_ids = _pad(rows, ids.pad)
        token_type_ids = _pad(types, 0)
        attn = _pad([[1] * len(r) for r in rows], 0)
        in_block = token_type_ids.bool()
        t = diffusion_times(len(rows), self.eps, g)
        picked = (torch.rand(input_ids.shape, generator=g, dtype=torch.float64) < t[:, None]) & in_block
        inputs = input_ids.masked_fill(picked, ids.mask)
        if self.replace == "80/10/10":
            u = torch.rand(input_ids.shape, generator=g)
            pool = ids.random_pool
            random_tokens = pool[torch.randint(len(pool), input_ids.shape, generator=g)]
            inputs = torch.where(picked & (u >= 0.8) & (u < 0.9), random_tokens, inputs)
            inputs = torch.where(picked & (u >= 0.9), input_ids, inputs)
        if self.weight == "elbo":
            weights = (1.0 / (t * n)).float()[:, None].expand_as(input_ids)
        else:
            weights = (1.0 / picked.sum(1).clamp(min=1)).float()[:, None].expand_as(input_ids)
        mask_fn = masks.source_block if self.attention == "source-block" else masks.bidirectional
        batch = {
            "input_ids": inputs,
            "token_type_ids": token_type_ids,
            "attention_mask": mask_fn(input_ids, attn, token_type_ids),
            "labels": input_ids.masked_fill(~picked, IGNORE_INDEX),
            "shift_labels": False,
            "label_weights": torch.where(picked, weights, torch.zeros_like(weights)),
        }
        return batch, t
