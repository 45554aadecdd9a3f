"""int8 weights for fast CPU decoding: ``model.quantize("int8")``.

Every linear layer (attention projections, feed-forward, cross-attention, the heads' dense layers)
and the vocabulary projection of each LM head get int8 weights, symmetric per output channel;
activations are quantized per call (dynamic quantization: one scale for the call's input, all
8 bits on CPUs with VNNI/AMX, 7 elsewhere) and the products accumulate in int32 and come back as
float32, through PyTorch's own fbgemm/x86 kernels
(``torch.ops.quantized.linear_dynamic``, the kernel behind ``torch.ao``'s dynamic quantization;
with AVX512-VNNI or AMX it runs the int8 instructions). Everything else is unchanged and float32:
embeddings, LayerNorm, attention itself (softmax over float32 queries and keys), the KV cache,
log-softmax and the search. This is the scheme CTranslate2's ``int8`` compute type uses.

Why dynamic rather than weight-only int8: on CPU the encoder pass (thousands of rows) is
compute-bound, and int8 x int8 products are several times faster than float32 there; each
decoding step (a few rows) is memory-bound, and int8 weights are 4x fewer bytes to read either
way. PyTorch's weight-only kernel (``torch._weight_int8pack_mm``) was slower than float32 on CPU
in both regimes when measured for this module (docs/benchmarks.md).

Because one activation scale serves a whole call, a row's int8 logits depend slightly on the
other rows of the call: int8 tokens are close to float32's but not guaranteed identical between
a batch and each source alone, or between cached and uncached decoding (float32 keeps both).

The quantized model is for inference (``generate``, forward without gradients); it cannot be
trained or saved (save the float32 model; quantize after loading). PyTorch 2.13 warns that its
quantized tensor types are deprecated; the kernels used here are still its CPU int8 path.
"""
from __future__ import annotations

import copy
import functools
import warnings
from typing import Optional

import torch
from torch import Tensor, nn

from .heads import LMHead

DTYPES = ("int8",)


def available() -> bool:
    """Whether this PyTorch build has the fbgemm/x86 dynamic int8 linear kernel."""
    engines = torch.backends.quantized.supported_engines
    return ("x86" in engines or "fbgemm" in engines) and hasattr(torch.ops.quantized, "linear_dynamic")


def _engine() -> str:
    engines = torch.backends.quantized.supported_engines
    return "x86" if "x86" in engines else "fbgemm"


@functools.lru_cache(maxsize=1)
def full_range() -> bool:
    """Whether activations may use all 8 bits: on CPUs with VNNI (or AMX) fbgemm's int8 products
    accumulate in 32 bits; elsewhere its 16-bit intermediate sums could saturate, so activations
    keep 7 bits (`reduce_range`, PyTorch's default for fbgemm)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


class Int8Linear(nn.Module):
    """``F.linear(x, weight, bias)`` with the weight in int8 (symmetric, one scale per output
    channel) and the input quantized per call. x: (..., in_features) float32 -> (..., out_features)
    float32. Holds no float copy of the weight."""

    def __init__(self, weight: Tensor, bias: Optional[Tensor]):
        super().__init__()
        w = weight.detach().float().cpu()
        self.out_features, self.in_features = w.shape
        scale = (w.abs().amax(1) / 127.0).clamp(min=1e-12).double()
        with warnings.catch_warnings():  # torch 2.13 marks quantized tensors deprecated (see module doc)
            warnings.simplefilter("ignore")
            q = torch.quantize_per_channel(w, scale, torch.zeros(w.shape[0], dtype=torch.long), 0, torch.qint8)
        b = None if bias is None else bias.detach().float().cpu().contiguous()
        self.reduce_range = not full_range()
        old = torch.backends.quantized.engine
        torch.backends.quantized.engine = _engine()
        try:
            self._packed = torch.ops.quantized.linear_prepack(q, b)
        finally:
            torch.backends.quantized.engine = old

    @classmethod
    def from_float(cls, linear: nn.Linear) -> "Int8Linear":
        return cls(linear.weight, linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        y = torch.ops.quantized.linear_dynamic(x.reshape(-1, shape[-1]).float().contiguous(), self._packed,
                                               self.reduce_range)
        return y.view(*shape[:-1], self.out_features)

    def weight_int8(self) -> tuple[Tensor, Tensor]:
        """The int8 weight (out, in) and its per-channel scales (out,), unpacked (for tests)."""
        w, _ = torch.ops.quantized.linear_unpack(self._packed)
        return w.int_repr(), w.q_per_channel_scales().float()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weight=int8 per channel"


class Int8LMHead(nn.Module):
    """An LM head (dense -> activation -> LayerNorm -> vocabulary projection) with int8 dense and
    vocabulary weights; the word embeddings it was tied to stay float32 for the lookups."""

    def __init__(self, head: LMHead, dense: nn.Module):
        super().__init__()
        self.dense = dense
        self.act = head.act
        self.norm = head.norm
        self.projection = Int8Linear(head.weight, head.bias)
        self.word_embeddings = head.word_embeddings  # the float table (not registered twice)

    @property
    def weight(self) -> Tensor:
        """The float32 word embeddings the head was tied to (its int8 copy is `projection`)."""
        return self.word_embeddings[0].weight

    def forward(self, hidden: Tensor) -> Tensor:
        """(..., hidden) -> (..., vocab) float32 logits."""
        return self.projection(self.norm(self.act(self.dense(hidden))))


def quantize(model: nn.Module, dtype: str = "int8") -> nn.Module:
    """A copy of `model` (a GenBert on CPU) whose linear layers and vocabulary projections have
    int8 weights; the original is untouched. Shared modules stay shared (BERTShare, tied heads)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if not available():
        raise RuntimeError("this PyTorch build has no fbgemm/x86 quantized engine (int8 linear kernels)")
    if getattr(model, "quantized", None):
        raise ValueError(f"the model is already quantized ({model.quantized})")
    if model.device.type != "cpu":
        raise ValueError(f"int8 decoding runs on CPU; the model is on {model.device} (move it with .cpu())")
    q = copy.deepcopy(model).eval()
    done: dict[int, nn.Module] = {}

    def convert(module: nn.Module) -> nn.Module:
        key = id(module)
        if key not in done:
            if isinstance(module, LMHead):
                done[key] = Int8LMHead(module, convert(module.dense))
            elif isinstance(module, nn.Linear):
                done[key] = Int8Linear.from_float(module)
            else:
                done[key] = module
                for name, child in list(module.named_children()):
                    setattr(module, name, convert(child))
        return done[key]

    convert(q)
    for p in q.parameters():
        p.requires_grad_(False)
    q.quantized = dtype
    return q
