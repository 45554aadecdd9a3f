"""Output heads: the MLM/LM head tied to the word embeddings, and the NSP head on pooled [CLS]."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .attention import ACTIVATIONS
from .config import GenBertConfig
from .packing import Linear, linear


class LMHead(nn.Module):
    """dense -> activation -> LayerNorm -> tied projection onto the vocabulary (+ bias)."""
    pack = None  # set by packing.packed_for while decoding

    def __init__(self, config: GenBertConfig, word_embeddings: nn.Embedding):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)
        self.act = ACTIVATIONS[config.hidden_act]
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.word_embeddings = [word_embeddings]  # a list, so the tied weight is not registered twice

    @property
    def weight(self) -> Tensor:
        return self.word_embeddings[0].weight

    def forward(self, hidden: Tensor) -> Tensor:
        """(..., hidden) -> (..., vocab) logits."""
        return linear(self.norm(self.act(self.dense(hidden))), self.weight, self.bias, self.pack)


class NSPHead(nn.Module):
    """BERT's pooler (dense + tanh on [CLS]) and the 2-way next-sentence classifier."""

    def __init__(self, config: GenBertConfig):
        super().__init__()
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size)
        self.classifier = nn.Linear(config.hidden_size, 2)

    def forward(self, hidden: Tensor) -> Tensor:
        """(B, T, hidden) -> (B, 2): 0 = B follows A, 1 = random."""
        return self.classifier(torch.tanh(self.pooler(hidden[:, 0])))


class CopyHead(nn.Module):
    """Pointer-generator copying (See et al. 2017) for the prefix scheme and masked diffusion, whose
    source's hidden states do not depend on the target: a predicted token is drawn
    from the vocabulary head's distribution with probability g, else copied from the source by
    an attention of the predicting position over the source tokens' final hidden states:
    p(w) = g * softmax(logits)(w) + (1 - g) * sum of the attention at the source positions holding w.
    """

    def __init__(self, config: GenBertConfig):
        super().__init__()
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.gate = nn.Linear(config.hidden_size, 1)

    def memory(self, hidden: Tensor, input_ids: Tensor, allowed: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """What the copy attention reads, from the source's hidden states (B, S, hidden), its ids
        (B, S) and which positions may be copied (B, S) bool: (keys (B, S, hidden), ids, allowed)."""
        return self.key(hidden), input_ids, allowed

    def log_probs(self, logits: Tensor, hidden: Tensor, keys: Tensor, ids: Tensor, allowed: Tensor) -> Tensor:
        """log p (B, T, vocab) of the mixture at T predicting positions of each of B rows, from
        their vocabulary logits (B, T, vocab) and hidden states (B, T, hidden) and the row's
        memory (keys (B, S, hidden), ids (B, S), allowed (B, S)). A row with nothing to copy
        gives g * softmax(logits), not renormalised."""
        scale = hidden.shape[-1] ** -0.5
        att = torch.einsum("bth,bsh->bts", self.query(hidden).float(), keys.float()) * scale
        allowed = allowed[:, None, :]
        att = att.masked_fill(~allowed, torch.finfo(att.dtype).min).softmax(-1) * allowed
        copied = torch.zeros(logits.shape, dtype=att.dtype, device=att.device)
        copied.scatter_add_(2, ids[:, None, :].expand(-1, att.shape[1], -1), att)
        g = torch.sigmoid(self.gate(hidden).float())
        p = g * torch.softmax(logits.float(), -1) + (1 - g) * copied
        return torch.log(p.clamp_min(1e-30))
