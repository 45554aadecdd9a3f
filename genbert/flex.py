"""FlexAttention block masks for genbert's mask layouts (an opt-in attention path for GPUs).

A boolean (B, T, T) mask keeps SDPA off its fastest GPU kernels; FlexAttention instead takes a
`mask_mod(b, h, q, kv) -> bool` and a `BlockMask` built from it, and skips the blocks that are
wholly masked (the upper triangle of a causal layout, padding, a target block the source never
sees). Each function here gives the mask_mod of one layout of genbert/masks.py, the same mask
including its rule that a query row that could see nothing sees itself (tests compare them
with the boolean masks, on CPU). `block_mask` builds the BlockMask; `attend` runs FlexAttention
(compiled on CUDA, eager elsewhere: eager is slow and for tests only).

Use: `model.attention_backend = "flex"` makes `GenBert.build_mask` return block masks for the
causal, prefix, bidirectional and source-block schemes (not while training with attention dropout,
which FlexAttention lacks); `pseudo_mask_mod` serves the s2s-ft layout where a caller builds it.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import Tensor

MaskMod = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


def available() -> bool:
    """Whether this torch has torch.nn.attention.flex_attention."""
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


def is_block_mask(mask: Any) -> bool:
    if not available():
        return False
    from torch.nn.attention.flex_attention import BlockMask
    return isinstance(mask, BlockMask)


def _real(attention_mask: Optional[Tensor], b: int, t: int, device) -> Tensor:
    if attention_mask is None:
        return torch.ones(b, t, dtype=torch.bool, device=device)
    return attention_mask.bool()


def _with_self_fallback(allowed: MaskMod, empty: Tensor) -> MaskMod:
    """A query row `empty[b, q]` (one that `allowed` leaves without a key) sees itself."""
    def mask_mod(b, h, q, kv):
        return allowed(b, h, q, kv) | (empty[b, q] & (q == kv))
    return mask_mod


def bidirectional_mod(input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                      token_type_ids: Optional[Tensor] = None) -> MaskMod:
    """masks.bidirectional: every token sees every real token."""
    b, t = input_ids.shape[:2]
    real = _real(attention_mask, b, t, input_ids.device)
    empty = (~real.any(1, keepdim=True)).expand(b, t)
    return _with_self_fallback(lambda b_, h, q, kv: real[b_, kv], empty)


def causal_mod(input_ids: Tensor, attention_mask: Optional[Tensor] = None,
               token_type_ids: Optional[Tensor] = None) -> MaskMod:
    """masks.causal: a token sees itself and the real tokens before it."""
    b, t = input_ids.shape[:2]
    real = _real(attention_mask, b, t, input_ids.device)
    empty = real.long().cumsum(1) == 0
    return _with_self_fallback(lambda b_, h, q, kv: real[b_, kv] & (kv <= q), empty)


def prefix_mod(input_ids: Tensor, attention_mask: Optional[Tensor] = None,
               token_type_ids: Optional[Tensor] = None) -> MaskMod:
    """masks.prefix: sources see the real source; a target sees it and the real targets at or before it."""
    if token_type_ids is None:
        return bidirectional_mod(input_ids, attention_mask)
    b, t = input_ids.shape[:2]
    real = _real(attention_mask, b, t, input_ids.device)
    tgt = token_type_ids.bool()
    no_source = ~(real & ~tgt).any(1, keepdim=True)
    empty = no_source & (~tgt | ((real & tgt).long().cumsum(1) == 0))
    return _with_self_fallback(lambda b_, h, q, kv: real[b_, kv] & (~tgt[b_, kv] | (tgt[b_, q] & (kv <= q))), empty)


def source_block_mod(input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                     token_type_ids: Optional[Tensor] = None) -> MaskMod:
    """masks.source_block (masked diffusion): the source sees the source; the block sees both."""
    if token_type_ids is None:
        return bidirectional_mod(input_ids, attention_mask)
    b, t = input_ids.shape[:2]
    real = _real(attention_mask, b, t, input_ids.device)
    blk = token_type_ids.bool()
    no_source = ~(real & ~blk).any(1, keepdim=True)
    empty = no_source & (~blk | ~(real & blk).any(1, keepdim=True))
    return _with_self_fallback(lambda b_, h, q, kv: real[b_, kv] & (~blk[b_, kv] | blk[b_, q]), empty)


def pseudo_mask_mod(segments: Tensor, index: Tensor) -> MaskMod:
    """masks.pseudo_mask (s2s-ft): segments 0 source, 1 real target, 2 pseudo mask, 3 padding."""
    def mask_mod(b, h, q, kv):
        qs, ks, qi, ki = segments[b, q], segments[b, kv], index[b, q], index[b, kv]
        return (((qs != 3) & (ks == 0)) | ((qs == 1) & (ks == 1) & (ki <= qi))
                | ((qs == 2) & (ks == 1) & (ki < qi)) | (((qs == 2) | (qs == 3)) & (q == kv)))
    return mask_mod


MODS: dict[str, Callable[..., MaskMod]] = {
    "bidirectional": bidirectional_mod, "causal": causal_mod, "prefix": prefix_mod, "source_block": source_block_mod,
}


def block_mask(mask_mod: MaskMod, batch: int, length: int, device, block_size: int = 128):
    """The BlockMask of `mask_mod` for (batch, any head, length queries, length keys)."""
    from torch.nn.attention.flex_attention import create_block_mask
    return create_block_mask(mask_mod, batch, None, length, length, device=device, BLOCK_SIZE=block_size)


def dense(mask_mod: MaskMod, batch: int, length: int, device=None) -> Tensor:
    """The boolean (B, T, T) mask `mask_mod` stands for (for tests and pictures)."""
    from torch.nn.attention.flex_attention import create_mask
    return create_mask(mask_mod, batch, 1, length, length, device=device)[:, 0]


_COMPILED: dict[str, Callable] = {}


def attend(q: Tensor, k: Tensor, v: Tensor, mask) -> Tensor:
    """FlexAttention of q, k, v (B, heads, T, head_dim) under a BlockMask; compiled on CUDA."""
    import warnings

    from torch.nn.attention.flex_attention import flex_attention
    if q.device.type == "cuda":
        if "cuda" not in _COMPILED:
            _COMPILED["cuda"] = torch.compile(flex_attention, dynamic=False)
        return _COMPILED["cuda"](q, k, v, block_mask=mask)
    with warnings.catch_warnings():  # eager FlexAttention warns that it is unfused: it is, here (tests)
        warnings.simplefilter("ignore")
        return flex_attention(q, k, v, block_mask=mask)
