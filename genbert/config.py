"""One typed config for every genbert model, with `transformers.BertConfig` field names."""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any, Optional

# ---- the one vocabulary of genbert: every CLI choice list comes from here
# attention-mask schemes of the encoder (genbert/masks.py)
MASK_SCHEMES = ("bidirectional", "causal", "prefix")
# how a model generates, the recipes' --scheme: a mask scheme, or an encoder plus a decoder
SCHEMES = ("prefix", "causal", "encoder-decoder", "bidirectional")
# the seq2seq training objectives of each scheme (the first is the scheme's default)
OBJECTIVES: dict[str, tuple[str, ...]] = {
    "prefix": ("pseudo-mask", "next-token", "masked-target"),
    "causal": ("next-token",),
    "encoder-decoder": ("next-token",),
    "bidirectional": ("diffusion",),
}
SEQ2SEQ_OBJECTIVES = ("next-token", "masked-target", "pseudo-mask", "diffusion")
# pretraining objectives (scripts/pretrain.py)
PRETRAINING_OBJECTIVES = ("mlm", "mlm+nsp", "infilling", "unilm")
ALL_OBJECTIVES = SEQ2SEQ_OBJECTIVES + PRETRAINING_OBJECTIVES
# how a model decodes: next-token (read the next token off the last one), mask-predict (UniLM:
# a [MASK] at the next position is predicted), diffusion (a block of [MASK]s unmasked in steps)
DECODINGS = ("next-token", "mask-predict", "diffusion")
DECODING_OF_OBJECTIVE = {"next-token": "next-token", "masked-target": "mask-predict",
                         "pseudo-mask": "mask-predict", "diffusion": "diffusion"}
# the attention of a diffusion (bidirectional-scheme) model: "source-block" = the source sees the
# source, the target block sees the source and the whole block (the source's keys and values are
# computed once per generate call); "bidirectional" = everything sees everything (an ablation)
DIFFUSION_MASKS = ("source-block", "bidirectional")
# masked diffusion: which still-masked tokens a pass commits first (genbert.generation.diffusion_sample);
# "content-first": confidence, but end tokens only once no content token is left to commit
DIFFUSION_ORDERS = ("confidence", "content-first", "random", "left-to-right")
# what a seq2seq model is scored on: ROUGE (summarization) or BLEU/chrF (translation)
TASKS = ("summarization", "translation")
# BERT2Rnd, BERT2BERT, BERTShare (Rothe et al. 2020)
DECODER_INITS = ("random", "bert", "shared")


def mask_scheme_of(scheme: str) -> str:
    """The encoder's attention-mask scheme for a --scheme (an encoder-decoder's encoder is bidirectional)."""
    return "bidirectional" if scheme == "encoder-decoder" else scheme


@dataclass
class DecoderConfig:
    """The optional BART-style decoder. Sizes not given here equal the encoder's.

    `share_encoder_weights` is BERTShare: decoder self-attention and feed-forward weights
    are the encoder layers' own tensors; only cross-attention is separate.
    """

    num_hidden_layers: int = 2
    init: str = "random"  # how it was initialised: random | bert | shared (recorded, informative)
    share_encoder_weights: bool = False
    share_word_embeddings: bool = True  # decoder input embeddings (and tied LM head) = the encoder's

    def __post_init__(self) -> None:
        if self.init not in DECODER_INITS:
            raise ValueError(f"decoder init must be one of {DECODER_INITS}, got {self.init!r}")
        if self.num_hidden_layers < 1:
            raise ValueError(f"decoder num_hidden_layers must be >= 1, got {self.num_hidden_layers}")


