"""GenBert: one BERT encoder core, a mask scheme chosen by name, and an optional decoder."""
from __future__ import annotations

import os
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import convert, flex, masks
from .cache import KVCache
from .config import GenBertConfig
from .decoder import Decoder
from .encoder import Embeddings, Encoder
from .heads import CopyHead, LMHead, NSPHead


@dataclass
class GenBertOutput:
    loss: Optional[Tensor] = None
    logits: Optional[Tensor] = None  # (B, T, vocab); None when compute_logits=False
    nsp_logits: Optional[Tensor] = None  # (B, 2), bidirectional scheme only
    hidden_states: Optional[Tensor] = None  # (B, T, hidden): encoder output, or decoder output
    encoder_hidden_states: Optional[Tensor] = None  # (B, S, hidden) for encoder-decoder models
    # 0-dim: the number `loss` is a mean over (labelled tokens after the label shift and the
    # encoder-decoder pad -> -100 rule; with NSP the MLM tokens, see `forward`; the examples for a
    # per-example-normalised loss, label_weights); the Trainer weighs micro-batches by it.
    loss_weight: Optional[Tensor] = None


class GenBert(nn.Module):
    """BERT (embeddings, post-LN encoder, tied MLM head, NSP head) plus an optional decoder.

    Encoder-only models generate through their mask scheme (`causal`, `prefix`); with
    `config.decoder` set, the encoder reads the source bidirectionally and the decoder writes.
    """

    quantized: Optional[str] = None  # "int8" on a copy made by `quantize`
    # "flex": build_mask returns FlexAttention block masks (genbert/flex.py), for GPUs; "sdpa": boolean masks
    attention_backend: str = "sdpa"

    def __init__(self, config: GenBertConfig):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)
        self.lm_head = LMHead(config, self.embeddings.word)
        self.nsp_head = NSPHead(config)
        self.copy_head = CopyHead(config) if config.copy_attention else None
        self.decoder: Optional[Decoder] = None
        self.load_report: Optional[convert.LoadReport] = None  # set by from_pretrained
        if config.decoder is not None:
            if config.decoder.share_encoder_weights:  # BERTShare: only cross-attention is new
                self.decoder = Decoder(config, encoder=self.encoder, embeddings=self.embeddings,
                                       lm_head=self.lm_head)
            else:
                word = self.embeddings.word if config.decoder.share_word_embeddings else None
                self.decoder = Decoder(config, word_embeddings=word)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, LMHead):
            nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ inputs and masks
    def check_input_ids(self, input_ids: Tensor, name: str = "input_ids", values: Optional[bool] = None) -> None:
        """Shape (B, T) with T <= max_position_embeddings, and ids in [0, vocab_size).
        ``values=None`` checks the ids only of a CPU tensor: on an accelerator reading min/max
        would stall on a device-to-host sync every forward (the Trainer checks each batch with
        :meth:`check_batch` on the host instead); ``values=True`` checks them anywhere."""
        if input_ids.dim() != 2:
            raise ValueError(f"{name} must be (batch, length), got shape {tuple(input_ids.shape)}")
        limit = self.config.max_position_embeddings
        if input_ids.shape[1] > limit:
            raise ValueError(f"{name} has length {input_ids.shape[1]} > max_position_embeddings={limit}")
        if values is None:
            values = input_ids.device.type == "cpu"
        if values and input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= self.config.vocab_size):
            raise ValueError(f"{name} holds token ids outside [0, vocab_size={self.config.vocab_size})")

    def check_batch(self, batch: Mapping[str, Any]) -> None:
        """Validate a (host) batch before it moves to the device: ``input_ids`` and
        ``decoder_input_ids`` as :meth:`check_input_ids`, and ``labels`` (besides -100) in
        [0, vocab_size) (an encoder-decoder model feeds them to its decoder)."""
        for name in ("input_ids", "decoder_input_ids"):
            ids = batch.get(name)
            if isinstance(ids, Tensor):
                self.check_input_ids(ids, name, values=True)
        labels = batch.get("labels")
        if isinstance(labels, Tensor) and labels.numel():
            real = labels[labels != -100]
            if real.numel() and (int(real.min()) < 0 or int(real.max()) >= self.config.vocab_size):
                raise ValueError(f"labels hold ids outside [0, vocab_size={self.config.vocab_size}) (besides -100)")

    def build_mask(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                   token_type_ids: Optional[Tensor] = None, scheme: Optional[str] = None) -> Optional[Tensor]:
        """bool (B, T, T): the configured scheme's mask, or `attention_mask` itself if it is 3-D;
        None when every token may see every token (no mask needed); `masks.CAUSAL` for the causal
        scheme without padding (SDPA's causal flag)."""
        if attention_mask is not None and attention_mask.dim() == 3:
            return attention_mask.bool()
        name = scheme or self.config.mask_scheme
        if self._use_flex() and name in flex.MODS:
            b, t = input_ids.shape[:2]
            return flex.block_mask(flex.MODS[name](input_ids, attention_mask, token_type_ids), b, t, input_ids.device)
        # the shortcuts only where testing them costs no device-to-host sync
        no_padding = attention_mask is None or (attention_mask.device.type == "cpu" and bool(attention_mask.all()))
        if (scheme or self.config.mask_scheme) == "bidirectional" and no_padding:
            return None  # every token sees every token: attention needs no mask
        if (scheme or self.config.mask_scheme) == "causal" and no_padding:
            return masks.CAUSAL
        return masks.build_mask(scheme or self.config.mask_scheme, input_ids, attention_mask, token_type_ids)

    def _use_flex(self) -> bool:
        """Block masks when asked for; not while training with attention dropout (FlexAttention has
        none), nor with gradients on CPU (FlexAttention has no CPU backward)."""
        if self.attention_backend == "sdpa":
            return False
        if self.attention_backend != "flex":
            raise ValueError(f"attention_backend must be 'sdpa' or 'flex', got {self.attention_backend!r}")
        if not flex.available():
            raise RuntimeError("attention_backend='flex' needs torch.nn.attention.flex_attention (torch >= 2.5)")
        if self.device.type == "cpu" and torch.is_grad_enabled():
            return False
        return not (self.training and self.config.attention_probs_dropout_prob > 0)

    # ------------------------------------------------------------------ forward
    def forward(self, input_ids: Tensor, token_type_ids: Optional[Tensor] = None,
                attention_mask: Optional[Tensor] = None, labels: Optional[Tensor] = None,
                position_ids: Optional[Tensor] = None, next_sentence_label: Optional[Tensor] = None,
                decoder_input_ids: Optional[Tensor] = None, decoder_attention_mask: Optional[Tensor] = None,
                shift_labels: Optional[bool] = None, label_smoothing: float = 0.0,
                compute_logits: bool = True, label_weights: Optional[Tensor] = None) -> GenBertOutput:
        """input_ids: (B, T). attention_mask: (B, T) padding (1 = real), or an explicit bool
        (B, T, T) mask. labels: (B, T) with -100 ignored; for causal/prefix models logits at t
        predict labels at t+1 (set `shift_labels=False` for aligned, MLM-style labels).
        `compute_logits=False` projects onto the vocabulary only where a label exists.
        `label_weights` (B, T) float, aligned with labels (encoder-only models): the loss becomes
        sum(label_weights * CE) over labelled tokens / B, e.g. masked diffusion's 1/(t*L) ELBO
        weights, and `loss_weight` is B.
        Otherwise `loss_weight` is the number of labelled tokens the LM loss averages; with
        `next_sentence_label` the loss is LM mean + NSP mean and `loss_weight` still counts the
        LM tokens (the batch size without LM labels), so the Trainer's token weighting leaves
        the NSP term only approximately independent of how a batch is split."""
        self.check_input_ids(input_ids)
        if self.decoder is not None:
            if label_weights is not None:
                raise ValueError("label_weights: only encoder-only models take per-token loss weights")
            return self._forward_seq2seq(input_ids, attention_mask, token_type_ids, labels,
                                         decoder_input_ids, decoder_attention_mask, label_smoothing,
                                         compute_logits)
        if label_weights is not None and labels is not None and label_weights.shape != labels.shape:
            raise ValueError(f"label_weights shape {tuple(label_weights.shape)} != labels shape {tuple(labels.shape)}")
        mask = self.build_mask(input_ids, attention_mask, token_type_ids)
        hidden = self.encoder(self.embeddings(input_ids, token_type_ids, position_ids), mask)
        out = GenBertOutput(hidden_states=hidden)
        # NSP logits for the bidirectional scheme; while training only when NSP is trained, so that
        # an unused head never stalls DistributedDataParallel
        if self.config.mask_scheme == "bidirectional" and (not self.training or next_sentence_label is not None):
            out.nsp_logits = self.nsp_head(hidden)
        if shift_labels is None:
            shift_labels = self.config.mask_scheme != "bidirectional"
        if self.copy_head is not None:
            out.loss, out.logits, out.loss_weight = self._copy_loss(hidden, input_ids, token_type_ids, attention_mask,
                                                                    labels, shift_labels, label_smoothing,
                                                                    compute_logits, label_weights)
        else:
            out.loss, out.logits, out.loss_weight = self._lm_loss(self.lm_head, hidden, labels, shift_labels,
                                                                  label_smoothing, compute_logits, label_weights)
        if next_sentence_label is not None:
            if out.nsp_logits is None:
                out.nsp_logits = self.nsp_head(hidden)
            nsp_loss = F.cross_entropy(out.nsp_logits.float(), next_sentence_label.view(-1))
            if out.loss is None:
                out.loss, out.loss_weight = nsp_loss, hidden.new_full((), hidden.shape[0], dtype=torch.float32)
            else:
                out.loss = out.loss + nsp_loss
        return out

    def copy_memory(self, hidden: Tensor, input_ids: Tensor, token_type_ids: Optional[Tensor],
                    attention_mask: Optional[Tensor] = None) -> tuple[Tensor, Tensor, Tensor]:
        """The copy head's memory of a forward (prefix scheme, or the diffusion layout of the bidirectional
        one): keys (B, T, hidden), ids (B, T) and
        the positions that may be copied (B, T) bool: the source (token type 0), neither padding
        (a 2-D attention_mask's 0, else [PAD]) nor a special token ([CLS], [SEP], [MASK], EOS)."""
        allowed = torch.ones_like(input_ids, dtype=torch.bool) if token_type_ids is None else token_type_ids == 0
        if attention_mask is not None and attention_mask.dim() == 2:
            allowed &= attention_mask.bool()
        allowed &= ~torch.isin(input_ids, torch.tensor(self.config.special_token_ids, device=input_ids.device))
        return self.copy_head.memory(hidden, input_ids, allowed)

    def _copy_loss(self, hidden: Tensor, input_ids: Tensor, token_type_ids: Optional[Tensor],
                   attention_mask: Optional[Tensor], labels: Optional[Tensor], shift: bool, label_smoothing: float,
                   compute_logits: bool, label_weights: Optional[Tensor] = None
                   ) -> tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
        """`_lm_loss` for a model with a copy head: the cross-entropy of the mixture's log p (with
        `label_weights`, weighted and divided by the batch size, as `_weighted_lm_loss`); the
        returned logits are log p (B, T, vocab)."""
        memory = self.copy_memory(hidden, input_ids, token_type_ids, attention_mask)
        logits = None
        if compute_logits or labels is None:
            logits = self.copy_head.log_probs(self.lm_head(hidden), hidden, *memory)
        if labels is None:
            return None, logits, None
        batch = labels.shape[0]
        if shift:
            hidden, labels = hidden[:, :-1], labels[:, 1:]
            label_weights = None if label_weights is None else label_weights[:, 1:]
        keep = labels != -100
        if logits is not None:
            logp, targets = (logits[:, :-1] if shift else logits)[keep], labels[keep]
            weights = None if label_weights is None else label_weights[keep]
        else:  # only the labelled positions: each row's, first and in order, padded to the longest row's
            n = int(keep.sum(1).max())
            order = keep.int().argsort(dim=1, descending=True, stable=True)[:, :n]
            h = hidden.gather(1, order[..., None].expand(-1, -1, hidden.shape[-1]))
            valid = keep.gather(1, order)
            logp = self.copy_head.log_probs(self.lm_head(h), h, *memory)[valid]
            targets = labels.gather(1, order)[valid]
            weights = None if label_weights is None else label_weights.gather(1, order)[valid]
        if weights is None:
            return F.cross_entropy(logp, targets, label_smoothing=label_smoothing), logits, keep.sum().float()
        ce = F.cross_entropy(logp, targets, reduction="none", label_smoothing=label_smoothing)
        loss = (ce * weights.float()).sum() / batch
        return loss, logits, torch.tensor(float(batch), device=loss.device)

    @staticmethod
    def _lm_loss(head: LMHead, hidden: Tensor, labels: Optional[Tensor], shift: bool,
                 label_smoothing: float, compute_logits: bool, label_weights: Optional[Tensor] = None
                 ) -> tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
        """(loss, logits (B, T, vocab) or None, loss_weight): the mean loss over the labelled tokens
        and their number as a 0-dim float tensor; with `label_weights` the weighted loss over the
        batch (see `_weighted_lm_loss`) and the batch size."""
        logits = head(hidden) if compute_logits or labels is None else None
        if labels is None:
            return None, logits, None
        if label_weights is not None:
            loss = GenBert._weighted_lm_loss(head, hidden, logits, labels, label_weights, shift, label_smoothing)
            return loss, logits, torch.tensor(float(labels.shape[0]), device=loss.device)
        if shift:
            hidden, labels = hidden[:, :-1], labels[:, 1:]
        if logits is not None:
            scores = (logits[:, :-1] if shift else logits).reshape(-1, logits.shape[-1])
            targets = labels.reshape(-1)
        else:  # fast path: the vocabulary projection only where a label exists
            keep = labels != -100
            scores, targets = head(hidden[keep]), labels[keep]
        loss = F.cross_entropy(scores.float(), targets, ignore_index=-100, label_smoothing=label_smoothing)
        return loss, logits, (labels != -100).sum().float()

    @staticmethod
    def _weighted_lm_loss(head: LMHead, hidden: Tensor, logits: Optional[Tensor], labels: Tensor,
                          weights: Tensor, shift: bool, label_smoothing: float) -> Tensor:
        """sum over labelled tokens of weight * CE, divided by the batch size B. hidden (B, T, H),
        logits (B, T, V) or None (then only labelled positions are projected), labels and weights (B, T)
        (`forward` checks their shapes)."""
        batch = labels.shape[0]
        if shift:
            hidden, labels, weights = hidden[:, :-1], labels[:, 1:], weights[:, 1:]
            logits = None if logits is None else logits[:, :-1]
        keep = labels != -100
        scores = head(hidden[keep]) if logits is None else logits[keep]
        ce = F.cross_entropy(scores.float(), labels[keep], reduction="none", label_smoothing=label_smoothing)
        return (ce * weights[keep].float()).sum() / batch

    def shift_right(self, labels: Tensor) -> Tensor:
        """Teacher forcing inputs: `decoder_start_token_id` then labels[:-1] (-100 -> pad)."""
        start = torch.full_like(labels[:, :1], self.config.decoder_start_token_id)
        shifted = torch.cat([start, labels[:, :-1]], dim=1)
        return shifted.masked_fill(shifted == -100, self.config.pad_token_id)

    def encode(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
               token_type_ids: Optional[Tensor] = None, position_ids: Optional[Tensor] = None) -> Tensor:
        """Encoder output (B, S, hidden) under the configured scheme."""
        mask = self.build_mask(input_ids, attention_mask, token_type_ids)
        return self.encoder(self.embeddings(input_ids, token_type_ids, position_ids), mask)

    def _forward_seq2seq(self, input_ids, attention_mask, token_type_ids, labels, decoder_input_ids,
                         decoder_attention_mask, label_smoothing, compute_logits) -> GenBertOutput:
        if attention_mask is not None and attention_mask.dim() == 3:
            raise ValueError("encoder-decoder models take a 2-D (batch, length) attention_mask")
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("encoder-decoder forward needs decoder_input_ids or labels")
            decoder_input_ids = self.shift_right(labels)
            if decoder_attention_mask is None:
                decoder_attention_mask = decoder_input_ids.ne(self.config.pad_token_id)
                decoder_attention_mask[:, 0] = True
        self.check_input_ids(decoder_input_ids, "decoder_input_ids")
        memory = self.encode(input_ids, attention_mask, token_type_ids)
        b, t = decoder_input_ids.shape
        dam = decoder_attention_mask
        if dam is None or (dam.device.type == "cpu" and bool(dam.all())):  # no padding: SDPA's causal flag
            self_mask = masks.CAUSAL
        elif self._use_flex():
            self_mask = flex.block_mask(flex.causal_mod(decoder_input_ids, dam), b, t, decoder_input_ids.device)
        else:
            self_mask = masks.causal(decoder_input_ids, dam)
        if attention_mask is None or (attention_mask.device.type == "cpu" and bool(attention_mask.all())):
            cross_mask = None  # every source token is real: no mask to apply
        else:
            cross_mask = masks.cross(attention_mask, b, t, memory.shape[1], memory.device)
        hidden = self.decoder(decoder_input_ids, self_mask, memory, cross_mask)
        if labels is not None:  # padding in the labels never counts
            labels = labels.masked_fill(labels == self.config.pad_token_id, -100)
        loss, logits, weight = self._lm_loss(self.decoder.lm_head, hidden, labels, False, label_smoothing,
                                             compute_logits)
        return GenBertOutput(loss=loss, logits=logits, hidden_states=hidden, encoder_hidden_states=memory,
                             loss_weight=weight)

    # ------------------------------------------------------------------ cached decoding steps
    def new_cache(self, batch_size: int, max_length: int) -> KVCache:
        """A KV cache for the stack that generates (the decoder if any, else the encoder)."""
        c = self.config
        n = len(self.decoder.layers) if self.decoder is not None else c.num_hidden_layers
        p = self.embeddings.word.weight
        dtype = torch.get_autocast_dtype(p.device.type) if torch.is_autocast_enabled(p.device.type) else p.dtype
        return KVCache(n, batch_size, c.num_attention_heads, max_length, c.head_dim, dtype, p.device)

    def step(self, input_ids: Tensor, position_ids: Tensor, token_type_ids: Optional[Tensor],
             mask: Tensor, cache: KVCache) -> Tensor:
        """Encoder-only cached step. input_ids, position_ids, token_type_ids: (B, n); mask: bool
        (B, n, cache.length + n). Writes keys/values at cache.length (caller advances it).
        Returns hidden states (B, n, hidden)."""
        return self.encoder(self.embeddings(input_ids, token_type_ids, position_ids), mask, cache)

    def decoder_step(self, input_ids: Tensor, position_ids: Tensor, self_mask: Tensor,
                     cross_mask: Tensor, cache: KVCache) -> Tensor:
        """Decoder cached step over `cache.cross` (set it with `decoder.precompute_cross`)."""
        return self.decoder(input_ids, self_mask, None, cross_mask, position_ids, cache)

    def logits(self, hidden: Tensor) -> Tensor:
        """Vocabulary logits of the generating stack's hidden states."""
        head = self.decoder.lm_head if self.decoder is not None else self.lm_head
        return head(hidden)

    def next_scores(self, hidden: Tensor, memory: Optional[tuple[Tensor, Tensor, Tensor]] = None) -> Tensor:
        """(N, hidden) -> (N, vocab) next-token scores: the logits, or with a copy head the
        mixture's log p, each row with its row of `memory` (`copy_memory`)."""
        logits = self.logits(hidden)
        if self.copy_head is None:
            return logits
        return self.copy_head.log_probs(logits[:, None], hidden[:, None], *memory)[:, 0]

    def generate(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                 token_type_ids: Optional[Tensor] = None, **kwargs: Any) -> Tensor:
        """Generated tokens only, (B, n) with n <= max_new_tokens, pad after each row's EOS.
        See `genbert.generation.GenerationConfig` for the arguments (transformers' names)."""
        from .generation import generate
        return generate(self, input_ids, attention_mask, token_type_ids, **kwargs)

    def quantize(self, dtype: str = "int8") -> "GenBert":
        """A new model whose linear layers and vocabulary projection have int8 weights (dynamic
        int8 activations, PyTorch's fbgemm/x86 kernels) for fast CPU decoding; this model is
        untouched. Inference only: the copy is neither trained nor saved. See genbert/quantize.py."""
        from .quantize import quantize
        return quantize(self, dtype)

    # ------------------------------------------------------------------ misc
    def gradient_checkpointing_enable(self) -> None:
        self.encoder.gradient_checkpointing = True
        if self.decoder is not None:
            self.decoder.gradient_checkpointing = True

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        return self.embeddings.word.weight.device

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, decoder: Optional[str] = None,
                        decoder_layers: Optional[int] = None, *, revision: Optional[str] = None,
                        cache_dir: Optional[str | os.PathLike] = None, token: Optional[str | bool] = None,
                        local_files_only: Optional[bool] = None, **overrides: Any) -> "GenBert":
        """Load a genbert or transformers BERT / bert2bert model: a local directory, or a Hugging
        Face hub id (``"bert-base-uncased"``, ``"org/name"``) resolved through the hub cache with
        `revision`, `cache_dir`, `token` and `local_files_only` (default: ``HF_HUB_OFFLINE``),
        see :func:`genbert.hub.resolve_model_dir`.
        `decoder="bert"|"shared"|"random"` adds a decoder to an encoder checkpoint
        (BERT2BERT, BERTShare, BERT2Rnd); `overrides` set config fields, e.g. mask_scheme.
        `model.load_report` says which parameters were newly initialised (also warned about)."""
        from .hub import resolve_model_dir
        directory = resolve_model_dir(path, revision=revision, cache_dir=cache_dir, token=token,
                                      local_files_only=local_files_only)
        config, state = convert.load_checkpoint(directory, decoder, decoder_layers, overrides)
        model = cls(config)
        result = model.load_state_dict(state, strict=False)
        names = dict(model.named_parameters(remove_duplicate=False))
        aliases = set(names) - {n for n, _ in model.named_parameters()}  # second names of shared tensors
        new = tuple(k for k in result.missing_keys if k in names and k not in aliases)
        quiet: tuple[str, ...] = ()
        if model.decoder is not None and not config.decoder.share_encoder_weights:
            quiet = tuple(k for k in new if k.startswith(("lm_head.", "nsp_head.")))  # the encoder's own heads
        model.load_report = convert.LoadReport(str(path), new, tuple(result.unexpected_keys), quiet)
        model.load_report.warn()
        return model

    def save_pretrained(self, path: str | os.PathLike, format: str = "genbert") -> None:
        """Write config.json + model.safetensors atomically (`format="transformers"` writes a
        directory that transformers' BertForPreTraining / EncoderDecoderModel loads)."""
        if self.quantized:
            raise ValueError(f"a {self.quantized}-quantized model is not saved: save the float32 model and "
                             f"quantize it after loading")
        if format == "transformers":
            if self.copy_head is not None:
                raise ValueError("format='transformers': transformers has no copy head (copy_attention=True); "
                                 "save with format='genbert'")
            convert.save_transformers(self.config, dict(self.named_parameters(remove_duplicate=False)), path)
        elif format == "genbert":
            convert.save_genbert(self.config, dict(self.named_parameters()), path)
        else:
            raise ValueError(f"format must be 'genbert' or 'transformers', got {format!r}")
