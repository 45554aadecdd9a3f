"""Clean text out: WordPiece decoding rejoins punctuation the way news text writes it."""
import pytest

from genbert.detokenize import detokenize, wordpiece_words

# lower-case (the WordPiece vocabulary is uncased), each a round trip through encode/decode
TRICKY = [
    "e-cigarette sales rise in the u.s.",
    "al-rimi's son says \"we don't know\" about the raid",
    "raid: police hold two after crisis, says minister",
    "growth at 5.3% in 2004",
    "£1.5bn deal for ryanair",
    "chelsea win 3-1 at home (sat)",
    "q&a: the budget",
    "voters 'don't trust politicians'",
    "'comeback' show for friends star",
    "soaring oil 'hits world economy'",
    "lib dems' new election pr chief",
    "lib dems' 'bold' election policy",
    "hague's six-figure earnings shown",
    "us insurer marsh cuts 2,500 jobs at 10:30 today",
    "o'neill returns. is it over? yes!",
    "it's a u.s.-led plan; they're sure",
    "what's next... nobody knows",
    "oil hits $53 and/or more",
    "results - with luxury retailers faring well",
    "uk rebate 'unjustified' - chirac",
]


@pytest.mark.parametrize("text", TRICKY)
def test_wordpiece_round_trip_of_tricky_text(wordpiece, text):
    assert wordpiece.decode(wordpiece.encode(text)) == text


def test_detokenize_words():
    assert detokenize([]) == ""
    assert detokenize(["he", "said", '"', "no", '"', "."]) == 'he said "no".'
    assert detokenize(["don", "'", "t", "stop", "-", "me", "now", "!"]) == "don't stop-me now!"
    ticking = ["the", "'", "ticking", "budget", "'", "facing", "the", "us"]
    assert detokenize(ticking) == "the 'ticking budget' facing the us"
    assert detokenize(["(", "sat", ")", ",", "then", "$", "5", ".", "3bn"]) == "(sat), then $5.3bn"
    # a lone apostrophe: a plural possessive after a word ending in "s", else a quote never closed
    assert detokenize(["fans", "'", "hail", "win"]) == "fans' hail win"
    assert detokenize(["he", "said", "'", "hail", "win"]) == "he said 'hail win"
    # a lone quote ending the text after a word closes nothing: dropped
    assert detokenize(["domecq", "'", "s", "takeover", "bid", "'"]) == "domecq's takeover bid"
    assert detokenize(["oil", "'", "hits", "economy", "'"]) == "oil 'hits economy'"  # a pair stays
    assert detokenize(["the", "fans", "'", "win"]) == "the fans' win"  # a possessive is kept
    assert detokenize(["[CLS]", "hello", "[SEP]"]) == "[CLS] hello [SEP]"


def test_wordpiece_words():
    assert wordpiece_words(["dev", "##os", "confirms", "##s", "'"]) == ["devos", "confirmss", "'"]
    assert wordpiece_words(["##os", "x"]) == ["os", "x"]  # generation may start mid-word
    assert wordpiece_words(["##"]) == ["##"]


def test_decode_clean_is_default_and_can_be_turned_off(wordpiece):
    ids = wordpiece.encode("an all-time high")
    assert wordpiece.decode(ids) == "an all-time high"
    assert wordpiece.decode(ids, clean=False) == "an all - time high"  # transformers' decoding
    assert wordpiece.batch_decode([ids, ids], clean=False) == ["an all - time high"] * 2
    full = wordpiece.encode("all-time", add_special_tokens=True)
    assert wordpiece.decode(full, skip_special_tokens=False) == "[CLS] all-time [SEP]"


def test_bbc_headlines_round_trip(wordpiece, titles):
    """200 BBC headlines: encode, decode, compare with the lower-cased headline (whitespace
    normalised). transformers' decoding gives back about 75% (149/200); clean decoding all
    but the unrecoverable ("taxes must be trusted - kennedy" reads as a hyphenated word)."""
    def share(**kw):
        return sum(wordpiece.decode(wordpiece.encode(t), **kw) == " ".join(t.lower().split())
                   for t in titles) / len(titles)
    before, after = share(clean=False), share()
    assert before < 0.8
    assert after >= 0.97


def test_sentencepiece_round_trips_already(spm_tok, titles):
    """Sentencepiece pieces carry their spaces: decoding gives the (lower-cased) text back."""
    same = sum(spm_tok.decode(spm_tok.encode(t)) == " ".join(t.lower().split()) for t in titles)
    assert same / len(titles) >= 0.97
    text = "lib dems' 'bold' e-cigarette plan: 5.3%"
    assert spm_tok.decode(spm_tok.encode(text), clean=False) == spm_tok.decode(spm_tok.encode(text))
