"""Preallocated key/value cache for decoding."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


class KVCache:
    """Self-attention keys/values of every layer, preallocated, batch first:
    (B, layers, heads, max_length, head_dim), so that reordering beams moves whole rows.

    `length` is the number of filled positions; `update` writes new keys/values at `length`
    (the caller advances `length` once all layers have run). `key_mask` (B, max_length) marks
    which filled positions are real tokens. `cross` holds cross-attention keys/values, computed
    once from the encoder output. The first `shared_prefix` positions (a prefix model's source)
    are identical across the beams of one source and are never reordered.
    """

    def __init__(self, num_layers: int, batch_size: int, num_heads: int, max_length: int,
                 head_dim: int, dtype: torch.dtype, device: torch.device | str):
        shape = (batch_size, num_layers, num_heads, max_length, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self._spare: Optional[tuple[Tensor, Tensor]] = None
        self.key_mask = torch.zeros(batch_size, max_length, dtype=torch.bool, device=device)
        self.length = 0
        self.max_length = max_length
        self.shared_prefix = 0
        self.cross: Optional[list[tuple[Tensor, Tensor]]] = None

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write k, v (B, heads, n, head_dim) at `length`; return all keys/values up to length + n."""
        end = self.length + k.shape[2]
        if end > self.max_length:
            raise ValueError(f"KV cache overflow: {end} positions > max_length {self.max_length}")
        self.k[:, layer, :, self.length:end] = k
        self.v[:, layer, :, self.length:end] = v
        return self.k[:, layer, :, :end], self.v[:, layer, :, :end]

    def repeat_interleave(self, n: int) -> None:
        """Each row becomes n consecutive rows (one per beam), e.g. after encoding the source once."""
        self.k = self.k.repeat_interleave(n, 0)
        self.v = self.v.repeat_interleave(n, 0)
        self.key_mask = self.key_mask.repeat_interleave(n, 0)
        self._spare = None

    def reorder(self, index: Tensor) -> None:
        """Beam search: row i of the cache becomes row index[i]."""
        p, n = self.shared_prefix, self.length
        if p == 0:  # the filled positions into a spare buffer, then swap: one pass over memory
            if self._spare is None:
                self._spare = (torch.empty_like(self.k), torch.empty_like(self.v))
            sk, sv = self._spare
            torch.index_select(self.k[:, :, :, :n], 0, index, out=sk[:, :, :, :n])
            torch.index_select(self.v[:, :, :, :n], 0, index, out=sv[:, :, :, :n])
            self._spare, self.k, self.v = (self.k, self.v), sk, sv
        else:  # only the generated positions differ between beams
            self.k[:, :, :, p:n] = self.k[index, :, :, p:n]
            self.v[:, :, :, p:n] = self.v[index, :, :, p:n]
        self.key_mask[:, p:n] = self.key_mask[index, p:n]
        # cross-attention keys/values are shared by the beams of one source: nothing to move
