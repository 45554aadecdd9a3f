"""One tokenizer interface for genbert, whatever the vocabulary behind it.

Two kinds are supported:

* **WordPiece** (BERT's own): a directory holding ``tokenizer.json`` and/or ``vocab.txt``
  (any BERT checkpoint directory). Loaded with ``transformers.BertTokenizerFast``.
* **SentencePiece**: a directory holding ``spiece.model``, normally made by
  :func:`train_sentencepiece`. Its reserved pieces have fixed ids::

      [PAD] = 0   [UNK] = 1   [CLS] = 2   [SEP] = 3   [MASK] = 4

  ``[PAD]``/``[UNK]`` are sentencepiece's pad/unk pieces; ``[CLS]``, ``[SEP]``, ``[MASK]``
  are *control* symbols, so encoding plain text never produces any of them (a literal
  "[MASK]" in the text is spelled out with ordinary pieces).

``Tokenizer.from_dir(path)`` picks the kind from the files it finds.
"""
from __future__ import annotations

import io
import json
import os
import re
import warnings
from pathlib import Path
from typing import Iterable, Optional, Sequence

__all__ = [
    "Tokenizer",
    "train_sentencepiece",
    "SPM_FILE",
    "SPM_RESERVED",
    "PAD_TOKEN",
    "UNK_TOKEN",
    "CLS_TOKEN",
    "SEP_TOKEN",
    "MASK_TOKEN",
]

PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPM_FILE = "spiece.model"
# Fixed ids of the reserved pieces in a model made by train_sentencepiece.
SPM_RESERVED = {PAD_TOKEN: 0, UNK_TOKEN: 1, CLS_TOKEN: 2, SEP_TOKEN: 3, MASK_TOKEN: 4}
_SPM_META = "genbert_tokenizer.json"

_ROLES = ("pad", "unk", "cls", "sep", "mask")


