"""Attention-mask schemes: small pure functions, one convention everywhere.

Every function returns a boolean mask of shape (batch, q_len, k_len): True = may attend.
Inputs: `attention_mask` (B, T) with 1 for real tokens and 0 for padding (None = all real);
`token_type_ids` (B, T) with 0 = source and 1 = target (only prefix and source_block read it).
Query rows that could see nothing (e.g. an all-padding row) are allowed to see themselves
so that softmax never produces NaN; real tokens are never affected by that.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor


class _Causal:
    """The plain causal mask of a square attention (query i sees keys 0..i, no padding), not
    built: attention passes ``is_causal=True`` to SDPA, whose fastest kernels (flash attention on
    a GPU) take no boolean mask. Equal to ``causal(ids)`` (tests compare them); only for a
    query length equal to the key length (no KV cache)."""

    def __repr__(self) -> str:
        return "masks.CAUSAL"

    def __reduce__(self) -> str:  # copies and pickles stay the one sentinel
        return "CAUSAL"


CAUSAL = _Causal()


def materialize(mask, batch: int, length: int, device=None) -> Optional[Tensor]:
    """A mask as the boolean (B, T, T) tensor it stands for (``CAUSAL`` built; others as they are)."""
    if mask is CAUSAL:
        return _tril(length, device)[None].expand(batch, length, length)
    return mask


def _keys(attention_mask: Optional[Tensor], input_shape: tuple[int, int], device) -> Tensor:
    """(B, 1, T) True where the key is a real token."""
    if attention_mask is None:
        return torch.ones(input_shape[0], 1, input_shape[1], dtype=torch.bool, device=device)
    return attention_mask.bool()[:, None, :]


def _tril(t: int, device) -> Tensor:
    return torch.ones(t, t, dtype=torch.bool, device=device).tril()


def _no_empty_rows(mask: Tensor) -> Tensor:
    # applied unconditionally: testing `empty.any()` first would cost a device-to-host sync
    empty = ~mask.any(-1, keepdim=True)
    eye = torch.eye(mask.shape[-2], mask.shape[-1], dtype=torch.bool, device=mask.device)
    return mask | (empty & eye)


def bidirectional(input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                  token_type_ids: Optional[Tensor] = None) -> Tensor:
    """Every token sees every real token (BERT)."""
    b, t = input_ids.shape[:2]
    return _no_empty_rows(_keys(attention_mask, (b, t), input_ids.device).expand(b, t, t))


def causal(input_ids: Tensor, attention_mask: Optional[Tensor] = None,
           token_type_ids: Optional[Tensor] = None) -> Tensor:
    """A token sees itself and the real tokens before it (left-to-right LM)."""
    b, t = input_ids.shape[:2]
    return _no_empty_rows(_keys(attention_mask, (b, t), input_ids.device) & _tril(t, input_ids.device))


def anti_causal(input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                token_type_ids: Optional[Tensor] = None) -> Tensor:
    """A token sees itself and the real tokens after it (right-to-left LM, UniLM pretraining)."""
    b, t = input_ids.shape[:2]
    return _no_empty_rows(_keys(attention_mask, (b, t), input_ids.device) & _tril(t, input_ids.device).T)


def prefix(input_ids: Tensor, attention_mask: Optional[Tensor] = None,
           token_type_ids: Optional[Tensor] = None) -> Tensor:
    """UniLM seq2seq: source (segment 0) tokens see all source tokens; a target (segment 1)
    token sees all source tokens and the targets at or before it."""
    b, t = input_ids.shape[:2]
    keys = _keys(attention_mask, (b, t), input_ids.device)
    if token_type_ids is None:  # no target segment: plain bidirectional encoding of a source
        return _no_empty_rows(keys.expand(b, t, t))
    is_tgt = token_type_ids.bool()
    src_k = ~is_tgt[:, None, :]
    tgt_q = is_tgt[:, :, None]
    return _no_empty_rows(keys & (src_k | (tgt_q & _tril(t, input_ids.device))))


def source_block(input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                 token_type_ids: Optional[Tensor] = None) -> Tensor:
    """Masked diffusion over a target block: source (segment 0) tokens see the source; target
    block (segment 1) tokens see the source and the whole block, in both directions. The source
    never sees the block, so its keys and values are computed once per generate call."""
    b, t = input_ids.shape[:2]
    keys = _keys(attention_mask, (b, t), input_ids.device)
    if token_type_ids is None:  # no target block: plain bidirectional encoding of a source
        return _no_empty_rows(keys.expand(b, t, t))
    is_block = token_type_ids.bool()
    return _no_empty_rows(keys & (~is_block[:, None, :] | is_block[:, :, None]))


def pseudo_mask(segments: Tensor, index: Tensor) -> Tensor:
    """The s2s-ft (pseudo-mask) layout. ``segments`` (B, T) long: 0 = source, 1 = real target,
    2 = pseudo mask ([MASK] standing in for a target), 3 = padding. ``index`` (B, T) long: the
    target index i of a real target or pseudo mask (any value elsewhere).

    (B, T, T): every non-padding token sees the source; real target j sees the real targets
    <= j; pseudo mask i sees the real targets < i and itself; a padding query sees only itself
    (no NaN) and nothing sees padding.
    """
    qs, ks = segments[:, :, None], segments[:, None, :]
    qi, ki = index[:, :, None], index[:, None, :]
    t = segments.shape[1]
    eye = torch.eye(t, dtype=torch.bool, device=segments.device)[None]
    return (
        ((qs != 3) & (ks == 0))
        | ((qs == 1) & (ks == 1) & (ki <= qi))
        | ((qs == 2) & (ks == 1) & (ki < qi))
        | ((qs == 2) & eye)
        | ((qs == 3) & eye)
    )


def cached_step(key_mask: Tensor, start: int, k: int) -> Tensor:
    """Mask of a cached decoding step feeding ``k`` new tokens written at cache positions
    ``start .. start + k - 1``. ``key_mask`` (B, L >= start + k) bool: True where a cached
    position holds a real token. (B, k, start + k): new token i sees the real cached keys
    before ``start`` and the new tokens at or before it (where ``key_mask`` marks them real)."""
    b, dev = key_mask.shape[0], key_mask.device
    keys = key_mask[:, None, :start + k].expand(b, k, start + k)
    if k == 1:
        return keys
    allowed = torch.ones(k, start + k, dtype=torch.bool, device=dev)
    allowed[:, start:] = _tril(k, dev)
    return keys & allowed


def cross(attention_mask: Optional[Tensor], batch: int, q_len: int, k_len: int,
          device: Optional[torch.device] = None) -> Tensor:
    """Cross-attention (decoder queries over encoder keys): (B, q_len, k_len), query t sees
    every real source token. ``attention_mask`` (B, k_len) source padding (None = all real;
    then ``device`` places the mask)."""
    if attention_mask is None:
        return torch.ones(batch, q_len, k_len, dtype=torch.bool, device=device)
    return attention_mask.bool()[:, None, :].expand(batch, q_len, k_len)


SCHEMES: dict[str, Callable[..., Tensor]] = {
    "bidirectional": bidirectional,
    "causal": causal,
    "prefix": prefix,
    "anti_causal": anti_causal,
    "source_block": source_block,
}


def get_mask_fn(name: str) -> Callable[..., Tensor]:
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown mask scheme {name!r}; choose one of {sorted(SCHEMES)}") from None


def build_mask(scheme: str, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
               token_type_ids: Optional[Tensor] = None) -> Tensor:
    """The (B, T, T) boolean mask of the named scheme."""
    return get_mask_fn(scheme)(input_ids, attention_mask, token_type_ids)
