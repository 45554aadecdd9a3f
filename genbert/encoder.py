"""BERT's embeddings and encoder stack. Blocks take a ready boolean mask and never know the scheme."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .attention import Attention, FeedForward
from .cache import KVCache
from .config import GenBertConfig


class Embeddings(nn.Module):
    """word + position + segment embeddings, LayerNorm, dropout."""

    def __init__(self, config: GenBertConfig, word: Optional[nn.Embedding] = None):
        super().__init__()
        self.word = word if word is not None else nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: Tensor, token_type_ids: Optional[Tensor] = None,
                position_ids: Optional[Tensor] = None) -> Tensor:
        """input_ids, token_type_ids, position_ids: (B, T) -> (B, T, hidden).
        Default positions are 0..T-1 and default segments 0."""
        t = input_ids.shape[1]
        if position_ids is None:
            position_ids = torch.arange(t, device=input_ids.device)[None]
        x = self.word(input_ids) + self.position(position_ids)
        if token_type_ids is None:
            x = x + self.token_type.weight[0]
        else:
            x = x + self.token_type(token_type_ids)
        return self.dropout(self.norm(x))


class EncoderLayer(nn.Module):
    def __init__(self, config: GenBertConfig):
        super().__init__()
        self.attention = Attention(config)
        self.ffn = FeedForward(config)

    def forward(self, x: Tensor, mask: Optional[Tensor], cache: Optional[KVCache] = None, layer: int = 0) -> Tensor:
        """x: (B, T, hidden); mask: bool (B, T, S), True = may attend."""
        return self.ffn(self.attention(x, mask, cache=cache, layer=layer))


class Encoder(nn.Module):
    def __init__(self, config: GenBertConfig):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_hidden_layers))
        self.gradient_checkpointing = False

    def forward(self, x: Tensor, mask: Optional[Tensor], cache: Optional[KVCache] = None) -> Tensor:
        """x: (B, T, hidden) embeddings; mask: bool (B, T, S). Returns (B, T, hidden)."""
        for i, layer in enumerate(self.layers):
            if self.gradient_checkpointing and self.training and cache is None:
                x = checkpoint(layer, x, mask, use_reentrant=False)
            else:
                x = layer(x, mask, cache, i)
        return x
