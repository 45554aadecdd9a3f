"""Documents for pretraining and the MLM warm-up: loading (files, offline corpora, `datasets`
sources), de-duplication, a held-out split that depends on nothing but the text, sentence
splitting, and chunking into token-id sequences.

Two ways through the same steps: :func:`load_documents` holds the documents in memory;
:func:`document_stream` and :func:`write_chunks` read them as a stream (a ``datasets``
``streaming=True`` source) and keep the training sequences on disk (:class:`TokenChunks`), so
that a corpus larger than memory trains. Both give the same sequences in the same order.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import warnings
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
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


def _corpus(name: str) -> list[str]:
    if name not in CORPORA:
        raise DataError(f"--corpus {name!r}: choose one of {', '.join(CORPORA)}")
    try:
        return bbc_documents() if name == "bbc" else wikipedia_documents()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise DataError(f"--corpus {name}: {e}") from None


def load_documents(text_files: Sequence[str] = (), corpora: Sequence[str] = (), text_field: str = "text",
                   limit: Optional[int] = None, datasets: Sequence[str] = (), split: str = "train") -> Documents:
    """Documents from files (:func:`genbert.data.read_documents`: JSONL with ``text_field``, or
    blank-line-separated blocks), named offline corpora and `datasets` sources (column
    ``text_field`` of split ``split``, see :mod:`genbert.data.sources`), in that order. Exact
    duplicates (case and whitespace ignored) are dropped; ``limit`` keeps the first N documents."""
    from .sources import iter_documents
    raw: list[str] = []
    sources: dict[str, int] = {}
    for f in text_files or ():
        docs = read_documents(f, text_field)
        sources[str(f)] = len(docs)
        raw += docs
    for name in corpora or ():
        docs = _corpus(name)
        sources[name] = len(docs)
        raw += docs
    for spec in datasets or ():
        docs = list(iter_documents(spec, split, text_field))
        sources[spec] = len(docs)
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


@dataclass
class StreamStats:
    """What a pass over a document stream saw."""

    sources: dict[str, int] = field(default_factory=dict)  # source -> documents read
    duplicates: int = 0
    documents: int = 0  # unique documents used (after the limit)
    heldout: int = 0  # of which held out (only the first ``heldout_limit`` are kept)


def document_stream(text_files: Sequence[str] = (), corpora: Sequence[str] = (), datasets: Sequence[str] = (),
                    text_field: str = "text", split: str = "train", limit: Optional[int] = None,
                    stats: Optional[StreamStats] = None) -> Iterator[str]:
    """The documents of :func:`load_documents`, in the same order and de-duplicated the same way,
    one at a time: `datasets` sources are read with ``streaming=True``; only a digest of each
    document seen is kept (to drop duplicates). Counts go into ``stats``."""
    from .sources import iter_documents
    stats = stats if stats is not None else StreamStats()

    def raw() -> Iterator[tuple[str, str]]:
        for f in text_files or ():
            for doc in read_documents(f, text_field):
                yield str(f), doc
        for name in corpora or ():
            for doc in _corpus(name):
                yield name, doc
        for spec in datasets or ():
            for doc in iter_documents(spec, split, text_field, streaming=True):
                yield spec, doc

    seen: set[bytes] = set()
    for source, text in raw():
        stats.sources[source] = stats.sources.get(source, 0) + 1
        key = _norm(text)
        if not key:
            continue
        digest = hashlib.blake2b(key.encode("utf-8"), digest_size=12).digest()
        if digest in seen:
            stats.duplicates += 1
            continue
        seen.add(digest)
        stats.documents += 1
        yield text
        if limit is not None and stats.documents >= limit:
            return


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


def stream_heldout(texts: Iterable[str], fraction: float, heldout: list[str], heldout_limit: int,
                   stats: Optional[StreamStats] = None) -> Iterator[str]:
    """The training documents of a stream: those :func:`split_heldout` would keep (a hash of the
    text at or above ``fraction``). The held-out ones are appended to ``heldout`` (the first
    ``heldout_limit``; sort them with :func:`heldout_order` when the stream is done)."""
    for text in texts:
        if fraction > 0 and _unit(text) < fraction:
            if stats is not None:
                stats.heldout += 1
            if len(heldout) < heldout_limit:
                heldout.append(text)
            continue
        yield text


def heldout_order(texts: Sequence[str]) -> list[str]:
    """Held-out documents in the order :func:`split_heldout` gives them (by hash)."""
    return sorted(texts, key=_unit)


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


class TokenChunks(Sequence[list[int]]):
    """Token-id chunks kept on disk: one flat int32 file, memory-mapped, and the chunk offsets
    (8 bytes a chunk) in memory. ``chunks[i]`` is a list of ints, like an item of
    :func:`chunk_documents`; made by :func:`write_chunks`."""

    IDS = "ids.int32"

    def __init__(self, directory: str | os.PathLike, offsets: array) -> None:
        import numpy as np
        self.directory = Path(directory)
        self.offsets = offsets
        n = offsets[-1] if len(offsets) else 0
        self._ids = np.memmap(self.directory / self.IDS, dtype=np.int32, mode="r", shape=(n,)) if n else \
            np.zeros(0, dtype=np.int32)

    def __len__(self) -> int:
        return max(0, len(self.offsets) - 1)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._ids[self.offsets[i]:self.offsets[i + 1]].tolist()

    def lengths(self, extra: int = 0) -> list[int]:
        """Each chunk's length plus ``extra`` (for the Trainer's length bucketing)."""
        o = self.offsets
        return [o[i + 1] - o[i] + extra for i in range(len(self))]

    def remove(self) -> None:
        """Delete the files (the chunks are not usable after)."""
        self._ids = None
        shutil.rmtree(self.directory, ignore_errors=True)


def write_chunks(tokenizer: Tokenizer, texts: Iterable[str], max_length: int, directory: str | os.PathLike,
                 batch: int = 1000) -> TokenChunks:
    """:func:`chunk_documents` of ``texts`` (same chunks, same order), written to ``directory`` as
    they are made: only ``batch`` documents are in memory at a time."""
    import numpy as np
    d = Path(directory)
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    offsets = array("q", [0])
    pending: list[str] = []
    with open(d / TokenChunks.IDS, "wb") as f:
        def flush() -> None:
            for chunk in chunk_documents(tokenizer, pending, max_length):
                f.write(np.asarray(chunk, dtype=np.int32).tobytes())
                offsets.append(offsets[-1] + len(chunk))
            pending.clear()
        for text in texts:
            pending.append(text)
            if len(pending) >= batch:
                flush()
        flush()
    return TokenChunks(d, offsets)


def sentence_documents(tokenizer: Tokenizer, texts: Sequence[str]) -> list[list[list[int]]]:
    """Documents as lists of tokenized sentences (for next-sentence prediction)."""
    sents = [split_sentences(t) for t in texts]
    flat = _encode_all(tokenizer, [s for doc in sents for s in doc])
    out, k = [], 0
    for doc in sents:
        out.append([ids for ids in flat[k:k + len(doc)] if ids])
        k += len(doc)
    return out
