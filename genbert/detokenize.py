"""Readable text from WordPiece output: punctuation rejoined the way news text writes it.

BERT's basic tokenizer splits every punctuation character into a token of its own, so the
spacing around punctuation is lost ("e-cigarette" -> ``e - cigarette``, "don't" -> ``don ' t``,
"5.3%" -> ``5 . 3 %``). :func:`detokenize` puts it back with the conventions of English prose:

* no space before ``, . ; : ! ? % ) ] }`` and none after ``( [ { $ £ € ¥ #``;
* hyphens and slashes join their neighbours ("all-time", "3-1", "and/or");
* digits keep their separators ("5.3", "2,500", "10:30"), letter-dot acronyms stay whole
  ("u.s."), short ampersand names too ("q&a", "m&s");
* apostrophes: contractions and possessives attach to both sides ("don't", "al-rimi's"),
  elisions after o/d/l too ("o'neill"); the remaining apostrophes and double quotes are paired
  in order: an opening quote attaches to the word after it, a closing one to the word before
  it. With an odd count, one apostrophe after a word ending in "s" is a plural possessive
  ("dems' new"); a lone quote that ends the text after a word closes nothing and is dropped
  (a generated "takeover bid'").

Sentencepiece output needs none of this: its pieces carry the spaces (see
:meth:`genbert.tokenization.Tokenizer.decode`).
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

__all__ = ["detokenize", "wordpiece_words"]

_NO_SPACE_BEFORE = frozenset(",.;:!?%)]}…")
_NO_SPACE_AFTER = frozenset("([{$£€¥#")
_JOIN_BOTH = frozenset("-/")
_APOSTROPHES = frozenset("'’`")
_DOUBLE_QUOTES = frozenset('"“”')
_CLITICS = frozenset({"s", "t", "re", "ve", "ll", "d", "m"})  # the word after an apostrophe in a contraction
_ELIDED = frozenset({"o", "d", "l"})  # o'neill, d'ivoire, l'oreal
# a hyphen before one of these is a spaced dash ("results - with luxury ..."); compounds never end so
_DASH_NEXT = frozenset({"an", "with", "which", "who", "whose", "aka", "including", "but", "while", "where",
                        "when", "because", "although", "though", "is", "was", "are", "were", "he", "she",
                        "they", "we", "this", "these", "those", "not", "if"})

_THOUSANDS_LEFT = re.compile(r"(?:^|\D)\d{1,3}$")
_THOUSANDS_RIGHT = re.compile(r"\d{3}(?:\D|$)")

_OPEN, _CLOSE, _BOTH, _DROP = "open", "close", "both", "drop"


def wordpiece_words(tokens: Sequence[str], prefix: str = "##") -> list[str]:
    """WordPiece tokens -> words: each ``##`` piece is glued to the one before it.

    tokens: the vocabulary entries, in order (special tokens already removed or kept as words).
    """
    words: list[str] = []
    for tok in tokens:
        if tok.startswith(prefix) and len(tok) > len(prefix):
            piece = tok[len(prefix):]
            if words:
                words[-1] += piece
            else:  # a generated text may start with a continuation piece
                words.append(piece)
        else:
            words.append(tok)
    return words


def _is_word(w: Optional[str]) -> bool:
    return bool(w) and w[0].isalnum() and w[-1].isalnum()


def _digits(w: Optional[str]) -> bool:
    return bool(w) and w.isdigit()


def _quote_roles(words: Sequence[str]) -> dict[int, str]:
    """For each apostrophe or double quote: _OPEN, _CLOSE, _BOTH (attached on both sides) or _DROP."""
    roles: dict[int, str] = {}
    singles: list[int] = []
    doubles: list[int] = []
    n = len(words)
    for i, w in enumerate(words):
        prev = words[i - 1] if i else None
        nxt = words[i + 1] if i + 1 < n else None
        if w in _APOSTROPHES:
            if _is_word(prev) and nxt in _CLITICS:
                roles[i] = _BOTH  # don't, it's, we're, nhs's
            elif prev in _ELIDED and _is_word(nxt):
                roles[i] = _BOTH  # o'neill, cote d'ivoire
            else:
                singles.append(i)
        elif w in _DOUBLE_QUOTES:
            doubles.append(i)
    if len(singles) % 2:
        # one of them is not a quote: a plural possessive ("dems' new") if one looks like it,
        # else the last one (a quote a truncated output never closed)
        poss = [i for i in singles if _is_word(words[i - 1] if i else None) and words[i - 1].endswith("s")
                and i + 1 < n and (_is_word(words[i + 1]) or words[i + 1] in _APOSTROPHES | _DOUBLE_QUOTES)]
        odd = poss[-1] if poss else singles[-1]
        alone = len(singles) == 1
        singles.remove(odd)
        at_end = odd + 1 >= n or not _is_word(words[odd + 1])
        roles[odd] = _CLOSE if at_end or odd in poss else _OPEN
        if alone and odd == n - 1 and odd not in poss and odd and _is_word(words[odd - 1]):
            roles[odd] = _DROP  # closes a quote never opened
    for group in (singles, doubles):
        for k, i in enumerate(group):
            roles[i] = _OPEN if k % 2 == 0 else _CLOSE
    return roles


def _space_between(words: Sequence[str], i: int, roles: dict[int, str]) -> bool:
    """Whether a space goes between words[i - 1] and words[i]."""
    a, b = words[i - 1], words[i]
    before = words[i - 2] if i >= 2 else None
    after = words[i + 1] if i + 1 < len(words) else None
    # the role of a quote decides first
    if roles.get(i) in (_CLOSE, _BOTH) or roles.get(i - 1) in (_OPEN, _BOTH):
        return False
    if roles.get(i) == _OPEN:
        return a not in _NO_SPACE_AFTER and roles.get(i - 1) != _OPEN
    if roles.get(i - 1) == _CLOSE:  # a hyphen after a closing quote is a dash: 'unjustified' - chirac
        return b not in _NO_SPACE_BEFORE
    if (a == "-" and (roles.get(i - 2) == _CLOSE or b in _DASH_NEXT)) or (b == "-" and after in _DASH_NEXT):
        return True
    if b in _JOIN_BOTH or a in _JOIN_BOTH:
        return False
    if a in _NO_SPACE_AFTER:
        return False
    if b in _NO_SPACE_BEFORE:
        return False
    # after a separator: numbers and acronyms stay whole
    if a == "." and ((before and before[-1:].isdigit() and b[:1].isdigit())
                     or (len(before or "") == 1 and before.isalpha() and len(b) == 1 and b.isalpha())
                     or b == "."):
        return False
    if a == "," and _THOUSANDS_LEFT.search(before or "") and _THOUSANDS_RIGHT.match(b):
        return False  # 2,500  £100,000  5,000m
    if a == ":" and _digits(before) and _digits(b):
        return False
    if b == "&" or a == "&":
        left, right = (a, after) if b == "&" else (before, b)
        return not (_is_word(left) and _is_word(right) and len(left) <= 2 and len(right) <= 2)
    return True


def detokenize(words: Sequence[str]) -> str:
    """Join words and punctuation tokens into text with news-style spacing (see the module doc).

    words: whole words and single punctuation characters, e.g. ``wordpiece_words(tokens)``.
    """
    words = [w for w in words if w]
    if not words:
        return ""
    roles = _quote_roles(words)
    if _DROP in roles.values():
        words = [w for i, w in enumerate(words) if roles.get(i) != _DROP]
        roles = _quote_roles(words)
    out = [words[0]]
    for i in range(1, len(words)):
        if _space_between(words, i, roles):
            out.append(" ")
        out.append(words[i])
    return "".join(out)