class Tokenizer:
    """Wraps either a WordPiece (HF fast) tokenizer or a sentencepiece model.

    Build one with :meth:`from_dir` (or :func:`train_sentencepiece`); the constructor is
    internal. ``kind`` is ``"wordpiece"`` or ``"sentencepiece"``.
    """

    def __init__(self, *, hf=None, sp=None, sp_bytes: Optional[bytes] = None, source: str = "") -> None:
        if (hf is None) == (sp is None):
            raise ValueError("Tokenizer needs exactly one of a HF tokenizer or a sentencepiece processor")
        self._hf = hf
        self._sp = sp
        self._sp_bytes = sp_bytes
        self.source = source
        if hf is not None:
            self.kind = "wordpiece"
            ids = {
                "pad": hf.pad_token_id,
                "unk": hf.unk_token_id,
                "cls": hf.cls_token_id,
                "sep": hf.sep_token_id,
                "mask": hf.mask_token_id,
            }
        else:
            self.kind = "sentencepiece"
            ids = _sp_special_ids(sp)
        missing = [r for r in _ROLES if ids.get(r) is None]
        if missing:
            where = f" in {source}" if source else ""
            raise ValueError(
                f"tokenizer{where} has no {', '.join('[' + m.upper() + ']' for m in missing)} token; "
                "genbert needs [PAD], [UNK], [CLS], [SEP] and [MASK]"
            )
        self._ids = {k: int(v) for k, v in ids.items()}
        self._special_ids = frozenset(self._ids.values())
        if hf is not None:
            self._special_ids = frozenset(self._special_ids | set(int(i) for i in hf.all_special_ids))

    # ------------------------------------------------------------------ loading / saving
    @classmethod
    def from_dir(cls, path: str | os.PathLike) -> "Tokenizer":
        """Load the tokenizer stored in ``path``.

        ``spiece.model`` -> sentencepiece; otherwise ``tokenizer.json`` or ``vocab.txt`` ->
        WordPiece. A directory with none of them raises ``ValueError`` naming it.
        """
        d = Path(path)
        if not d.is_dir():
            raise ValueError(f"tokenizer directory {str(d)!r} does not exist or is not a directory")
        if (d / SPM_FILE).is_file():
            return cls._load_sentencepiece(d / SPM_FILE)
        if (d / "tokenizer.json").is_file() or (d / "vocab.txt").is_file():
            return cls._load_wordpiece(d)
        raise ValueError(
            f"no tokenizer found in {str(d)!r}: expected {SPM_FILE} (sentencepiece) or "
            "tokenizer.json / vocab.txt (WordPiece)"
        )

    @classmethod
    def _load_wordpiece(cls, d: Path) -> "Tokenizer":
        try:
            from transformers import BertTokenizerFast
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("WordPiece tokenizers need transformers: pip install transformers") from e
        try:
            hf = BertTokenizerFast.from_pretrained(str(d))
        except Exception as e:  # malformed files: one clear message naming the directory
            raise ValueError(f"could not load the WordPiece tokenizer in {str(d)!r}: {e}") from e
        return cls(hf=hf, source=str(d))

    @classmethod
    def _load_sentencepiece(cls, file: Path) -> "Tokenizer":
        data = file.read_bytes()
        return cls._from_sp_bytes(data, source=str(file.parent))

    @classmethod
    def _from_sp_bytes(cls, data: bytes, source: str = "") -> "Tokenizer":
        spm = _import_sentencepiece()
        sp = spm.SentencePieceProcessor()
        try:
            sp.LoadFromSerializedProto(data)
        except Exception as e:
            raise ValueError(f"{source or 'spiece.model'}: not a valid sentencepiece model ({e})") from e
        return cls(sp=sp, sp_bytes=data, source=source)

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer into directory ``path`` (created if needed) for :meth:`from_dir`."""
        d = Path(path)
        d.mkdir(parents=True, exist_ok=True)
        if self._hf is not None:
            self._hf.save_pretrained(str(d))
            if not (d / "vocab.txt").exists():  # handy for tools that only read vocab.txt
                vocab = self._hf.get_vocab()
                with open(d / "vocab.txt", "w", encoding="utf-8") as f:
                    for tok, _ in sorted(vocab.items(), key=lambda kv: kv[1]):
                        f.write(tok + "\n")
        else:
            (d / SPM_FILE).write_bytes(self._sp_bytes)
            meta = {"kind": "sentencepiece", "special_ids": self._ids}
            (d / _SPM_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    # ------------------------------------------------------------------ sizes and ids
    def __len__(self) -> int:
        return self.vocab_size

    @property
    def vocab_size(self) -> int:
        """Number of ids (model embedding rows needed), added tokens included."""
        return len(self._hf) if self._hf is not None else int(self._sp.get_piece_size())

    @property
    def pad_token_id(self) -> int:
        return self._ids["pad"]

    @property
    def unk_token_id(self) -> int:
        return self._ids["unk"]

    @property
    def cls_token_id(self) -> int:
        return self._ids["cls"]

    @property
    def sep_token_id(self) -> int:
        return self._ids["sep"]

    @property
    def mask_token_id(self) -> int:
        return self._ids["mask"]

    @property
    def special_ids(self) -> set[int]:
        """Ids of [PAD], [UNK], [CLS], [SEP], [MASK] (and any other special token)."""
        return set(self._special_ids)

    def id_to_token(self, i: int) -> str:
        if self._hf is not None:
            return self._hf.convert_ids_to_tokens(int(i))
        return self._sp.id_to_piece(int(i))

    def token_to_id(self, token: str) -> Optional[int]:
        """The id of one vocabulary entry, or None if it is not in the vocabulary."""
        if self._hf is not None:
            i = self._hf.convert_tokens_to_ids(token)
            return None if i is None or (i == self.unk_token_id and token != self._hf.unk_token) else int(i)
        i = self._sp.piece_to_id(token)
        return None if i == self._sp.unk_id() and token != self._sp.id_to_piece(i) else int(i)

    # ------------------------------------------------------------------ encode / decode
    def encode(self, text: str, max_length: Optional[int] = None, add_special_tokens: bool = False) -> list[int]:
        """Token ids of ``text``; with ``add_special_tokens`` it is ``[CLS] ... [SEP]``.

        ``max_length`` caps the total length (special tokens included) by truncating the text.
        """
        return self.batch_encode([text], max_length=max_length, add_special_tokens=add_special_tokens)[0]

    def batch_encode(
        self, texts: Sequence[str], max_length: Optional[int] = None, add_special_tokens: bool = False
    ) -> list[list[int]]:
        """:meth:`encode` for many texts at once (uses the fast tokenizers' batch path).

        Plain text never yields special ids: a literal "[MASK]" in ``texts`` is tokenized as
        ordinary characters for both kinds of tokenizer.
        """
        if isinstance(texts, str):
            raise TypeError("batch_encode takes a list of strings; use encode() for one string")
        texts = list(texts)
        if not texts:
            return []
        n_special = 2 if add_special_tokens else 0
        if max_length is not None and max_length < n_special:
            raise ValueError(f"max_length={max_length} leaves no room for [CLS] and [SEP]")
        if self._hf is not None:
            kw = {"truncation": True, "max_length": max_length} if max_length is not None else {}
            # split_special_tokens: a literal "[MASK]" in the text is spelled out, never id 103
            out = self._hf(texts, add_special_tokens=add_special_tokens, split_special_tokens=True, **kw)["input_ids"]
            return [list(map(int, ids)) for ids in out]
        out = self._sp.encode(texts, out_type=int)
        res = []
        for ids in out:
            if max_length is not None:
                ids = ids[: max_length - n_special]
            if add_special_tokens:
                ids = [self.cls_token_id, *ids, self.sep_token_id]
            res.append(list(ids))
        return res

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True, clean: bool = True) -> str:
        """Readable text for ``ids`` (a sequence, or a 1-D tensor).

        WordPiece: ``##`` pieces merged; with ``clean`` (the default) punctuation is rejoined the
        way English text writes it ("e-cigarette", "don't", "5.3%", "'quoted' words": see
        :mod:`genbert.detokenize`), else transformers' decoding (a space around every
        punctuation token but a few). Sentencepiece: ``▁`` turned into spaces; its pieces keep
        the original spacing, so ``clean`` changes nothing.
        """
        ids = [int(i) for i in _flatten_ids(ids)]
        if self._hf is not None:
            if not clean:
                return self._hf.decode(ids, skip_special_tokens=skip_special_tokens,
                                       clean_up_tokenization_spaces=True)
            from .detokenize import detokenize, wordpiece_words
            if skip_special_tokens:
                ids = [i for i in ids if i not in self._special_ids]
            tokens = [t for t in self._hf.convert_ids_to_tokens(ids) if t is not None]
            return detokenize(wordpiece_words(tokens))
        parts: list[str] = []
        run: list[int] = []
        for i in ids:
            if i == self.unk_token_id and not skip_special_tokens:
                run.append(i)  # sentencepiece renders it in place (as " ⁇ "), see below
            elif i in self._special_ids:
                if run:
                    parts.append(self._sp.decode(run))
                    run = []
                if not skip_special_tokens:
                    parts.append(self._sp.id_to_piece(i))
            else:
                run.append(i)
        if run:
            parts.append(self._sp.decode(run))
        text = " ".join(p.strip() for p in parts if p.strip())
        if not skip_special_tokens:
            text = text.replace("\u2047", UNK_TOKEN)
        return text

    def batch_decode(self, seqs: Iterable[Iterable[int]], skip_special_tokens: bool = True,
                     clean: bool = True) -> list[str]:
        return [self.decode(s, skip_special_tokens=skip_special_tokens, clean=clean) for s in seqs]

    def __repr__(self) -> str:
        return f"Tokenizer(kind={self.kind!r}, vocab_size={self.vocab_size}, source={self.source!r})"


def _flatten_ids(ids) -> list:
    if hasattr(ids, "tolist"):  # torch / numpy
        ids = ids.tolist()
    return list(ids)


def _import_sentencepiece():
    try:
        import sentencepiece as spm
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("sentencepiece tokenizers need the sentencepiece package: pip install sentencepiece") from e
    return spm


def _sp_special_ids(sp) -> dict[str, Optional[int]]:
    """Find the reserved pieces of a sentencepiece model (ours, or a foreign one where possible)."""

    def piece(p: str) -> Optional[int]:
        i = sp.piece_to_id(p)
        return i if sp.id_to_piece(i) == p else None

    ids = {r: piece(t) for r, t in zip(_ROLES, (PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN))}
    fallback = {"pad": sp.pad_id(), "unk": sp.unk_id(), "cls": sp.bos_id(), "sep": sp.eos_id()}
    for r, i in fallback.items():
        if ids[r] is None and i is not None and i >= 0:
            ids[r] = i
    if ids["mask"] is None:
        for alt in ("<mask>", "[mask]", "<MASK>"):
            if piece(alt) is not None:
                ids["mask"] = piece(alt)
                break
    return ids


_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")


def train_sentencepiece(
    texts: Sequence[str],
    out_dir: str | os.PathLike,
    vocab_size: int,
    model_type: str = "unigram",
    lowercase: bool = True,
    character_coverage: float = 1.0,
) -> Tokenizer:
    """Train a sentencepiece model on ``texts`` and save it as ``out_dir/spiece.model``.

    Reserved pieces get fixed ids: ``[PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4``
    (no BOS/EOS pieces; [CLS]/[SEP] play those roles). ``lowercase=True`` bakes case folding
    into the model's normaliser, so encoding lowercases automatically.

    If the corpus cannot support ``vocab_size`` pieces, the size is lowered to the largest one
    sentencepiece reports as possible, with one warning. Training is single-threaded and uses
    every input line (no sampling), so the same texts give the same model.
    Each text is split on newlines; each non-empty line is one training sentence.
    """
    spm = _import_sentencepiece()
    if model_type not in ("unigram", "bpe", "char", "word"):
        raise ValueError(f"model_type must be one of unigram, bpe, char, word; got {model_type!r}")
    sentences = [ln.strip() for t in texts for ln in str(t).splitlines()]
    sentences = [s for s in sentences if s]
    if not sentences:
        raise ValueError("train_sentencepiece got no non-empty text to train on")
    min_size = len(SPM_RESERVED) + 1
    if vocab_size < min_size:
        raise ValueError(f"vocab_size={vocab_size} is too small (need at least {min_size})")
    max_len = max(4192, max(len(s.encode("utf-8")) for s in sentences) + 1)

    def _train(size: int) -> bytes:
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=buf,
            vocab_size=size,
            model_type=model_type,
            pad_id=SPM_RESERVED[PAD_TOKEN],
            pad_piece=PAD_TOKEN,
            unk_id=SPM_RESERVED[UNK_TOKEN],
            unk_piece=UNK_TOKEN,
            bos_id=-1,
            eos_id=-1,
            control_symbols=[CLS_TOKEN, SEP_TOKEN, MASK_TOKEN],
            normalization_rule_name="nmt_nfkc_cf" if lowercase else "nmt_nfkc",
            character_coverage=character_coverage,
            num_threads=1,
            input_sentence_size=0,
            shuffle_input_sentence=False,
            max_sentence_length=max_len,
            minloglevel=2,
        )
        return buf.getvalue()

    size = int(vocab_size)
    warned = False
    for _ in range(5):
        try:
            data = _train(size)
            break
        except RuntimeError as e:
            msg = str(e)
            m = _TOO_HIGH.search(msg)
            if m is not None and int(m.group(2)) < size:
                new = int(m.group(2))
                if new < min_size:
                    raise ValueError(
                        f"the corpus supports only {new} sentencepiece pieces; too little text to train on"
                    ) from e
                if not warned:
                    warnings.warn(
                        f"train_sentencepiece: the corpus cannot support vocab_size={vocab_size}; "
                        f"using {new} instead",
                        stacklevel=2,
                    )
                    warned = True
                size = new
                continue
            if "smaller than required_chars" in msg or "required_chars" in msg:
                raise ValueError(f"vocab_size={size} is smaller than the number of distinct characters: {msg}") from e
            raise
    else:  # pragma: no cover - sentencepiece kept refusing
        raise RuntimeError(f"sentencepiece training did not converge on a vocabulary size (last tried {size})")

    tok = Tokenizer._from_sp_bytes(data, source=str(out_dir))
    if not warned and tok.vocab_size < vocab_size:  # e.g. model_type="char" ignores vocab_size
        warnings.warn(
            f"train_sentencepiece: model has {tok.vocab_size} pieces, fewer than the requested {vocab_size}",
            stacklevel=2,
        )
    got = {p: tok._sp.piece_to_id(p) for p in SPM_RESERVED}
    if got != SPM_RESERVED:  # pragma: no cover - guards sentencepiece behaviour changes
        raise RuntimeError(f"sentencepiece put the reserved pieces at {got}, expected {SPM_RESERVED}")
    tok.save(out_dir)
    return tok
