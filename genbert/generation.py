"""Decoding, kept outside the model.

A *state* turns the generated tokens so far into next-token logits, through the model's cached
step (or a full forward when use_cache=False); *strategies* (greedy, sampling, beam search) pick
tokens from the scores. Scores follow transformers' convention: log-softmax over the vocabulary,
then the constraints on those log-probabilities, no renormalising; beam scores are running sums.
Repetition penalty and n-gram blocking look at the generated tokens only (never the source); the
word-level options (`no_repeat_word_ngram_size`, `no_repeat_content_words`) see the words those
tokens make, through the tokenizer's `genbert.words.WordVocab`; so do `copy_subwords`, which
lets a word of several pieces only spell a word of the source, and `copy_numbers`, which lets a
number only be a number of the source.

Encoder-only bidirectional models (BERT itself) generate by masked diffusion (`DiffusionState`,
`diffusion_sample`): a block of [MASK]s after the source, unmasked over a few full passes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from . import masks, packing
from .config import DIFFUSION_ORDERS
from .words import CONT as CONT_KIND, START as START_KIND, SourceNumbers, SourceWords, WordVocab

NEG = -1.0e9
# the options that read words off the vocabulary: each needs GenerationConfig.word_vocab
WORD_VOCAB_OPTIONS = ("no_repeat_word_ngram_size", "no_repeat_content_words", "copy_subwords", "copy_numbers")
DIFFUSION_ARGS = ("steps", "order", "remask", "block_length", "collapse_repeats", "on_step")


@dataclass
class GenerationConfig:
    max_new_tokens: int = 32
    min_new_tokens: int = 0
    num_beams: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    length_penalty: float = 1.0
    # word-level repeat blocking on the words a reader sees (see genbert.words); both need word_vocab
    no_repeat_word_ngram_size: int = 0
    no_repeat_content_words: bool = False
    word_vocab: Optional[WordVocab] = None
    early_stopping: bool | str = False
    eos_token_id: Optional[int] = None
    pad_token_id: Optional[int] = None
    decoder_start_token_id: Optional[int] = None
    use_cache: bool = True
    mask_predict: Optional[bool] = None  # None: from the model's config.decoding
    generator: Optional[torch.Generator] = None
    # masked diffusion only (None = not given): denoising passes (default max_new_tokens), the
    # order tokens are committed in (default "confidence"), Mask-Predict re-masking (default
    # False), semi-autoregressive block length (default max_new_tokens: one block)
    steps: Optional[int] = None
    order: Optional[str] = None
    remask: Optional[bool] = None
    block_length: Optional[int] = None
    # diffusion: merge each run of one token repeated in a row into one (parallel decoders' standard
    # post-processing: independent predictions of neighbouring positions often agree)
    collapse_repeats: Optional[bool] = None
    # diffusion: called after every denoising pass with the (B, max_new_tokens) tokens so far ([MASK] where masked)
    on_step: Optional[Callable[[Tensor], None]] = None
    # a copy prior: added to the log-probability of every token of the row's source (special tokens
    # excepted) at every step, every scheme. Headlines reuse the article's words; a model trained on
    # a few topics otherwise writes its training topics' words (docs/summarization.md)
    copy_bias: float = 0.0
    # a word of several word pieces must be a word of the row's source, spelled on piece by piece:
    # names and rare words are copied, never made up of pieces ("usm", "darskft"; needs word_vocab)
    copy_subwords: bool = False
    # a number is a number of the row's source, whole: figures are copied, never made up of pieces
    # of several ("76.1.13bn"; needs word_vocab; token-by-token decoding only)
    copy_numbers: bool = False

    def validate(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r}: {what}")
        need(isinstance(self.max_new_tokens, int) and self.max_new_tokens >= 1, "max_new_tokens", "must be an int >= 1")
        need(isinstance(self.copy_bias, (int, float)) and math.isfinite(self.copy_bias), "copy_bias",
             "must be a finite number")
        need(isinstance(self.min_new_tokens, int) and 0 <= self.min_new_tokens <= self.max_new_tokens,
             "min_new_tokens", "must be an int in [0, max_new_tokens]")
        need(isinstance(self.num_beams, int) and self.num_beams >= 1, "num_beams", "must be an int >= 1")
        need(0.0 < self.top_p <= 1.0, "top_p", "must be in (0, 1]")
        need(isinstance(self.top_k, int) and self.top_k >= 0, "top_k", "must be an int >= 0")
        need(not self.do_sample or self.temperature > 0, "temperature", "must be > 0 when sampling")
        need(self.repetition_penalty > 0, "repetition_penalty", "must be > 0")
        need(isinstance(self.no_repeat_ngram_size, int) and self.no_repeat_ngram_size >= 0,
             "no_repeat_ngram_size", "must be an int >= 0")
        need(isinstance(self.no_repeat_word_ngram_size, int) and self.no_repeat_word_ngram_size >= 0,
             "no_repeat_word_ngram_size", "must be an int >= 0")
        need(isinstance(self.no_repeat_content_words, bool), "no_repeat_content_words", "must be True or False")
        need(isinstance(self.copy_subwords, bool), "copy_subwords", "must be True or False")
        need(isinstance(self.copy_numbers, bool), "copy_numbers", "must be True or False")
        for name in WORD_VOCAB_OPTIONS:
            need(not getattr(self, name) or self.word_vocab is not None, name,
                 "needs word_vocab=genbert.words.WordVocab.from_tokenizer(tokenizer) (TextGenerator passes it)")
        need(self.early_stopping in (True, False, "never"), "early_stopping", "must be True, False or 'never'")
        need(not (self.do_sample and self.num_beams > 1), "num_beams", "beam sampling is not supported; use do_sample with num_beams=1")
        n = self.max_new_tokens
        need(self.steps is None or (isinstance(self.steps, int) and 1 <= self.steps <= n),
             "steps", "must be an int in [1, max_new_tokens]")
        need(self.order is None or self.order in DIFFUSION_ORDERS, "order", f"must be one of {DIFFUSION_ORDERS}")
        need(self.remask is None or isinstance(self.remask, bool), "remask", "must be True or False")
        need(self.collapse_repeats is None or isinstance(self.collapse_repeats, bool), "collapse_repeats",
             "must be True or False")
        need(self.block_length is None or (isinstance(self.block_length, int) and self.block_length >= 1
                                           and n % self.block_length == 0),
             "block_length", "must be an int >= 1 that divides max_new_tokens")
        blocks = n // (self.block_length or n)
        need(self.steps is None or self.steps % blocks == 0, "steps",
             f"must be divisible by the number of blocks (max_new_tokens / block_length = {blocks})")


# ---------------------------------------------------------------------- decoding states
class EncoderOnlyState:
    """Causal / prefix (UniLM) generation on the encoder itself.

    Source rows are right-padded; generated token t of a row sits at position `length + t`
    (segment 1 for prefix models) and sees the real source tokens and the earlier targets.
    With mask-predict decoding each step feeds the last real token and a [MASK] at the next
    position, and reads the prediction at the [MASK].
    """

    def __init__(self, model, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Optional[Tensor],
                 max_new_tokens: int, use_cache: bool, mask_predict: bool, expand: int):
        c = model.config
        self.model, self.mask_predict, self.use_cache = model, mask_predict, use_cache
        self.mask_id = c.mask_token_id
        self.target_type = 1 if c.mask_scheme == "prefix" else 0
        b, s = input_ids.shape
        tt = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        self.lengths = attention_mask.sum(1).repeat_interleave(expand)
        self.no_padding = bool(attention_mask.all())
        if use_cache:
            cache = model.new_cache(b, s + max_new_tokens + 1)
            mask = model.build_mask(input_ids, attention_mask, tt)
            pos = torch.arange(s, device=input_ids.device).expand(b, s)
            hidden = model.step(input_ids, pos, tt, mask, cache)
            cache.key_mask[:, :s] = attention_mask.bool()
            cache.length = cache.shared_prefix = s
            if expand > 1:
                cache.repeat_interleave(expand)
                hidden = hidden.repeat_interleave(expand, 0)
            self.cache = cache
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            self.first_hidden = hidden[rows, self.lengths - 1]  # the source's last real token
        else:
            self.ids = input_ids.repeat_interleave(expand, 0)
            self.am = attention_mask.repeat_interleave(expand, 0)
            self.tt = tt.repeat_interleave(expand, 0)
        # a copy head reads the source's final hidden states (the prefix mask keeps them independent
        # of the targets); a row's beams share its source, and beam reordering stays within a source
        self.memory = None
        if model.copy_head is not None:
            if not use_cache:
                pos = torch.arange(s, device=input_ids.device).expand(b, s)
                hidden = model.step(input_ids, pos, tt, model.build_mask(input_ids, attention_mask, tt), None)
                hidden = hidden.repeat_interleave(expand, 0)
            ids, am, tt = (x.repeat_interleave(expand, 0) for x in (input_ids, attention_mask, tt))
            self.memory = model.copy_memory(hidden, ids, tt, am)

    def logits(self, generated: Tensor) -> Tensor:
        """generated: (N, t) tokens so far -> next-token logits (N, vocab)."""
        n, t = generated.shape
        dev = generated.device
        if self.mask_predict:
            new = torch.full((n, 1), self.mask_id, dtype=torch.long, device=dev)
            new = torch.cat([generated[:, -1:], new], 1) if t else new
        else:
            new = generated[:, -1:]
        if not self.use_cache:
            tokens = torch.cat([generated, new[:, -1:]], 1) if self.mask_predict else generated
            k = tokens.shape[1]
            ids = torch.cat([self.ids, tokens], 1)
            am = torch.cat([self.am, torch.ones_like(tokens)], 1)
            tt = torch.cat([self.tt, torch.full_like(tokens, self.target_type)], 1)
            src_pos = torch.arange(self.ids.shape[1], device=dev).expand(n, -1)
            pos = torch.cat([src_pos, self.lengths[:, None] + torch.arange(k, device=dev)], 1)
            mask = self.model.build_mask(ids, am, tt)
            if k == 0:
                hidden = self.model.step(ids, pos, tt, mask, None)
                return self.model.next_scores(hidden[torch.arange(n, device=dev), self.lengths - 1], self.memory)
            return self.model.next_scores(self.model.step(ids, pos, tt, mask, None)[:, -1], self.memory)
        if t == 0 and not self.mask_predict:
            return self.model.next_scores(self.first_hidden, self.memory)
        cache, k = self.cache, new.shape[1]
        first = t - 1 if t else 0  # index (within the targets) of the first token fed now
        pos = self.lengths[:, None] + first + torch.arange(k, device=dev)
        start = cache.length
        cache.key_mask[:, start:start + k] = True
        mask = None if k == 1 and self.no_padding else masks.cached_step(cache.key_mask, start, k)
        hidden = self.model.step(new, pos, torch.full_like(new, self.target_type), mask, cache)
        # a fed real token stays in the cache; a [MASK] is overwritten by the next step's token
        cache.length += 1 if (t or not self.mask_predict) else 0
        return self.model.next_scores(hidden[:, -1], self.memory)

    def reorder(self, index: Tensor) -> None:
        if self.use_cache:
            self.cache.reorder(index)
            self.first_hidden = self.first_hidden[index]


class Seq2SeqState:
    """Encoder-decoder generation: encode once, decode from decoder_start_token_id; the
    cross-attention keys/values are computed once and shared by every step."""

    def __init__(self, model, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Optional[Tensor],
                 max_new_tokens: int, use_cache: bool, start_id: int, expand: int):
        self.model, self.use_cache, self.start_id = model, use_cache, start_id
        memory = model.encode(input_ids, attention_mask, token_type_ids)
        if use_cache:
            # one copy of the cross-attention keys/values per source, shared by its beams
            self.cross_mask = None if bool(attention_mask.all()) else attention_mask.bool()[:, None, :]
            self.cache = model.new_cache(input_ids.shape[0] * expand, max_new_tokens + 1)
            self.cache.cross = model.decoder.precompute_cross(memory)
        else:
            self.cross_mask = attention_mask.bool().repeat_interleave(expand, 0)[:, None, :]
            self.memory = memory.repeat_interleave(expand, 0)

    def logits(self, generated: Tensor) -> Tensor:
        n, t = generated.shape
        dev = generated.device
        if self.use_cache:
            tok = generated[:, -1:] if t else torch.full((n, 1), self.start_id, dtype=torch.long, device=dev)
            pos = torch.full((n, 1), t, dtype=torch.long, device=dev)
            self_mask = None  # the decoder has no padding: every cached position is visible
            hidden = self.model.decoder_step(tok, pos, self_mask, self.cross_mask, self.cache)
            self.cache.length += 1
            return self.model.logits(hidden[:, -1])
        start = torch.full((n, 1), self.start_id, dtype=torch.long, device=dev)
        dec = torch.cat([start, generated], 1)
        hidden = self.model.decoder(dec, masks.CAUSAL, self.memory, self.cross_mask)
        return self.model.logits(hidden[:, -1])

    def reorder(self, index: Tensor) -> None:
        if self.use_cache:
            self.cache.reorder(index)


class DiffusionState:
    """Masked diffusion on an encoder-only bidirectional model. The target block (`length`
    tokens, segment 1) sits at the positions right after each row's real source, as the
    `DiffusionCollator` lays it out; source padding is never attended to, so a row of a
    right-padded batch gets what it gets alone.

    With `config.diffusion_mask == "source-block"` the source never sees the block: with
    use_cache it runs once through `model.step` into a KV cache, and each pass feeds only the
    block, which attends to the cached source and to itself; its keys and values are written at
    `cache.length` without advancing it (the next pass overwrites them). use_cache=False
    recomputes source and block every pass under `masks.source_block`. With "bidirectional" (the
    ablation: the source sees the block) there is no exact cache, so every pass recomputes
    everything and use_cache has no effect.
    """

    def __init__(self, model, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Optional[Tensor],
                 length: int, use_cache: bool):
        self.model = model
        b, s = input_ids.shape
        dev = input_ids.device
        source_block = model.config.diffusion_mask == "source-block"
        self.use_cache, self.source_len = use_cache and source_block, s
        tt = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        self.block_pos = attention_mask.sum(1)[:, None] + torch.arange(length, device=dev)
        self.block_tt = torch.ones(b, length, dtype=torch.long, device=dev)
        src_pos = torch.arange(s, device=dev).expand(b, s)
        real = torch.cat([attention_mask.bool(), torch.ones_like(self.block_tt, dtype=torch.bool)], 1)
        self.ids, self.tt, self.am = input_ids, tt, attention_mask
        self.memory = None  # a copy head's memory of the source, when it does not change between passes
        if self.use_cache:
            self.cache = model.new_cache(b, s + length)
            hidden = model.step(input_ids, src_pos, tt, masks.source_block(input_ids, attention_mask), self.cache)
            self.cache.length = s
            self.mask = real[:, None, :].expand(b, length, s + length)  # the block sees source and block
            if model.copy_head is not None:
                self.memory = model.copy_memory(hidden, input_ids, tt, attention_mask)
        else:
            self.pos = torch.cat([src_pos, self.block_pos], 1)
            segment = torch.cat([torch.zeros_like(input_ids), self.block_tt], 1)
            fn = masks.source_block if source_block else masks.bidirectional
            self.mask = fn(segment, real, segment)  # the mask depends on the layout only

    def logits(self, block: Tensor, start: int, end: int) -> Tensor:
        """One denoising pass. block: (B, length) current tokens, [MASK] where still masked.
        Returns the scores (B, end - start, vocab) at block positions [start, end): the logits,
        or with a copy head the log-probabilities of its mixture (the copy attention reads the
        source's final hidden states, recomputed with the source when use_cache is off)."""
        memory = self.memory
        if self.use_cache:
            hidden = self.model.step(block, self.block_pos, self.block_tt, self.mask, self.cache)
        else:
            ids = torch.cat([self.ids, block], 1)
            tt = torch.cat([self.tt, self.block_tt], 1)
            full = self.model.step(ids, self.pos, tt, self.mask, None)
            hidden = full[:, self.source_len:]
            if self.model.copy_head is not None:
                memory = self.model.copy_memory(full[:, :self.source_len], self.ids, self.tt, self.am)
        hidden = hidden[:, start:end]
        if memory is None:
            return self.model.logits(hidden)
        return self.model.copy_head.log_probs(self.model.logits(hidden), hidden, *memory)


def commit_schedule(length: int, steps: int) -> list[int]:
    """How many masked tokens each of `steps` passes commits so that all `length` are committed
    by the last: as even as possible, the larger counts first (LLaDA)."""
    if not isinstance(steps, int) or not 1 <= steps <= length:
        raise ValueError(f"steps={steps!r} must be an int in [1, {length}]")
    base, extra = divmod(length, steps)
    return [base + (i < extra) for i in range(steps)]


def remask_schedule(length: int, steps: int) -> list[int]:
    """Mask-Predict (Ghazvininejad et al. 2019): how many tokens are masked again after each of
    `steps` passes, length * (1 - s / steps) rounded down for the 1-based step s; none after the last."""
    if not isinstance(steps, int) or not 1 <= steps <= length:
        raise ValueError(f"steps={steps!r} must be an int in [1, {length}]")
    return [length * (steps - s) // steps for s in range(1, steps + 1)]


# ---------------------------------------------------------------------- constraints
def apply_constraints(logp: Tensor, generated: Tensor, cfg: GenerationConfig, eos: int) -> Tensor:
    """logp: (N, vocab) log-probabilities; generated: (N, t). Constrains `logp` in place (the
    decoding loops pass a fresh tensor: no copy of N x vocab per step) and returns it."""
    t = generated.shape[1]
    if cfg.repetition_penalty != 1.0 and t:
        seen = logp.gather(1, generated)
        logp.scatter_(1, generated, torch.where(seen < 0, seen * cfg.repetition_penalty,
                                                seen / cfg.repetition_penalty))
    n = cfg.no_repeat_ngram_size
    if n and t >= n - 1 and t > 0:
        if n == 1:
            banned_rows, banned_toks = torch.arange(len(generated)).repeat_interleave(t), generated.reshape(-1)
        else:
            windows = generated.unfold(1, n, 1) if t >= n else generated.new_empty(len(generated), 0, n)
            hit = (windows[:, :, :-1] == generated[:, None, t - n + 1:]).all(-1)  # (N, windows)
            banned_rows, w = hit.nonzero(as_tuple=True)
            banned_toks = windows[banned_rows, w, -1]
        logp.index_put_((banned_rows.to(logp.device), banned_toks), torch.tensor(float("-inf")))
    if (cfg.no_repeat_word_ngram_size or cfg.no_repeat_content_words) and t:
        rows, toks = [], []
        vocab = logp.shape[-1]
        for r, seq in enumerate(generated.tolist()):
            banned = cfg.word_vocab.banned(seq, cfg.no_repeat_word_ngram_size, cfg.no_repeat_content_words)
            banned = sorted(i for i in banned if i < vocab)
            rows += [r] * len(banned)
            toks += banned
        if rows:
            index = (torch.tensor(rows, device=logp.device), torch.tensor(toks, device=logp.device))
            logp.index_put_(index, torch.tensor(float("-inf")))
    if t < cfg.min_new_tokens:
        logp[:, eos] = float("-inf")
    return logp


def sample_from(scores: Tensor, cfg: GenerationConfig) -> Tensor:
    """Temperature, top-k, top-p (nucleus), then one draw per row with cfg.generator."""
    if cfg.temperature != 1.0:
        scores = scores / cfg.temperature
    if cfg.top_k:
        kth = torch.topk(scores, min(cfg.top_k, scores.shape[-1]), dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if cfg.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=False, dim=-1)
        cum = sorted_scores.softmax(-1).cumsum(-1)
        remove = cum <= 1 - cfg.top_p
        remove[:, -1] = False  # always keep the most likely token
        scores = scores.masked_fill(remove.scatter(1, order, remove), float("-inf"))
    probs = scores.softmax(-1)
    return torch.multinomial(probs, 1, generator=cfg.generator).squeeze(1)


def copy_bonus(input_ids: Tensor, attention_mask: Tensor, bias: float, config, vocab: int,
               rows_per_source: int = 1) -> Optional[Tensor]:
    """(B * rows_per_source, vocab): `bias` at each token of the row's real source, 0 elsewhere and
    at the special tokens ([PAD], [CLS], [SEP], [MASK], EOS); None when bias is 0. Rows repeat per
    beam (row b's beams are rows b*k .. b*k+k-1)."""
    if not bias:
        return None
    ids = input_ids.masked_fill(attention_mask == 0, config.pad_token_id).clamp(max=vocab - 1)
    bonus = torch.zeros(input_ids.shape[0], vocab, device=input_ids.device).scatter_(1, ids, float(bias))
    bonus[:, [t for t in config.special_token_ids if t < vocab]] = 0.0
    return bonus.repeat_interleave(rows_per_source, 0)


def _sources(input_ids: Tensor, attention_mask: Tensor) -> list[list[int]]:
    """Each row's real tokens (padding dropped), for the copy rules' per-source tables."""
    return [[i for i, m in zip(ids, keep) if m] for ids, keep in zip(input_ids.tolist(), attention_mask.tolist())]


def _vocab_mask(ids, size: int) -> Tensor:
    """(size,) bool, True at `ids` (those below `size`: a vocabulary may outgrow the logits)."""
    mask = torch.zeros(size, dtype=torch.bool)
    mask[[i for i in ids if i < size]] = True
    return mask


class CopySubwords:
    """`copy_subwords` for a decoding batch: each source's table of word pieces
    (`genbert.words.SourceWords`), shared by its `rows_per_source` beams."""

    def __init__(self, vocab: WordVocab, input_ids: Tensor, attention_mask: Tensor, rows_per_source: int,
                 size: int):
        self.vocab, self.per = vocab, rows_per_source
        self.tables = [SourceWords(vocab, src) for src in _sources(input_ids, attention_mask)]
        self.cont = _vocab_mask(vocab.continuation_ids(), size).to(input_ids.device)

    def apply(self, scores: Tensor, generated: Tensor) -> None:
        """scores: (N, vocab), in place; generated: (N, t). Every continuation piece gets -inf
        but those that spell on along a source word; a row whose open word must go on (two or
        more pieces, not yet a whole source word) keeps only those."""
        rows: list[int] = []
        toks: list[int] = []
        unfinished = []
        for r, seq in enumerate(generated.tolist()):
            allowed, may_end = self.tables[r // self.per].allowed(self.vocab.split(seq)[1])
            rows += [r] * len(allowed)
            toks += allowed
            if not may_end and allowed:
                unfinished.append(r)
        index = (torch.tensor(rows, dtype=torch.long, device=scores.device),
                 torch.tensor(toks, dtype=torch.long, device=scores.device))
        kept = scores[index]
        scores.masked_fill_(self.cont, float("-inf"))
        if unfinished:
            scores[unfinished] = float("-inf")
        scores.index_put_(index, kept)

    def apply_block(self, scores: Tensor, x: Tensor, start: int, mask_id: int) -> None:
        """Diffusion: scores (B, n, vocab) of the block x[:, start:start + n], in place; x: (B, L)
        with `mask_id` where still masked. A continuation piece is allowed at a masked position
        only where its left neighbour is written and the word so far spells on along a source
        word (so words grow left to right, one piece a pass); a word that must go on takes only
        those pieces; and before a written word start only pieces that finish a source word."""
        rows = x.tolist()
        fill = float("-inf")
        for b, row in enumerate(rows):
            table = self.tables[b // self.per]
            for j in range(start, start + scores.shape[1]):
                if row[j] != mask_id:
                    continue
                left = self._word_before(row, j, mask_id)
                allowed, may_end = table.allowed(left) if left else ([], True)
                right = row[j + 1] if j + 1 < len(row) else mask_id
                if right != mask_id and self.vocab.kind(right) != CONT_KIND:
                    allowed = [p for p in allowed if left + (p,) in table.whole]
                s = scores[b, j - start]
                kept = s[allowed] if allowed else None
                if not may_end and allowed:
                    s.fill_(fill)
                else:
                    s.masked_fill_(self.cont, fill)
                if allowed:
                    s[allowed] = kept

    def _word_before(self, row: list[int], j: int, mask_id: int) -> Optional[tuple[int, ...]]:
        """The written word that ends just before position j (its pieces), or None: a masked or
        separating left neighbour, or a word whose start is still masked."""
        word = self.vocab.split(row[:j])[1]
        return word if word and self.vocab.kind(word[0]) == START_KIND and mask_id not in word else None


class CopyNumbers:
    """`copy_numbers` for a decoding batch: each source's numbers (`genbert.words.SourceNumbers`),
    shared by its `rows_per_source` beams."""

    def __init__(self, vocab: WordVocab, input_ids: Tensor, attention_mask: Tensor, rows_per_source: int,
                 size: int):
        self.vocab, self.per = vocab, rows_per_source
        self.tables = [SourceNumbers(vocab, src) for src in _sources(input_ids, attention_mask)]
        digit = _vocab_mask([i for i, d in enumerate(vocab.digit_tokens()) if d], size)
        # a digit piece that no source number starts with may not start a number: per source, one
        # row per beam, built once (each step starts from a copy)
        new = torch.stack([digit & ~_vocab_mask(table.starts, size) for table in self.tables])
        self.new = new.repeat_interleave(rows_per_source, 0).to(input_ids.device)
        # after a whole number: what would extend it (a continuation piece, a joiner) or stand beside it
        # as a second number ("£5 800,000")
        extend = digit | _vocab_mask(vocab.continuation_ids(), size) \
            | _vocab_mask([i for i in range(len(vocab)) if vocab.joiner(i)], size)
        self.extend = extend.to(input_ids.device)

    def apply(self, scores: Tensor, generated: Tensor) -> None:
        """scores: (N, vocab), in place; generated: (N, t). A number may only start as a source
        number starts, go on as one goes on, and end where one ends; no number follows another."""
        ban = self.new.clone()
        rows, toks = [], []
        for r, seq in enumerate(generated.tolist()):
            number = self.vocab.numbers(seq)[1]
            if not number:
                continue
            table = self.tables[r // self.per]
            allowed, may_end = table.allowed(number)
            if not may_end and bool(torch.isfinite(scores[r, allowed]).any()):  # (else a row of -inf)
                ban[r] = True
            elif number in table.whole:
                ban[r] |= self.extend
            rows += [r] * len(allowed)
            toks += allowed
        if rows:
            ban[torch.tensor(rows, device=ban.device), torch.tensor(toks, device=ban.device)] = False
        scores.masked_fill_(ban, float("-inf"))


# ---------------------------------------------------------------------- strategies
CHUNK = 256  # vocabulary chunk of the two-level top-k / argmax below


def _chunk_maxima(x: Tensor) -> Tensor:
    """(N, V) -> (N, ceil(V / CHUNK)): each chunk's maximum (`amax` is vectorised on CPU, while
    `topk` and `argmax` over a 30k vocabulary are not: 1 ms and 0.2 ms per step measured)."""
    v = x.shape[1]
    whole = v - v % CHUNK
    m = x[:, :whole].unflatten(1, (-1, CHUNK)).amax(-1)
    return torch.cat([m, x[:, whole:].amax(-1, keepdim=True)], 1) if v % CHUNK else m


def _chunk_positions(x: Tensor, chunks: Tensor) -> tuple[Tensor, Tensor]:
    """The vocabulary ids of the given chunks (N, c) and x there, -inf past the vocabulary."""
    n, v = x.shape
    ids = (chunks[:, :, None] * CHUNK + torch.arange(CHUNK, device=x.device)).view(n, -1)
    return ids, x.gather(1, ids.clamp(max=v - 1)).masked_fill_(ids >= v, float("-inf"))


def top_k_rows(x: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """torch.topk(x, k, dim=-1) for (N, V) scores: the k best of a row lie in the k chunks with
    the largest maxima (a value outside them has k larger ones), so only those are searched.
    Same values; among equal values the indices may differ from torch.topk's."""
    if k * CHUNK >= x.shape[1] or x.device.type != "cpu":
        return torch.topk(x, k, dim=-1)
    ids, vals = _chunk_positions(x, _chunk_maxima(x).topk(k, dim=-1).indices)
    top, at = vals.topk(k, dim=-1)
    return top, ids.gather(1, at).clamp_(max=x.shape[1] - 1)  # a -inf past the vocabulary


def argmax_rows(x: Tensor) -> Tensor:
    """x.argmax(-1) for (N, V): the first chunk holding the maximum, then its first position in
    that chunk (the first occurrence, as argmax)."""
    if x.device.type != "cpu" or x.shape[1] <= CHUNK:
        return x.argmax(-1)
    ids, vals = _chunk_positions(x, _chunk_maxima(x).argmax(-1, keepdim=True))
    return ids.gather(1, vals.argmax(-1, keepdim=True)).squeeze(1)


def greedy_or_sample(state, batch: int, cfg: GenerationConfig, eos: int, pad: int, device,
                     bonus: Optional[Tensor] = None, copying: Sequence[Any] = ()) -> Tensor:
    """bonus: (batch, vocab) added to every step's constrained scores (see `copy_bonus`);
    copying: `CopySubwords`, `CopyNumbers` (what `copy_subwords`, `copy_numbers` ask for)."""
    generated = torch.empty(batch, 0, dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    for _ in range(cfg.max_new_tokens):
        logp = F.log_softmax(state.logits(generated).float(), dim=-1)
        scores = apply_constraints(logp, generated, cfg, eos)
        if bonus is not None:
            scores.add_(bonus)
        for rule in copying:
            rule.apply(scores, generated)
        tok = sample_from(scores, cfg) if cfg.do_sample else argmax_rows(scores)
        tok = tok.masked_fill(done, pad)
        generated = torch.cat([generated, tok[:, None]], 1)
        done |= tok == eos
        if bool(done.all()):
            break
    return generated


def beam_search(state, batch: int, cfg: GenerationConfig, eos: int, pad: int, device,
                bonus: Optional[Tensor] = None, copying: Sequence[Any] = ()) -> Tensor:
    """Vectorised beam search with transformers' semantics (top 2K candidates, length penalty
    on finished hypotheses, `early_stopping` True / False heuristic / "never"). bonus:
    (batch * num_beams, vocab) added to every step's constrained scores (see `copy_bonus`);
    copying: as for `greedy_or_sample`."""
    k, lp, steps = cfg.num_beams, cfg.length_penalty, cfg.max_new_tokens
    seqs = torch.full((batch, k, steps), pad, dtype=torch.long, device=device)
    scores = torch.full((batch, k), NEG, device=device)
    scores[:, 0] = 0.0
    fin_seqs = seqs.clone()
    fin_scores = torch.full((batch, k), NEG, device=device)
    fin_done = torch.zeros(batch, k, dtype=torch.bool, device=device)
    fin_len = torch.zeros(batch, k, dtype=torch.long, device=device)
    improvable = torch.ones(batch, 1, dtype=torch.bool, device=device)
    offsets = torch.arange(batch, device=device)[:, None] * k
    top_rank = torch.arange(2 * k, device=device) < k
    for t in range(steps):
        flat = seqs[:, :, :t].reshape(batch * k, t)
        logp = F.log_softmax(state.logits(flat).float(), dim=-1)
        logp = apply_constraints(logp, flat, cfg, eos)
        if bonus is not None:
            logp.add_(bonus)
        for rule in copying:
            rule.apply(logp, flat)
        # the best 2K continuations of a source are among the best 2K of each of its beams: a
        # top-k over each beam's vocabulary, then over the K x 2K survivors (not K x vocab)
        width = min(2 * k, logp.shape[-1])
        per_beam, per_tok = top_k_rows(logp, width)  # (batch * K, width)
        acc = (per_beam.view(batch, k, width) + scores[:, :, None]).view(batch, k * width)
        top_scores, pick = torch.topk(acc, 2 * k, dim=-1)
        beam, tok = pick // width, per_tok.view(batch, k * width).gather(1, pick)
        cand = seqs.gather(1, beam[:, :, None].expand(-1, -1, steps)).clone()
        cand[:, :, t] = tok
        hits = (tok == eos) | (t + 1 == steps)
        # running beams: the best K candidates that did not finish
        run_scores = top_scores + hits.float() * NEG
        keep = torch.topk(run_scores, k, dim=-1).indices
        seqs = cand.gather(1, keep[:, :, None].expand(-1, -1, steps))
        scores = run_scores.gather(1, keep)
        origin = (beam.gather(1, keep) + offsets).view(-1)
        # finished hypotheses: merge newly finished top-K candidates, keep the best K
        new_fin = top_scores / float(t + 1) ** lp
        full = fin_done.all(-1, keepdim=True) & (cfg.early_stopping is True)
        new_fin = new_fin + full.float() * NEG + (~improvable).float() * NEG
        just = hits & top_rank[None]
        new_fin = new_fin + (~just).float() * NEG
        m_scores = torch.cat([fin_scores, new_fin], 1)
        best = torch.topk(m_scores, k, dim=-1).indices
        fin_seqs = torch.cat([fin_seqs, cand], 1).gather(1, best[:, :, None].expand(-1, -1, steps))
        fin_scores = m_scores.gather(1, best)
        fin_done = torch.cat([fin_done, just], 1).gather(1, best)
        fin_len = torch.cat([fin_len, torch.full_like(pick, t + 1)], 1).gather(1, best)
        if t + 1 == steps:
            break
        state.reorder(origin)
        length = (steps if cfg.early_stopping == "never" and lp > 0 else t + 1)
        best_running = scores[:, :1] / float(length) ** lp
        worst_fin = torch.where(fin_done, fin_scores.min(-1, keepdim=True).values, torch.full_like(fin_scores, NEG))
        improvable = improvable & (best_running > worst_fin).any(-1, keepdim=True)
        if not bool(improvable.any()) or (bool(fin_done.all()) and cfg.early_stopping is True):
            break
    return fin_seqs[:, 0, :int(fin_len[:, 0].max())]


def diffusion_sample(state: DiffusionState, batch: int, cfg: GenerationConfig, eos: int, pad: int,
                     mask_id: int, device, bonus: Optional[Tensor] = None,
                     subwords: Optional[CopySubwords] = None) -> Tensor:
    """Masked-diffusion decoding: `cfg.steps` passes over max_new_tokens [MASK]s (split evenly
    over the semi-autoregressive blocks of `cfg.block_length`, left to right, LLaDA). Each pass
    predicts every position of the current block (argmax, or `sample_from` when do_sample);
    without remask it commits `commit_schedule` of the still-masked ones, ranked by `cfg.order`:
    "confidence" (the chosen token's log-probability, LLaDA's low-confidence remasking),
    "content-first" (confidence, but a position predicted as EOS only after every other one: a
    model trained on EOS-padded blocks is surest of the padding, and would otherwise spend its
    first passes fixing the length), "random" (MDLM's ancestral order, from cfg.generator) or
    "left-to-right". With remask (Mask-Predict)
    every masked token takes its prediction and then `remask_schedule` of the block's tokens,
    committed or not, ranked lowest by the same order (a committed token keeps the
    log-probability it was predicted with), are masked again. [MASK] is never predicted.
    With no_repeat_content_words (and cfg.word_vocab), a content-word token already in the block
    is not predicted again, and a pass assigns its masked positions one at a time in rank order,
    each content token banned for the positions after it (`_distinct_predictions`, greedy only),
    so parallel commits cannot write one twice.
    With collapse_repeats, a token repeated in a row is kept once (the rest move left).
    bonus: (B, vocab) added to every position's scores at every pass (see `copy_bonus`);
    subwords: `copy_subwords`' tables (`CopySubwords.apply_block`).
    Returns (B, n): up to each row's first EOS, pad after it."""
    length = cfg.max_new_tokens
    block = cfg.block_length or length
    steps = (cfg.steps or length) // (length // block)
    order, remask = cfg.order or "confidence", bool(cfg.remask)
    x = torch.full((batch, length), mask_id, dtype=torch.long, device=device)
    score = torch.zeros(batch, length, device=device)  # log-probability each token was predicted with
    positions = torch.arange(length, device=device)
    schedule = remask_schedule(block, steps) if remask else commit_schedule(block, steps)
    content = None
    if cfg.no_repeat_content_words:
        flags = cfg.word_vocab.content_tokens()
        content = torch.zeros(state.model.config.vocab_size, dtype=torch.bool, device=device)
        content[:len(flags)] = torch.tensor(flags[:len(content)], dtype=torch.bool, device=device)
    for start in range(0, length, block):
        end = start + block
        for n in schedule:
            scores = F.log_softmax(state.logits(x, start, end).float(), dim=-1)
            scores[..., mask_id] = float("-inf")
            if bonus is not None:
                scores.add_(bonus[:, None, :])
            if cfg.min_new_tokens > start:
                scores[:, :cfg.min_new_tokens - start, eos] = float("-inf")
            if subwords is not None:
                subwords.apply_block(scores, x, start, mask_id)
            if content is not None:  # content words already in the block are not predicted again
                present = torch.zeros(batch, scores.shape[-1], dtype=torch.bool, device=device)
                present.scatter_(1, x, True)
                scores = scores.masked_fill((present & content[:scores.shape[-1]])[:, None, :], float("-inf"))
            masked = x[:, start:end] == mask_id
            noise = torch.rand(batch, block, generator=cfg.generator, device=device) if order == "random" else None

            def rank_of(tok: Tensor, tok_score: Tensor) -> Tensor:  # higher = committed sooner
                if order == "confidence":
                    return tok_score
                if order == "content-first":  # log-probabilities are <= 0: -1e4 puts EOS below any content
                    return tok_score - 1e4 * (tok == eos)
                return noise if order == "random" else -positions[start:end].float().expand(batch, block)
            if content is None:
                flat = scores.view(batch * block, -1)
                tok = (sample_from(flat, cfg) if cfg.do_sample else flat.argmax(-1)).view(batch, block)
                tok_score = scores.gather(-1, tok[..., None]).squeeze(-1)
            else:
                tok, tok_score = _distinct_predictions(scores, masked, content, rank_of)
            new_x = torch.where(masked, tok, x[:, start:end])
            new_score = torch.where(masked, tok_score, score[:, start:end])
            rank = rank_of(new_x, new_score)
            if remask:  # mask again the n lowest-ranked tokens of the block, committed or not
                again = torch.zeros_like(masked).scatter(1, torch.topk(rank, n, largest=False).indices, True)
                new_x = new_x.masked_fill(again, mask_id)
            else:  # commit the n highest-ranked masked tokens; the others stay masked
                commit = torch.zeros_like(masked).scatter(
                    1, torch.topk(rank.masked_fill(~masked, float("-inf")), n).indices, True)
                new_x = torch.where(commit, new_x, x[:, start:end])
            x[:, start:end], score[:, start:end] = new_x, new_score
            if cfg.on_step is not None:
                cfg.on_step(x.clone())
    if cfg.collapse_repeats:
        x = _collapse_repeats(x, eos)
    is_eos = x == eos
    first = torch.where(is_eos.any(1), is_eos.int().argmax(1), length)  # (B,) index of the first EOS
    x = x.masked_fill(positions[None] > first[:, None], pad)
    return x[:, :int((first + 1).clamp(max=length).max())]


def _distinct_predictions(scores: Tensor, masked: Tensor, content: Tensor,
                           rank_of: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, Tensor]:
    """Greedy predictions (B, L) and their log-probabilities for the masked positions of
    scores (B, L, V), assigned one position at a time in rank order; a content token
    (content: (V,) bool) once assigned is banned at the positions assigned after it, so that
    one pass never writes it twice. Only each position's L + 1 best tokens can be needed."""
    b, n, _ = scores.shape
    cand_score, cand = scores.topk(min(n + 1, scores.shape[-1]), dim=-1)  # (B, L, K)
    tok, tok_score = cand[..., 0].clone(), cand_score[..., 0].clone()
    todo, rows = masked.clone(), torch.arange(b, device=scores.device)
    for _ in range(int(masked.sum(1).max())):
        best = cand_score.argmax(-1, keepdim=True)
        t, ts = cand.gather(-1, best).squeeze(-1), cand_score.gather(-1, best).squeeze(-1)
        p = rank_of(t, ts).masked_fill(~todo, float("-inf")).argmax(1)  # (B,) the next position
        active = todo[rows, p]
        chosen = t[rows, p]
        tok[rows, p] = torch.where(active, chosen, tok[rows, p])
        tok_score[rows, p] = torch.where(active, ts[rows, p], tok_score[rows, p])
        todo[rows, p] = False
        ban = active & content[chosen]
        cand_score = cand_score.masked_fill(ban[:, None, None] & (cand == chosen[:, None, None]), float("-inf"))
    return tok, tok_score


def _collapse_repeats(x: Tensor, eos: int) -> Tensor:
    """(B, n) tokens with each run of one repeated token kept once, shifted left, EOS-filled."""
    keep = torch.ones_like(x, dtype=torch.bool)
    keep[:, 1:] = x[:, 1:] != x[:, :-1]
    key = torch.where(keep, torch.arange(x.shape[1], device=x.device), x.shape[1])  # kept ones first, in order
    kept = x.gather(1, key.sort(dim=1, stable=True).indices)
    n_kept = keep.sum(1, keepdim=True)
    return kept.masked_fill(torch.arange(x.shape[1], device=x.device)[None] >= n_kept, eos)


def _check_decoding_arguments(model, cfg: GenerationConfig, diffusion: bool) -> None:
    """Diffusion-only arguments for other decodings, and unsupported ones for diffusion, raise."""
    c = model.config
    if diffusion:
        unsupported = {"num_beams": cfg.num_beams != 1, "repetition_penalty": cfg.repetition_penalty != 1.0,
                       "no_repeat_ngram_size": cfg.no_repeat_ngram_size != 0,
                       "no_repeat_word_ngram_size": cfg.no_repeat_word_ngram_size != 0,
                       "mask_predict": cfg.mask_predict is not None,
                       "decoder_start_token_id": cfg.decoder_start_token_id is not None}
        for name, bad in unsupported.items():
            if bad:
                raise ValueError(f"{name}={getattr(cfg, name)!r}: not supported by diffusion decoding "
                                 "(an encoder-only bidirectional model)")
        if cfg.copy_numbers:
            raise ValueError("copy_numbers=True: not supported by diffusion decoding (a number's pieces are "
                             "committed in any order)")
        if cfg.copy_subwords and cfg.remask:
            raise ValueError("copy_subwords=True: not supported with remask=True (a re-masked piece would "
                             "leave the pieces after it without their word)")
        if cfg.no_repeat_content_words and cfg.do_sample:
            raise ValueError("no_repeat_content_words=True: diffusion decoding applies it to greedy predictions "
                             "only (do_sample=False)")
        return
    if c.decoding == "diffusion":
        raise ValueError(f"decoding='diffusion' needs an encoder-only model with mask_scheme 'bidirectional', "
                         f"got mask_scheme={c.mask_scheme!r}{' and a decoder' if model.decoder is not None else ''}")
    given = [name for name in DIFFUSION_ARGS if getattr(cfg, name) is not None]
    if given:
        kind = "an encoder-decoder" if model.decoder is not None else f"a {c.mask_scheme!r}-scheme"
        raise ValueError(f"{given[0]}={getattr(cfg, given[0])!r}: {', '.join(given)} apply to diffusion decoding "
                         f"only (encoder-only bidirectional models); this is {kind} model")


# ---------------------------------------------------------------------- entry point
@torch.inference_mode()
def generate(model, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
             token_type_ids: Optional[Tensor] = None, **kwargs) -> Tensor:
    """Generated tokens only (B, n), n <= max_new_tokens, pad after each row's EOS.

    Causal / prefix models and encoder-decoders write token by token (greedy, sampling, beam
    search). Encoder-only bidirectional models generate by masked diffusion, whatever their
    config.decoding says: a diffusion-trained model, or a plain MLM checkpoint ("BERT as it is",
    Samuel 2024: pass order="left-to-right", steps=max_new_tokens). They take steps, order,
    remask, block_length (see `diffusion_sample`), which every other model rejects."""
    names = {f.name for f in fields(GenerationConfig)}
    unknown = set(kwargs) - names
    if unknown:
        raise ValueError(f"unknown generation argument(s): {', '.join(sorted(unknown))}")
    cfg = GenerationConfig(**kwargs)
    cfg.validate()
    c = model.config
    eos = c.generation_eos_token_id if cfg.eos_token_id is None else cfg.eos_token_id
    pad = c.pad_token_id if cfg.pad_token_id is None else cfg.pad_token_id
    diffusion = model.decoder is None and c.mask_scheme == "bidirectional"
    _check_decoding_arguments(model, cfg, diffusion)
    model.check_input_ids(input_ids, values=True)  # generation syncs anyway: check the ids wherever they are
    device = model.device
    input_ids = input_ids.to(device)
    attention_mask = (torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(device)).long()
    if attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape {tuple(input_ids.shape)}")
    if bool((attention_mask.sum(1) == 0).any()):
        raise ValueError("input_ids has a row with no real token (attention_mask all 0)")
    if token_type_ids is not None:
        token_type_ids = token_type_ids.to(device)
    batch, k = input_ids.shape[0], cfg.num_beams
    bonus = copy_bonus(input_ids, attention_mask, cfg.copy_bias, c, c.vocab_size, k)  # diffusion: k == 1
    subwords = CopySubwords(cfg.word_vocab, input_ids, attention_mask, k, c.vocab_size) \
        if cfg.copy_subwords else None
    numbers = CopyNumbers(cfg.word_vocab, input_ids, attention_mask, k, c.vocab_size) if cfg.copy_numbers else None
    copying = [rule for rule in (subwords, numbers) if rule is not None]
    was_training = model.training
    model.eval()
    try:
        if diffusion:
            need = int(attention_mask.sum(1).max()) + cfg.max_new_tokens
            if need > c.max_position_embeddings:
                raise ValueError(f"source length + max_new_tokens = {need} exceeds max_position_embeddings="
                                 f"{c.max_position_embeddings}; shorten the source or max_new_tokens")
            state = DiffusionState(model, input_ids, attention_mask, token_type_ids, cfg.max_new_tokens,
                                   cfg.use_cache)
            if not state.use_cache:
                return diffusion_sample(state, batch, cfg, eos, pad, c.mask_token_id, device, bonus, subwords)
            # every cached pass feeds the same block: let MKL pack the weights for its rows
            with packing.packed_for(model, batch * cfg.max_new_tokens):
                return diffusion_sample(state, batch, cfg, eos, pad, c.mask_token_id, device, bonus, subwords)
        if model.decoder is not None:
            if cfg.max_new_tokens + 1 > c.max_position_embeddings:
                raise ValueError(f"max_new_tokens={cfg.max_new_tokens} exceeds the decoder's "
                                 f"max_position_embeddings={c.max_position_embeddings}")
            start = c.decoder_start_token_id if cfg.decoder_start_token_id is None else cfg.decoder_start_token_id
            state = Seq2SeqState(model, input_ids, attention_mask, token_type_ids, cfg.max_new_tokens,
                                 cfg.use_cache, start, k)
            fed = 1  # tokens each cached step feeds per row
        else:
            mp = cfg.mask_predict
            if mp is None:
                mp = c.decoding == "mask-predict"
            need = int(attention_mask.sum(1).max()) + cfg.max_new_tokens + int(mp)
            if need > c.max_position_embeddings:
                raise ValueError(f"source length + max_new_tokens = {need} exceeds max_position_embeddings="
                                 f"{c.max_position_embeddings}; shorten the source or max_new_tokens")
            state = EncoderOnlyState(model, input_ids, attention_mask, token_type_ids, cfg.max_new_tokens,
                                     cfg.use_cache, bool(mp), k)
            fed = 2 if mp else 1  # mask-predict feeds the last token and a [MASK]
        strategy = greedy_or_sample if k == 1 else beam_search
        if not cfg.use_cache:
            return strategy(state, batch, cfg, eos, pad, device, bonus, copying)
        # every cached step feeds the same number of rows: let MKL pack the generating weights
        stack = model.decoder if model.decoder is not None else model
        with packing.packed_for(stack, batch * k * fed):
            return strategy(state, batch, cfg, eos, pad, device, bonus, copying)
    finally:
        model.train(was_training)