@dataclass
class GenBertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int = 0
    # None = BERT's WordPiece ids (101/102/103) when the vocabulary holds them, else 1/2/3
    cls_token_id: Optional[int] = None
    sep_token_id: Optional[int] = None  # ends a generated sequence unless eos_token_id says otherwise
    mask_token_id: Optional[int] = None
    eos_token_id: Optional[int] = None
    decoder_start_token_id: Optional[int] = None
    mask_scheme: str = "bidirectional"
    decoder: Optional[DecoderConfig] = None
    objective: Optional[str] = None  # the seq2seq objective it was trained with (ALL_OBJECTIVES), if any
    decoding: str = "next-token"  # how generate() writes (DECODINGS)
    diffusion_mask: str = "source-block"  # decoding="diffusion" only (DIFFUSION_MASKS)
    # a pointer-generator copy head (heads.CopyHead): each next token is a mixture of the vocabulary
    # head's distribution and an attention over the source's tokens; prefix scheme only
    copy_attention: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # free-form metadata (task, ...)

    def __post_init__(self) -> None:
        defaults = (101, 102, 103) if self.vocab_size > 103 else (1, 2, 3)
        for name, default in zip(("cls_token_id", "sep_token_id", "mask_token_id"), defaults):
            if getattr(self, name) is None:
                setattr(self, name, default)
        if isinstance(self.decoder, dict):
            self.decoder = DecoderConfig(**self.decoder)
        if self.mask_scheme not in MASK_SCHEMES:
            raise ValueError(f"mask_scheme must be one of {MASK_SCHEMES}, got {self.mask_scheme!r}")
        if self.decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {DECODINGS}, got {self.decoding!r}")
        if self.diffusion_mask not in DIFFUSION_MASKS:
            raise ValueError(f"diffusion_mask must be one of {DIFFUSION_MASKS}, got {self.diffusion_mask!r}")
        if self.copy_attention and (self.mask_scheme not in ("prefix", "bidirectional") or self.decoder is not None):
            raise ValueError("copy_attention needs an encoder-only model with mask_scheme 'prefix' or 'bidirectional' "
                             "(diffusion; its source is the token-type-0 segment)")
        if self.objective is not None and self.objective not in ALL_OBJECTIVES:
            raise ValueError(f"objective must be one of {ALL_OBJECTIVES} or None, got {self.objective!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads ({self.num_attention_heads})"
            )
        for name in ("pad_token_id", "cls_token_id", "sep_token_id", "mask_token_id"):
            v = getattr(self, name)
            if v is None or not 0 <= v < self.vocab_size:
                raise ValueError(f"{name}={v} must be a token id in [0, vocab_size={self.vocab_size})")
        if self.decoder is not None:
            if self.decoder_start_token_id is None:
                self.decoder_start_token_id = self.cls_token_id
            if not 0 <= self.decoder_start_token_id < self.vocab_size:
                raise ValueError(f"decoder_start_token_id={self.decoder_start_token_id} is outside the vocabulary")
            if self.decoder.share_encoder_weights and self.decoder.num_hidden_layers != self.num_hidden_layers:
                raise ValueError("a decoder sharing the encoder's weights needs as many layers as the encoder")

    @property
    def is_encoder_decoder(self) -> bool:
        return self.decoder is not None

    @property
    def generation_eos_token_id(self) -> int:
        return self.sep_token_id if self.eos_token_id is None else self.eos_token_id

    @property
    def special_token_ids(self) -> tuple[int, ...]:
        """[PAD], [CLS], [SEP], [MASK] and the id generation ends at: the tokens never copied."""
        return tuple(dict.fromkeys((self.pad_token_id, self.cls_token_id, self.sep_token_id, self.mask_token_id,
                                    self.generation_eos_token_id)))

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model_type"] = "genbert"
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GenBertConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        legacy = (kw.get("extra") or {}).get("objective")  # genbert 0.1 kept it in extra
        if "decoding" not in kw and legacy is not None:
            legacy = {"causal": "next-token", "encoder-decoder": "next-token"}.get(legacy, legacy)
            kw["decoding"] = DECODING_OF_OBJECTIVE.get(legacy, "next-token")
            kw.setdefault("objective", legacy if legacy in ALL_OBJECTIVES else None)
        return cls(**kw)

    def to_json_file(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> "GenBertConfig":
        with open(path, encoding="utf-8") as f:
            try:
                d = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(d)
