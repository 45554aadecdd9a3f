"""genbert.metrics against rouge_score and sacrebleu computed directly."""
from __future__ import annotations

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from genbert import metrics

PREDICTIONS = [
    "The cat is running in the garden. It chased a bird!",
    "Stocks fell 3.5 percent today. Investors were worried?",
    "A short one",
]
REFERENCES = [
    "It chased a bird. The cat runs in the garden.",
    "Investors were worried. Stocks fell by 3.5 percent today.",
    "A short summary here",
]


def _direct_rouge(predictions, references, key, newline_split=False):
    scorer = rouge_scorer.RougeScorer([key], use_stemmer=True)
    total = 0.0
    for p, r in zip(predictions, references):
        if newline_split:
            p, r = "\n".join(metrics.split_sentences(p)), "\n".join(metrics.split_sentences(r))
        total += scorer.score(r, p)[key].fmeasure
    return 100 * total / len(predictions)


# ---------------------------------------------------------------- sentence splitting


@pytest.mark.parametrize(
    "text, expected",
    [
        ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
        ("It rose 3.5 points.", ["It rose 3.5 points."]),
        ("Use tools e.g.x and more. Then stop.", ["Use tools e.g.x and more.", "Then stop."]),
        ("First.\nSecond.\t\tThird.", ["First.", "Second.", "Third."]),
        ("No terminal punctuation", ["No terminal punctuation"]),
        ("  padded.   ", ["padded."]),
        ("", []),
        ("Wait... what? Yes", ["Wait...", "what?", "Yes"]),
        ("a,b; c: d - e", ["a,b; c: d - e"]),
    ],
)
def test_split_sentences(text, expected):
    assert metrics.split_sentences(text) == expected


# ---------------------------------------------------------------- ROUGE


def test_rouge_matches_rouge_score_directly():
    got = metrics.rouge_scores(PREDICTIONS, REFERENCES)
    assert set(got) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    for key in ("rouge1", "rouge2", "rougeL"):
        assert got[key] == pytest.approx(_direct_rouge(PREDICTIONS, REFERENCES, key))
    assert got["rougeLsum"] == pytest.approx(
        _direct_rouge(PREDICTIONS, REFERENCES, "rougeLsum", newline_split=True)
    )


def test_rougelsum_differs_from_rougel_on_reordered_sentences():
    pred = ["a b c d. e f g h."]
    ref = ["e f g h. a b c d."]
    got = metrics.rouge_scores(pred, ref)
    assert got["rougeL"] == pytest.approx(50.0)  # LCS covers one of the two sentences
    assert got["rougeLsum"] == pytest.approx(100.0)  # union-LCS over sentences covers both


def test_rougelsum_without_splitting_would_equal_rougel():
    # Sanity check on the test itself: unsplit text makes rouge_score's rougeLsum == rougeL.
    scorer = rouge_scorer.RougeScorer(["rougeL", "rougeLsum"], use_stemmer=True)
    s = scorer.score("e f g h. a b c d.", "a b c d. e f g h.")
    assert s["rougeL"].fmeasure == pytest.approx(s["rougeLsum"].fmeasure)


def test_stemming_matters():
    got = metrics.rouge_scores(["running"], ["runs"])
    assert got["rouge1"] == pytest.approx(100.0)
    unstemmed = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=False).score("runs", "running")
    assert unstemmed["rouge1"].fmeasure == 0.0


def test_rouge_perfect_match_is_100():
    texts = ["The quick brown fox jumps. Over the lazy dog!", "Hello world"]
    assert metrics.rouge_scores(texts, texts) == pytest.approx(
        {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0, "rougeLsum": 100.0}
    )


def test_rouge_is_mean_over_pairs():
    got = metrics.rouge_scores(["a b", "x y"], ["a b", "p q"])
    assert got["rouge1"] == pytest.approx(50.0)


# ---------------------------------------------------------------- BLEU / chrF


