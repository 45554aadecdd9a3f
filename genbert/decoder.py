"""BART-style decoder composed with the BERT encoder: causal self-attention, cross-attention, FFN."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .attention import Attention, FeedForward
from .cache import KVCache
from .config import GenBertConfig
from .encoder import Embeddings, Encoder
from .heads import LMHead


class DecoderLayer(nn.Module):
    def __init__(self, config: GenBertConfig, self_attention: Optional[Attention] = None,
                 ffn: Optional[FeedForward] = None):
        super().__init__()
        # BERTShare passes the encoder layer's own modules: the same tensors serve both stacks
        self.self_attention = self_attention if self_attention is not None else Attention(config)
        self.cross_attention = Attention(config)
        self.ffn = ffn if ffn is not None else FeedForward(config)

    def forward(self, x: Tensor, self_mask: Optional[Tensor], memory: Optional[Tensor],
                cross_mask: Optional[Tensor],
                cache: Optional[KVCache] = None, layer: int = 0) -> Tensor:
        """x: (B, T, hidden); self_mask: bool (B, T, T_cached); memory: encoder output (B, S, hidden),
        or None when `cache.cross` holds its keys/values; cross_mask: bool (B, T, S)."""
        x = self.self_attention(x, self_mask, cache=cache, layer=layer)
        kv = cache.cross[layer] if cache is not None and cache.cross is not None else None
        x = self.cross_attention(x, cross_mask, memory=memory, kv=kv)
        return self.ffn(x)


class Decoder(nn.Module):
    """Decoder stack with its own position/segment embeddings and LM head.

    `word_embeddings` shares the encoder's word embeddings (and so the tied LM head's weights);
    `encoder` (BERTShare) shares the encoder layers' self-attention and feed-forward weights.
    """

    def __init__(self, config: GenBertConfig, word_embeddings: Optional[nn.Embedding] = None,
                 encoder: Optional[Encoder] = None, embeddings: Optional[Embeddings] = None,
                 lm_head: Optional[LMHead] = None):
        super().__init__()
        assert config.decoder is not None
        self.embeddings = embeddings if embeddings is not None else Embeddings(config, word=word_embeddings)
        n = config.decoder.num_hidden_layers
        if encoder is not None:
            self.layers = nn.ModuleList(
                DecoderLayer(config, enc.attention, enc.ffn) for enc in encoder.layers)
        else:
            self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(n))
        self.lm_head = lm_head if lm_head is not None else LMHead(config, self.embeddings.word)
        self.gradient_checkpointing = False

    def precompute_cross(self, memory: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Cross-attention keys/values of the encoder output for every layer (computed once)."""
        return [layer.cross_attention.project_memory(memory) for layer in self.layers]

    def forward(self, input_ids: Tensor, self_mask: Optional[Tensor], memory: Optional[Tensor],
                cross_mask: Optional[Tensor],
                position_ids: Optional[Tensor] = None, cache: Optional[KVCache] = None) -> Tensor:
        """input_ids: (B, T) -> hidden states (B, T, hidden)."""
        x = self.embeddings(input_ids, position_ids=position_ids)
        for i, layer in enumerate(self.layers):
            if self.gradient_checkpointing and self.training and cache is None:
                x = checkpoint(layer, x, self_mask, memory, cross_mask, use_reentrant=False)
            else:
                x = layer(x, self_mask, memory, cross_mask, cache, i)
        return x
