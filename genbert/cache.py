"""Preallocated key/value cache for decoding."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


class KVCache:
    """Self-attention keys/values of every layer, preallocated: (layers, B, heads, max_length, head_dim).

    `length` is the number of filled positions; `update` writes new keys/values at `length`
    (the caller advances `length` once all layers have run). `key_mask` (B, max_length) marks
    which filled positions are real tokens. `cross` holds cross-attention keys/values, computed
    once from the encoder output.
    """

    def __init__(self, num_layers: int, batch_size: int, num_heads: int, max_length: int,
                 head_dim: int, dtype: torch.dtype, device: torch.device | str):
        shape = (num_layers, batch_size, num_heads, max_length, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.key_mask = torch.zeros(batch_size, max_length, dtype=torch.bool, device=device)
        self.length = 0
        self.max_length = max_length
        self.cross: Optional[list[tuple[Tensor, Tensor]]] = None

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write k, v (B, heads, n, head_dim) at `length`; return all keys/values up to length + n."""
        end = self.length + k.shape[2]
        if end > self.max_length:
            raise ValueError(f"KV cache overflow: {end} positions > max_length {self.max_length}")
        self.k[layer, :, :, self.length:end] = k
        self.v[layer, :, :, self.length:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def repeat_interleave(self, n: int) -> None:
        """Each row becomes n consecutive rows (one per beam), e.g. after encoding the source once."""
        self.k = self.k.repeat_interleave(n, 1)
        self.v = self.v.repeat_interleave(n, 1)
        self.key_mask = self.key_mask.repeat_interleave(n, 0)

    def reorder(self, index: Tensor) -> None:
        """Beam search: row i of the cache becomes row index[i], in place."""
        n = self.length
        self.k[:, :, :, :n] = self.k[:, index, :, :n]
        self.v[:, :, :, :n] = self.v[:, index, :, :n]
        self.key_mask[:, :n] = self.key_mask[index, :n]
        # cross-attention keys/values are identical across the beams of one source: nothing to move
