"""Documents for pretraining and the MLM warm-up: loading, de-duplication, a held-out split that
depends on nothing but the text, sentence splitting, and chunking into token-id sequences."""
from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass, field
from typing import Optional, Sequence

from ..tokenization import Tokenizer
from .datasets import DataError, bbc_documents, read_documents, wikipedia_documents

CORPORA = ("bbc", "wikipedia")  # offline corpora: 2,225 BBC News articles; gensim's small Wikipedia dump


@dataclass
class Documents:
    texts: list[str]
    sources: dict[str, int] = field(default_factory=dict)  # source name -> documents read
    duplicates: int = 0  # dropped as duplicates of an earlier document


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def load_documents(text_files: Sequence[str] = (), corpora: Sequence[str] = (), text_field: str = "text",
                   limit: Optional[int] = None) -> Documents:
    """Documents from files (:func:`genbert.data.read_documents`: JSONL with ``text_field``, or
    blank-line-separated blocks) and named offline corpora, in that order. Exact duplicates
    (case and whitespace ignored) are dropped; ``limit`` keeps the first N documents."""
    raw: list[str] = []
    sources: dict[str, int] = {}
    for f in text_files or ():
        docs = read_documents(f, text_field)
        sources[str(f)] = len(docs)
        raw += docs
    for name in corpora or ():
        if name not in CORPORA:
            raise DataError(f"--corpus {name!r}: choose one of {', '.join(CORPORA)}")
        try:
            docs = bbc_documents() if name == "bbc" else wikipedia_documents()
        except (ModuleNotFoundError, FileNotFoundError) as e:
            raise DataError(f"--corpus {name}: {e}") from None
        sources[name] = len(docs)
        raw += docs
    seen: set[str] = set()
    texts: list[str] = []
    for t in raw:
        key = _norm(t)
        if key and key not in seen:
            seen.add(key)
            texts.append(t)
    out = Documents(texts, sources, len(raw) - len(texts))
    if limit is not None:
        out.texts = out.texts[:limit]
    return out


def _unit(text: str) -> float:
    """A uniform number in [0, 1) from the document's normalised text."""
    return int(hashlib.sha1(_norm(text).encode("utf-8")).hexdigest()[:15], 16) / 16 ** 15


@dataclass
class HeldoutSplit:
    train: list[str]
    heldout: list[str]

    @property
    def fingerprint(self) -> str:
        """sha1 over the held-out documents' normalised texts (in held-out order)."""
        h = hashlib.sha1()
        for t in self.heldout:
            h.update(_norm(t).encode("utf-8") + b"\0")
        return h.hexdigest()[:16]


def split_heldout(texts: Sequence[str], fraction: float = 0.05) -> HeldoutSplit:
    """Hold out about ``fraction`` of the documents: a document is held out when a hash of its
    normalised text falls below ``fraction``, so the split depends on nothing else (not the
    order, not the other documents, not the training seed). At least one document is held out
    (when ``fraction > 0``) and at least one is kept for training. Held-out documents come in
    hash order; training documents keep their order."""
    if fraction <= 0:
        return HeldoutSplit(list(texts), [])
    if len(texts) < 2:
        raise DataError(f"{len(texts)} document(s): at least 2 are needed to hold some out for evaluation "
                         "(or pass --heldout-fraction 0)")
    u = [_unit(t) for t in texts]
    held = {i for i, x in enumerate(u) if x < fraction}
    order = sorted(range(len(texts)), key=lambda i: u[i])
    if not held:
        held = {order[0]}
    if len(held) == len(texts):
        held.discard(order[-1])
    return HeldoutSplit([t for i, t in enumerate(texts) if i not in held],
                        [texts[i] for i in sorted(held, key=lambda i: u[i])])


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Sentences of a document: every line, split after ``.``/``!``/``?`` before a capital or digit."""
    out = []
    for line in text.split("\n"):
        line = line.strip()
        if line:
            out += [s.strip() for s in _SENTENCE_END.split(line) if s.strip()]
    return out


def _encode_all(tokenizer: Tokenizer, texts: Sequence[str], batch: int = 1000) -> list[list[int]]:
    out: list[list[int]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(0, len(texts), batch):
            out += tokenizer.batch_encode(list(texts[i:i + batch]))
    return out


def chunk_documents(tokenizer: Tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token-id chunks (no special tokens) of at most ``max_length - 2`` ids (room for [CLS] and
    [SEP]), in document order. A document's last chunk is dropped when it is shorter than an
    eighth of a chunk, unless it is the document's only one."""
    size = max_length - 2
    out: list[list[int]] = []
    for ids in _encode_all(tokenizer, texts):
        pieces = [ids[i:i + size] for i in range(0, len(ids), size)]
        if len(pieces) > 1 and len(pieces[-1]) < size / 8:
            pieces.pop()
        out += [p for p in pieces if p]
    return out


def sentence_documents(tokenizer: Tokenizer, texts: Sequence[str]) -> list[list[list[int]]]:
    """Documents as lists of tokenized sentences (for next-sentence prediction)."""
    sents = [split_sentences(t) for t in texts]
    flat = _encode_all(tokenizer, [s for doc in sents for s in doc])
    out, k = [], 0
    for doc in sents:
        out.append([ids for ids in flat[k:k + len(doc)] if ids])
        k += len(doc)
    return out
