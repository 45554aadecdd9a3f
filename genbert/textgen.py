"""Text in, text out: a model directory with its tokenizer and stored generation settings."""
from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from .generation import WORD_VOCAB_OPTIONS
from .hub import resolve_model_dir, write_model_card
from .io import write_json
from .model import GenBert
from .tokenization import Tokenizer
from .words import WordVocab

logger = logging.getLogger(__name__)  # quiet: logging.getLogger("genbert").setLevel(logging.ERROR)

SETTINGS_FILE = "generation.json"
DTYPES = (None, "float32", "int8")  # weights a TextGenerator decodes with (None = as stored: float32)
GENERATION_KEYS = ("num_beams", "max_new_tokens", "min_new_tokens", "length_penalty", "no_repeat_ngram_size",
                   "no_repeat_word_ngram_size", "no_repeat_content_words",
                   "repetition_penalty", "early_stopping", "do_sample", "temperature", "top_k", "top_p",
                   "steps", "order", "remask", "block_length", "collapse_repeats",  # diffusion (bidirectional)
                   "copy_bias", "copy_subwords", "copy_numbers")


@dataclass(frozen=True)
class Truncation:
    """Inputs cut by one `TextGenerator.generate` call: `cut` of `total` were longer than
    `max_length` tokens ([CLS] and [SEP] included). `model_limit`: `max_length` is the most this
    model reads (its positions), so a larger `max_source_length` would not keep more."""
    cut: int
    total: int
    max_length: int
    model_limit: bool = False

    def message(self, flag: str = "max_source_length") -> str:
        """One plain line; `flag` names the setting that changes the length (a CLI passes its flag)."""
        were = "was" if self.cut == 1 else "were"
        hint = "the most this model reads" if self.model_limit else flag
        return (f"{self.cut} of {self.total} inputs {were} longer than {self.max_length} tokens "
                f"and {were} cut ({hint})")


@contextlib.contextmanager
def truncation_notes_off() -> Iterator[None]:
    """Within it, TextGenerator logs no line about cut inputs (for callers that report
    `last_truncation` themselves); the logger's level is restored on the way out."""
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)

