"""MKL-packed weights for decoding on CPU.

Every decoding step multiplies the same weights by the same small number of rows (batch x
beams). MKL can lay a weight out once for a fixed row count ("pack" it); the products equal
F.linear's and are faster for small row counts (docs/benchmarks.md). Packs are kept per module,
rebuilt when the weight changes (its version counter moves) or the row count differs, and used
only inside `packed_for`.
"""
from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def available(weight: Tensor) -> bool:
    """Packing applies to float32 weights on CPU with an MKL build, outside autocast."""
    return (weight.device.type == "cpu" and weight.dtype == torch.float32 and torch.backends.mkl.is_available()
            and hasattr(torch.ops.mkl, "_mkl_linear") and not torch.is_autocast_enabled("cpu"))


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor], pack: Optional[tuple[int, Tensor]]) -> Tensor:
    """F.linear(x, weight, bias), through the packed weight when x has exactly its row count."""
    if pack is not None:
        rows = x.numel() // x.shape[-1]
        if rows == pack[0]:
            out = torch.ops.mkl._mkl_linear(x.reshape(rows, x.shape[-1]), pack[1], weight, bias, rows)
            return out.view(*x.shape[:-1], out.shape[-1])
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    """nn.Linear that uses a packed weight while `packed_for` is active (same state dict)."""
    pack: Optional[tuple[int, Tensor]] = None

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias, self.pack)


# module -> (key, pack). Kept outside the modules: a pack is an opaque MKL tensor that
# copy.deepcopy and pickling cannot handle.
_PACKS: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()


def _pack(module: nn.Module, rows: int) -> tuple[int, Tensor]:
    weight = module.weight
    try:
        key = (rows, weight.data_ptr(), weight._version)
    except RuntimeError:  # inference tensors carry no version counter: never reuse their packs
        key = None
    cached = _PACKS.get(module)
    if key is None or cached is None or cached[0] != key:
        cached = (key, torch.ops.mkl._mkl_reorder_linear_weight(weight.detach(), rows))
        _PACKS[module] = cached
    return rows, cached[1]


@contextmanager
def packed_for(root: nn.Module, rows: int) -> Iterator[None]:
    """Within the block, the packable modules under `root` (Linear, LMHead) multiply inputs of
    `rows` rows through packed weights; other inputs take the usual path."""
    targets = [m for m in root.modules() if hasattr(m, "pack") and available(m.weight)]
    for m in targets:
        m.pack = _pack(m, rows)
    try:
        yield
    finally:
        for m in targets:
            m.pack = None
