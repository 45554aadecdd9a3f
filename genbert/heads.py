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
