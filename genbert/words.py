"""Words as a reader sees them, for generation constraints and for the stutter metric.

Token-level n-gram blocking (``no_repeat_ngram_size``) misses repeats a reader sees at once:
"devos confirms devos" (``dev ##os`` twice: no repeated token trigram), "bomb bomb", "nhs's nhs
trust". :class:`WordVocab` reads word boundaries off the vocabulary (WordPiece ``##``
continuations, sentencepiece ``▁`` word starts; a punctuation token ends a word) so that
generation can block repeated *words*:

* ``no_repeat_word_ngram_size=n``: no word n-gram occurs twice;
* ``no_repeat_content_words=True``: no content word (:func:`is_content_word`) occurs twice;
* ``copy_subwords=True``: a word of several pieces is a word of the source, spelled piece by
  piece (:class:`SourceWords`), so rare words and names are copied, never invented;
* ``copy_numbers=True``: a number is a number of the source, whole (:class:`SourceNumbers`), so
  figures are copied, never made up of pieces of several ("76.1.13bn", "fewer-000").

A word counts as chosen at its first piece (its *head*, :meth:`WordVocab.head`), so a repeat is
blocked there, not halfway through the word: after "devos" (``dev ##os``), ``dev`` cannot start
a word again (nor can any other word that starts with ``dev``).
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any, Optional, Sequence

__all__ = ["FUNCTION_WORDS", "is_content_word", "content_words", "stem", "WordVocab", "SourceWords",
           "SourceNumbers"]

# English function words, and the fragments BERT's tokenizer leaves of contractions (don ' t). Not
# "us": in lowercased news it is the country ("us jobs fall in us job rate") far more than the pronoun
FUNCTION_WORDS = frozenset("""
a about above after against ago all along also although am among an and another any are around as at
be because been before being below between both but by can could did do does doing down during each
either even ever every few for from further had has have having he her here hers herself him himself his
how i if in into is it its itself just least less many may me might mine more most much must my myself
near neither no nor not now of off on once one only onto or other our ours ourselves out over own per
same shall she should since so some such than that the their theirs them themselves then there these
they this those though through till to too toward towards under unless until up upon very via vs
was we were what whatever when where whether which while who whom whose why will with within without
would yet you your yours yourself yourselves
s t d ll m re ve don isn aren wasn weren doesn didn hasn haven hadn couldn wouldn shouldn mustn ain
""".split())

_WORD_CHARS = re.compile(r"[^\W_]+")


def is_content_word(word: str) -> bool:
    """A word that says something: two or more characters, not a function word (case-insensitive).
    So a number of two or more digits counts ("2005", the "40" of "40%"), a one-digit one ("3")
    does not. Until session 12 numbers did not count, and 3.1% of the default model's BBC
    validation headlines repeated one ("ba airways hits 40% in 40%")."""
    w = word.lower()
    return len(w) >= 2 and w not in FUNCTION_WORDS


def content_words(text: str) -> list[str]:
    """The content words of a text, lower-cased, in order. Words are runs of letters and digits,
    so "nhs's" gives "nhs" (and "s"), "e-cigarette" gives "e" and "cigarette"."""
    return [w for w in _WORD_CHARS.findall(text.lower()) if is_content_word(w)]


@lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """The Porter stem of a lower-cased word, as ROUGE stems it ("tests" -> "test")."""
    return _stemmer().stem(word)


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    from nltk.stem import porter  # rouge-score's dependency; imported on first use
    return porter.PorterStemmer()


def _unsigned(text: str) -> str:
    """``text`` without the currency signs it starts with ("£5" -> "5")."""
    i = 0
    while i < len(text) and unicodedata.category(text[i]) == "Sc":
        i += 1
    return text[i:]


def _is_punctuation(text: str) -> bool:
    return bool(text) and all(unicodedata.category(c)[0] in "PSZ" for c in text)


START, CONT, SEP = 0, 1, 2  # a token that starts a word, continues one, or separates words
# punctuation that joins the digit groups of one number ("5.3", "146,000", "3:30", "2-1", "24/7")
NUMBER_JOINERS = frozenset(".,:-/")


class WordVocab:
    """Word boundaries of a vocabulary: for each token id, its kind (``START``, ``CONT`` or
    ``SEP`` for special and punctuation tokens) and its characters (lower-cased, markers
    removed). Ids beyond the vocabulary (a padded embedding matrix) are separators.

    Build it with :meth:`from_tokenizer`; generation takes it as ``word_vocab=``.
    """

    def __init__(self, kinds: Sequence[int], surfaces: Sequence[str]):
        if len(kinds) != len(surfaces):
            raise ValueError("kinds and surfaces differ in length")
        self.kinds = list(kinds)
        self.surfaces = list(surfaces)
        self._content: Optional[list[bool]] = None
        self._continuations: Optional[list[int]] = None
        self._stem_mates: Optional[dict[str, list[int]]] = None
        self._digits: Optional[list[bool]] = None

    def __len__(self) -> int:
        return len(self.kinds)

    @classmethod
    def from_tokens(cls, tokens: Sequence[Optional[str]], special_ids: Sequence[int] = (),
                    sentencepiece: bool = False) -> "WordVocab":
        """From the vocabulary entries in id order (None: an id without an entry)."""
        special = set(special_ids)
        kinds, surfaces = [], []
        for i, tok in enumerate(tokens):
            if tok is None or i in special:
                kinds.append(SEP)
                surfaces.append("")
                continue
            if sentencepiece:
                starts, text = tok.startswith("\u2581"), tok.lstrip("\u2581")
            else:
                starts = not (tok.startswith("##") and len(tok) > 2)
                text = tok if starts else tok[2:]
            kinds.append(SEP if _is_punctuation(text) else START if starts else CONT)
            surfaces.append(text.lower())
        return cls(kinds, surfaces)

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> "WordVocab":
        """From a :class:`genbert.tokenization.Tokenizer` (WordPiece or sentencepiece)."""
        tokens = [tokenizer.id_to_token(i) for i in range(len(tokenizer))]
        return cls.from_tokens(tokens, sorted(tokenizer.special_ids), tokenizer.kind == "sentencepiece")

    def continuation_ids(self) -> list[int]:
        """The ids of the tokens that continue a word (``##ing``; a sentencepiece piece without
        ``▁``). Computed once per vocabulary, not once per generate call."""
        if self._continuations is None:
            self._continuations = [i for i, k in enumerate(self.kinds) if k == CONT]
        return self._continuations

    def content_tokens(self) -> list[bool]:
        """Per id: a token that starts a word and is a content word by itself ("profits", not
        "the", "##s" or ","): what masked diffusion, which commits tokens in any order, keeps from
        repeating (see genbert.generation.diffusion_sample). Computed once per vocabulary, not
        once per generate call."""
        if self._content is None:
            self._content = [k == START and is_content_word(s) for k, s in zip(self.kinds, self.surfaces)]
        return self._content

    def stem_mates(self) -> dict[str, list[int]]:
        """Stem -> the ids of the tokens that are by themselves a content word of that stem
        ("test", "tests", "testing"): the words that no_repeat_content_words also blocks once one of
        them is written. Computed once per vocabulary."""
        if self._stem_mates is None:
            mates: dict[str, list[int]] = {}
            for i, content in enumerate(self.content_tokens()):
                if content:
                    mates.setdefault(stem(self.surfaces[i]), []).append(i)
            self._stem_mates = mates
        return self._stem_mates

    def digit_tokens(self) -> list[bool]:
        """Per id: a word piece whose characters start with a digit, after any currency sign ("76",
        "##60", "1990s", "£5": WordPiece keeps "£52" as "£5 ##2"), the token that starts a number or a
        digit group of one. Computed once per vocabulary."""
        if self._digits is None:
            self._digits = [k != SEP and _unsigned(s)[:1].isdigit() for k, s in zip(self.kinds, self.surfaces)]
        return self._digits

    def joiner(self, i: int) -> bool:
        """A punctuation token that joins the digit groups of one number (NUMBER_JOINERS)."""
        return self.kind(i) == SEP and self.surfaces[i] in NUMBER_JOINERS

    # ------------------------------------------------------------------ words of a token sequence
    def kind(self, i: int) -> int:
        """START, CONT or SEP (an id beyond the vocabulary separates)."""
        return self.kinds[i] if 0 <= i < len(self.kinds) else SEP

    def split(self, ids: Sequence[int]) -> tuple[list[tuple[int, ...]], tuple[int, ...]]:
        """The finished words of ``ids`` (token tuples) and the word still open at the end (a
        following ``CONT`` token would extend it; empty after a separator)."""
        words: list[tuple[int, ...]] = []
        cur: list[int] = []
        for i in ids:
            k = self.kind(i)
            if k == CONT:
                cur.append(i)
                continue
            if cur:
                words.append(tuple(cur))
            cur = [i] if k == START else []
        return [w for w in words if self.text(w)], tuple(cur)

    def numbers(self, ids: Sequence[int]) -> tuple[list[tuple[int, ...]], tuple[int, ...]]:
        """The finished numbers of ``ids`` and the number still open at the end (empty when none;
        it may end with a joiner). A number is a digit piece and the continuation pieces after it
        ("13 ##bn", "123 ##45"), then any more such groups each after one joiner ("146 , 000",
        "5 . 3"); a joiner not followed by a digit piece is no part of it ("in 2004 .")."""
        digits = self.digit_tokens()
        found: list[tuple[int, ...]] = []
        cur: list[int] = []
        for i in ids:
            if cur and not self.joiner(cur[-1]) and (self.kind(i) == CONT or self.joiner(i)):
                cur.append(i)
                continue
            if cur and self.joiner(cur[-1]) and 0 <= i < len(digits) and digits[i] and self._joins(cur, i):
                cur.append(i)
                continue
            if cur:
                found.append(tuple(cur[:-1] if self.joiner(cur[-1]) else cur))
            cur = [i] if 0 <= i < len(digits) and digits[i] else []
        return found, tuple(cur)

    def _joins(self, number: list[int], digit: int) -> bool:
        """Whether the joiner that ends ``number`` joins ``digit`` to it. A comma only as a thousands
        separator ("146 , 000"), not between two numbers of a list ("in 2004 , 300 jobs"): the text
        loses the space after the comma, so a group of 1-3 digits, a comma, then 3 digits."""
        if self.surfaces[number[-1]] != ",":
            return True
        group = _unsigned(self.text(number[_last_group(self, number):-1]))
        after = self.surfaces[digit]
        return self.kind(digit) == START and len(after) == 3 and after.isdigit() \
            and 1 <= len(group) <= 3 and group.isdigit()

    def text(self, word: Sequence[int]) -> str:
        return "".join(self.surfaces[i] for i in word if 0 <= i < len(self.surfaces))

    def head(self, word: Sequence[int]) -> tuple[int, ...]:
        """The tokens of ``word`` up to the one at which it is told apart: the first whose prefix
        has characters and is not a function word ("be ##ckham" -> both; a bare sentencepiece
        ``▁`` never alone), or else (a function word) the first with characters."""
        first = None
        for n in range(1, len(word) + 1):
            text = self.text(word[:n])
            if text and first is None:
                first = n
            if text and text not in FUNCTION_WORDS:
                return tuple(word[:n])
        return tuple(word[:first or len(word)])

    # ------------------------------------------------------------------ constraints
    def banned(self, ids: Sequence[int], ngram_size: int = 0, content_words: bool = False) -> set[int]:
        """Token ids that may not come next after ``ids``: those that would start a word that
        repeats a word n-gram (``ngram_size``) or a content word (``content_words``) of ``ids``."""
        if not ngram_size and not content_words:
            return set()
        words, cur = self.split(ids)
        # a word-start token finishes the open word: its context includes it; a token that can only
        # begin a word where the open word stands (after a separator, or after a bare "▁") does not
        closed = words + [cur] if cur and self.text(cur) else words
        out: set[int] = set()

        def allowed_here(head: tuple[int, ...], after_open_word: bool) -> bool:
            last = head[-1]
            if len(head) == 1 and self.kinds[last] == START:
                return after_open_word
            return not after_open_word and (cur == head[:-1] if len(head) > 1 else not cur)

        for context, after_open in ((closed, True), (words, False)):
            if content_words:
                for w in context:
                    head, text = self.head(w), self.text(w)
                    if is_content_word(text):
                        if allowed_here(head, after_open):
                            out.add(head[-1])
                        if after_open:  # nor a one-token word of the same stem ("test" ... "tests")
                            out.update(self.stem_mates().get(stem(text), ()))
            if ngram_size:
                n = ngram_size
                if len(context) < n - 1 or not context:
                    continue
                keys = [self.text(w) for w in context]
                tail = keys[len(keys) - n + 1:] if n > 1 else []
                for j in range(len(context) - n + 1):
                    if keys[j:j + n - 1] == tail:
                        head = self.head(context[j + n - 1])
                        if allowed_here(head, after_open):
                            out.add(head[-1])
        return out


def _continuations(sequences: set[tuple[int, ...]]) -> dict[tuple[int, ...], list[int]]:
    """Each proper prefix of the token ``sequences`` -> the tokens that may follow it, sorted."""
    nexts: dict[tuple[int, ...], set[int]] = {}
    for seq in sequences:
        for m in range(1, len(seq)):
            nexts.setdefault(seq[:m], set()).add(seq[m])
    return {k: sorted(v) for k, v in nexts.items()}


class SourceWords:
    """The multi-piece words of one source, as a table from each proper prefix of such a word (its
    first pieces) to the pieces that may follow it, for ``copy_subwords``: after the open word of a
    generated text, a continuation piece is allowed only where it spells on along a word of the
    source, and a word of two or more pieces that is not yet a whole source word must go on. A model
    that saw a few topics otherwise joins pieces of unseen names into non-words ("usm", "darskft")."""

    def __init__(self, vocab: WordVocab, source: Sequence[int]):
        words, last = vocab.split(source)
        self.whole = set(words + ([last] if last else []))
        self.next = _continuations(self.whole)

    def allowed(self, open_word: tuple[int, ...]) -> tuple[list[int], bool]:
        """(the continuation pieces allowed after ``open_word``, whether the word may end here)."""
        must_go_on = len(open_word) >= 2 and open_word not in self.whole and open_word in self.next
        return self.next.get(open_word, []), not must_go_on


def _last_group(vocab: WordVocab, number: Sequence[int]) -> int:
    """Where the last digit group of ``number`` (ending with a joiner) starts."""
    j = len(number) - 2
    while j > 0 and not vocab.joiner(number[j - 1]):
        j -= 1
    return j


class SourceNumbers:
    """The numbers of one source (:meth:`WordVocab.numbers`), for ``copy_numbers``: a generated
    number must be one of them, whole. Headlines restate the article's figures; a model that half
    remembers them joins the pieces of several ("google profits to 76.1.13bn") or writes a digit
    group of one after a word ("fewer-000"), which a reader takes for a fact."""

    def __init__(self, vocab: WordVocab, source: Sequence[int]):
        found, last = vocab.numbers(source)
        if last:
            found.append(last[:-1] if vocab.joiner(last[-1]) else last)
        self.whole = set(found)
        self.starts = sorted({n[0] for n in self.whole})
        self.next = _continuations(self.whole)

    def allowed(self, open_number: tuple[int, ...]) -> tuple[list[int], bool]:
        """(the pieces that may continue ``open_number`` (:meth:`WordVocab.numbers`), whether it
        may end here). A number that is a proper prefix of a source number only, or that ends
        with a joiner, must go on; one that is no prefix of any is left alone (([], True))."""
        nxt = self.next.get(open_number, [])
        return nxt, not nxt or open_number in self.whole
