"""One multi-head attention module for self- and cross-attention, and BERT's feed-forward block.

Both are post-LayerNorm residual blocks, as in BERT: `norm(x + dropout(sublayer(x)))`.
"""
from __future__ import annotations

from functools import partial
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import flex, masks
from .cache import KVCache
from .config import GenBertConfig
from .packing import Linear

ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": partial(F.gelu, approximate="tanh"),
    "gelu_pytorch_tanh": partial(F.gelu, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}


# a decoding step's queries per head (beams of a source) at or below which CPU cross-attention over
# precomputed keys/values runs as two batched products: SDPA's CPU kernel is built for long query
# blocks and took 1.3-1.6x as long here (docs/benchmarks.md). Only for `project_memory`'s layout: on
# strided cache slices the batched products copy the keys and ran 5x slower than SDPA
SMALL_QUERY = 16


def attend_few(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor]) -> Tensor:
    """softmax(q k^T / sqrt(d) + mask) v for a few queries. q: (B, H, T, D); k, v: (B, H, S, D);
    mask: bool (B, T, S) or None. Returns (B, H, T, D)."""
    s = torch.matmul(q, k.transpose(-1, -2)).mul_(q.shape[-1] ** -0.5)
    if mask is not None:
        s.masked_fill_(~mask[:, None], float("-inf"))
    return torch.matmul(s.softmax(-1), v)


class Attention(nn.Module):
    """Multi-head attention. Self-attention when `memory` is None, else cross-attention over it."""

    def __init__(self, config: GenBertConfig):
        super().__init__()
        h = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.query = Linear(h, h)
        self.key = Linear(h, h)
        self.value = Linear(h, h)
        self.out = Linear(h, h)
        self.norm = nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.attn_dropout = config.attention_probs_dropout_prob

    def _heads(self, x: Tensor) -> Tensor:
        b, t, h = x.shape
        return x.view(b, t, self.num_heads, h // self.num_heads).transpose(1, 2)

    def project_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of `memory` (B, S, hidden), each (B, heads, S, head_dim)."""
        return self._heads(self.key(memory)), self._heads(self.value(memory))

    def project_memory(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """`project_kv` laid out for keys/values that every decoding step re-reads: contiguous;
        on CPU the keys (B, heads, S, head_dim) are stored as their contiguous transpose, so that
        `attend_few`'s q @ k^T reads them in order (GPU kernels want head_dim contiguous)."""
        k, v = self.project_kv(memory)
        if memory.device.type == "cpu":
            return k.transpose(-1, -2).contiguous().transpose(-1, -2), v.contiguous()
        return k.contiguous(), v.contiguous()

    def forward(self, x: Tensor, mask: Optional[Tensor], memory: Optional[Tensor] = None,
                kv: Optional[tuple[Tensor, Tensor]] = None,
                cache: Optional[KVCache] = None, layer: int = 0) -> Tensor:
        """x: (B, T, hidden); mask: bool (B, T, S), True = may attend, S = key length
        (cached keys included); None = every key may be attended to; `masks.CAUSAL` = the plain
        causal mask (S = T), run through SDPA's causal flag; a FlexAttention BlockMask (S = T,
        see genbert/flex.py). `kv` gives precomputed keys/values (cross-attention while decoding);
        with `cache`, new self-attention keys/values are written at `cache.length` and all cached
        ones are attended to. Returns (B, T, hidden)."""
        q = self._heads(self.query(x))
        if kv is not None:
            k, v = kv
        else:
            k, v = self.project_kv(x if memory is None else memory)
            if cache is not None:
                k, v = cache.update(layer, k, v)
        b, h, t, d = q.shape
        group = b // k.shape[0]
        if group > 1:
            # beams of one source share its cross-attention keys/values (and mask, (B_src, 1, S)):
            # attend with the beams as extra query rows instead of copying the keys per beam
            q = q.view(k.shape[0], group, h, t, d).transpose(1, 2).reshape(k.shape[0], h, group * t, d)
        causal = mask is masks.CAUSAL
        block = mask is not None and not causal and not isinstance(mask, Tensor) and flex.is_block_mask(mask)
        if (causal or block) and (group > 1 or k.shape[2] != t):
            raise ValueError(f"{'masks.CAUSAL' if causal else 'a block mask'} needs as many keys as queries "
                             "(no cache, no shared keys)")
        if block:
            if self.training and self.attn_dropout > 0:
                raise ValueError("FlexAttention has no attention dropout: train with the boolean masks")
            a = flex.attend(q, k, v, mask)
        elif kv is not None and q.device.type == "cpu" and q.shape[2] <= SMALL_QUERY:
            a = attend_few(q, k, v, mask)  # keys/values from `project_memory`: laid out for it
        else:
            a = F.scaled_dot_product_attention(
                q, k, v, attn_mask=None if mask is None or causal else mask[:, None],
                dropout_p=self.attn_dropout if self.training else 0.0, is_causal=causal,
            )
        if group > 1:
            a = a.view(k.shape[0], h, group, t, d).transpose(1, 2).reshape(b, h, t, d)
        a = a.transpose(1, 2).reshape(x.shape)
        return self.norm(x + self.dropout(self.out(a)))


class FeedForward(nn.Module):
    def __init__(self, config: GenBertConfig):
        super().__init__()
        if config.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {sorted(ACTIVATIONS)}, got {config.hidden_act!r}")
        self.act = ACTIVATIONS[config.hidden_act]
        self.up = Linear(config.hidden_size, config.intermediate_size)
        self.down = Linear(config.intermediate_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, hidden) -> (B, T, hidden)."""
        return self.norm(x + self.dropout(self.down(self.act(self.up(x)))))