class TextGenerator:
    """`TextGenerator.from_pretrained(dir).generate(["an article ..."])` -> ["a headline"].

    `settings` holds what the model was trained and evaluated with (`max_source_length`,
    `max_target_length`, generation arguments); calls override them.

    Inputs longer than `max_source_length` are cut; the first call that cuts at a given length logs
    one line on the "genbert.textgen" logger (level WARNING, later ones at DEBUG, so that scoring a
    dataset batch by batch does not flood a log; `logging.getLogger("genbert").setLevel(logging.ERROR)`
    silences it), and every call leaves its counts in `last_truncation` (None when nothing was cut).

    The output text is detokenized (`Tokenizer.decode`, clean=True): "e-cigarette", "don't",
    "5.3%". `no_repeat_word_ngram_size` and `no_repeat_content_words` (settings or call
    arguments) block repeated words through the tokenizer's `WordVocab`.
    """

    last_truncation: Optional[Truncation] = None
    last_generated_tokens: int = 0  # the ids the last generate call wrote (its end tokens included, padding not)
    _word_vocab: Optional[WordVocab] = None

    def __init__(self, model: GenBert, tokenizer: Tokenizer, settings: Optional[dict[str, Any]] = None,
                 device: Optional[str | torch.device] = None):
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(device).eval()
        self._cut_lengths_said: set[int] = set()
        self.tokenizer = tokenizer
        self.settings = dict(settings or {})
        self.device = torch.device(device)
        c = model.config
        if (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id) != (
                c.cls_token_id, c.sep_token_id, c.pad_token_id):
            raise ValueError("tokenizer special ids ([CLS], [SEP], [PAD]) differ from the model config's")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: Optional[str] = None,
                        dtype: Optional[str] = None, *, revision: Optional[str] = None,
                        cache_dir: Optional[str | os.PathLike] = None, token: Optional[str | bool] = None,
                        local_files_only: Optional[bool] = None) -> "TextGenerator":
        """A model directory, or a Hugging Face hub id resolved through the hub cache (see
        :func:`genbert.hub.resolve_model_dir` for `revision`, `cache_dir`, `token`, `local_files_only`).
        ``dtype="int8"`` decodes with int8 weights on CPU (`GenBert.quantize`); None or "float32"
        keeps the stored float32 weights."""
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(map(str, DTYPES))}, got {dtype!r}")
        if dtype == "int8":
            if device is not None and torch.device(device).type != "cpu":
                raise ValueError(f"dtype='int8' decodes on CPU, not on {device}")
            device = "cpu"
        path = resolve_model_dir(path, revision=revision, cache_dir=cache_dir, token=token,
                                 local_files_only=local_files_only)
        model = GenBert.from_pretrained(path)
        if dtype == "int8":
            model = model.quantize("int8")
        tokenizer = Tokenizer.from_dir(path)
        settings = {}
        if (path / SETTINGS_FILE).exists():
            settings = json.loads((path / SETTINGS_FILE).read_text(encoding="utf-8"))
        return cls(model, tokenizer, settings, device)

    def save_pretrained(self, path: str | os.PathLike, model_card: Optional[Mapping[str, Any]] = None) -> None:
        """Model, tokenizer, settings and a model card (README.md) in one directory, as the Hugging
        Face hub expects them (each file written atomically). `model_card`: what the card says
        besides the config and settings (:func:`genbert.hub.model_card` keywords: ``recipe``,
        ``command``, ``scores``, ``baselines``, ``base_model``, ``dataset``, ...)."""
        self.model.save_pretrained(path)
        self.tokenizer.save(path)
        write_json(Path(path) / SETTINGS_FILE, self.settings)
        write_model_card(path, self.model.config.to_dict(), settings=self.settings, **dict(model_card or {}))

    def push_to_hub(self, repo_id: str, *, token: Optional[str | bool] = None, private: Optional[bool] = None,
                    revision: Optional[str] = None, commit_message: str = "Upload genbert model",
                    model_card: Optional[Mapping[str, Any]] = None) -> str:
        """Upload what :meth:`save_pretrained` writes to the hub repository `repo_id` (created if
        needed); returns the commit URL."""
        import tempfile

        from huggingface_hub import HfApi
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="genbert-push-") as tmp:
            self.save_pretrained(tmp, model_card)
            info = api.upload_folder(repo_id=repo_id, folder_path=tmp, revision=revision,
                                     commit_message=commit_message)
        return str(getattr(info, "commit_url", info))

    @property
    def word_vocab(self) -> WordVocab:
        """The tokenizer's word boundaries (built once, on first use)."""
        if self._word_vocab is None:
            self._word_vocab = WordVocab.from_tokenizer(self.tokenizer)
        return self._word_vocab

    def _max_source_length(self, override: Optional[int], max_new_tokens: int) -> tuple[int, bool]:
        """The source length used, and whether it is the model's own limit."""
        limit = self.model.config.max_position_embeddings
        if self.model.decoder is None:  # the targets share the positions with the source
            limit -= max_new_tokens + 1
        n = override or self.settings.get("max_source_length") or limit
        return max(3, min(n, limit)), n >= limit

    def generate(self, texts: str | list[str], batch_size: int = 16, max_source_length: Optional[int] = None,
                 progress: bool = False, **kwargs: Any) -> str | list[str]:
        """Generate for one text or a list (batched internally, longest first); returns the same shape."""
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size={batch_size!r}: must be an int >= 1")
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        gen = {k: self.settings[k] for k in GENERATION_KEYS if k in self.settings}
        gen.update(kwargs)
        gen.setdefault("max_new_tokens", self.settings.get("max_target_length", 32))
        if any(gen.get(k) for k in WORD_VOCAB_OPTIONS):
            gen.setdefault("word_vocab", self.word_vocab)
        max_len, model_limit = self._max_source_length(max_source_length, gen["max_new_tokens"])
        # one token more than kept tells which inputs are cut, without tokenizer warnings about long text
        encoded = self.tokenizer.batch_encode(texts, max_length=max_len + 1, add_special_tokens=True)
        n = sum(len(e) > max_len for e in encoded)
        self.last_truncation = Truncation(n, len(texts), max_len, model_limit) if n else None
        if n:
            level = logging.DEBUG if max_len in self._cut_lengths_said else logging.WARNING
            logger.log(level, self.last_truncation.message())
            if logger.isEnabledFor(logging.WARNING):  # a silenced line was not said
                self._cut_lengths_said.add(max_len)
            sep = self.tokenizer.sep_token_id
            encoded = [e[:max_len - 1] + [sep] if len(e) > max_len else e for e in encoded]
        order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))
        out: list[str] = [""] * len(texts)
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        bar = None
        if progress:  # a bar on a terminal, plain periodic lines in a log file
            from .progress import Progress
            bar = Progress("generating", len(batches), unit="batch")
        pad = self.tokenizer.pad_token_id
        self.last_generated_tokens = 0
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
                self.last_generated_tokens += int((tokens != pad).sum())
                for row, i in enumerate(idx):
                    out[i] = self.tokenizer.decode(tokens[row].tolist(), skip_special_tokens=True)
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        return out[0] if single else out