def test_bleu_matches_sacrebleu_directly():
    got = metrics.bleu_scores(PREDICTIONS, REFERENCES)
    assert got["bleu"] == pytest.approx(sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES]).score)
    assert got["chrf"] == pytest.approx(sacrebleu.corpus_chrf(PREDICTIONS, [REFERENCES]).score)
    assert got["signature"].startswith("nrefs:1|")
    assert "tok:13a" in got["signature"]
    assert f"version:{sacrebleu.__version__}" in got["signature"]
    assert "nc:6" in got["chrf_signature"]
    assert got["bleu"] > 0


def test_bleu_perfect_match_is_100():
    texts = ["the cat sat on the mat today", "a dog barked at the mailman loudly"]
    got = metrics.bleu_scores(texts, texts)
    assert got["bleu"] == pytest.approx(100.0)
    assert got["chrf"] == pytest.approx(100.0)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("scorer", [metrics.rouge_scores, metrics.bleu_scores])
def test_length_mismatch_names_both_lengths(scorer):
    with pytest.raises(ValueError, match=r"3 predictions.*2 references"):
        scorer(["a", "b", "c"], ["a", "b"])


@pytest.mark.parametrize("scorer", [metrics.rouge_scores, metrics.bleu_scores])
def test_empty_lists_raise(scorer):
    with pytest.raises(ValueError, match="empty"):
        scorer([], [])


def test_unknown_task_names_allowed_ones():
    with pytest.raises(ValueError, match="summarization.*translation"):
        metrics.score("qa", ["a"], ["a"])
    with pytest.raises(ValueError, match="summarization.*translation"):
        metrics.baselines("qa", ["a"], ["a"])


# ---------------------------------------------------------------- dispatch and baselines


def test_score_dispatch():
    assert metrics.score("summarization", PREDICTIONS, REFERENCES) == metrics.rouge_scores(
        PREDICTIONS, REFERENCES
    )
    assert metrics.score("translation", PREDICTIONS, REFERENCES) == metrics.bleu_scores(
        PREDICTIONS, REFERENCES
    )


def test_lead_words_and_first_sentence():
    text = "one two  three\nfour five six seven eight nine ten eleven twelve"
    assert metrics.lead_words(text) == "one two three four five six seven eight nine ten"
    assert metrics.lead_words(text, k=2) == "one two"
    assert metrics.lead_words("", k=3) == ""
    assert metrics.first_sentence("It rose 3.5 points. Then fell.") == "It rose 3.5 points."
    assert metrics.first_sentence("no punctuation at all") == "no punctuation at all"
    assert metrics.first_sentence("   ") == ""


def test_summarization_baselines():
    sources = [
        "The cat runs in the garden every single morning. It likes birds.",
        "Markets fell. Investors were worried about rates and jobs and growth.",
    ]
    refs = ["The cat runs in the garden.", "Investors were worried."]
    got = metrics.summarization_baselines(sources, refs)
    assert list(got) == ["lead-10", "first-sentence"]
    assert got["lead-10"] == metrics.rouge_scores(
        [
            "The cat runs in the garden every single morning. It",
            "Markets fell. Investors were worried about rates and jobs and",
        ],
        refs,
    )
    assert got["first-sentence"] == metrics.rouge_scores(
        ["The cat runs in the garden every single morning.", "Markets fell."], refs
    )
    assert list(metrics.summarization_baselines(sources, refs, k=3)) == ["lead-3", "first-sentence"]
    assert metrics.baselines("summarization", sources, refs) == got


def test_translation_baselines():
    sources = ["das ist ein kleiner Test heute", "the same sentence in both languages here"]
    refs = ["this is a small test today", "the same sentence in both languages here"]
    got = metrics.translation_baselines(sources, refs)
    assert list(got) == ["copy-source"]
    assert got["copy-source"] == metrics.bleu_scores(sources, refs)
    assert got["copy-source"]["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(sources, [refs]).score
    )
    assert metrics.baselines("translation", sources, refs) == got
