"""Text in, text out: a model directory with its tokenizer and stored generation settings."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Optional

import torch

from .io import write_json
from .model import GenBert
from .tokenization import Tokenizer

SETTINGS_FILE = "generation.json"
GENERATION_KEYS = ("num_beams", "max_new_tokens", "min_new_tokens", "length_penalty", "no_repeat_ngram_size",
                   "repetition_penalty", "early_stopping", "do_sample", "temperature", "top_k", "top_p")


class TextGenerator:
    """`TextGenerator.from_pretrained(dir).generate(["an article ..."])` -> ["a headline"].

    `settings` holds what the model was trained and evaluated with (`max_source_length`,
    `max_target_length`, generation arguments); calls override them.
    """

    def __init__(self, model: GenBert, tokenizer: Tokenizer, settings: Optional[dict[str, Any]] = None,
                 device: Optional[str | torch.device] = None):
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.settings = dict(settings or {})
        self.device = torch.device(device)
        c = model.config
        if (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id) != (
                c.cls_token_id, c.sep_token_id, c.pad_token_id):
            raise ValueError("tokenizer special ids ([CLS], [SEP], [PAD]) differ from the model config's")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: Optional[str] = None) -> "TextGenerator":
        path = Path(path)
        model = GenBert.from_pretrained(path)
        tokenizer = Tokenizer.from_dir(path)
        settings = {}
        if (path / SETTINGS_FILE).exists():
            settings = json.loads((path / SETTINGS_FILE).read_text(encoding="utf-8"))
        return cls(model, tokenizer, settings, device)

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Model, tokenizer and settings in one directory (each file written atomically)."""
        self.model.save_pretrained(path)
        self.tokenizer.save(path)
        write_json(Path(path) / SETTINGS_FILE, self.settings)

    def _max_source_length(self, override: Optional[int], max_new_tokens: int) -> int:
        limit = self.model.config.max_position_embeddings
        if self.model.decoder is None:  # the targets share the positions with the source
            limit -= max_new_tokens + 1
        n = override or self.settings.get("max_source_length") or limit
        return max(3, min(n, limit))

    def generate(self, texts: str | list[str], batch_size: int = 16, max_source_length: Optional[int] = None,
                 progress: bool = False, **kwargs: Any) -> str | list[str]:
        """Generate for one text or a list (batched internally, longest first); returns the same shape."""
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        gen = {k: self.settings[k] for k in GENERATION_KEYS if k in self.settings}
        gen.update(kwargs)
        gen.setdefault("max_new_tokens", self.settings.get("max_target_length", 32))
        max_len = self._max_source_length(max_source_length, gen["max_new_tokens"])
        encoded = [self.tokenizer.encode(t, add_special_tokens=True) for t in texts]
        if any(len(e) > max_len for e in encoded):
            n = sum(len(e) > max_len for e in encoded)
            warnings.warn(f"{n} input(s) longer than {max_len} tokens were truncated", stacklevel=2)
            sep = self.tokenizer.sep_token_id
            encoded = [e[:max_len - 1] + [sep] if len(e) > max_len else e for e in encoded]
        order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))
        out: list[str] = [""] * len(texts)
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        if progress:
            from tqdm.auto import tqdm
            batches = tqdm(batches, desc="generating", unit="batch")
        pad = self.tokenizer.pad_token_id
        use_bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            for idx in batches:
                t = max(len(encoded[i]) for i in idx)
                ids = torch.full((len(idx), t), pad, dtype=torch.long)
                am = torch.zeros((len(idx), t), dtype=torch.long)
                for row, i in enumerate(idx):
                    ids[row, :len(encoded[i])] = torch.tensor(encoded[i])
                    am[row, :len(encoded[i])] = 1
                tokens = self.model.generate(ids.to(self.device), am.to(self.device), **gen)
                for row, i in enumerate(idx):
                    out[i] = self.tokenizer.decode(tokens[row].tolist(), skip_special_tokens=True)
        return out[0] if single else out
