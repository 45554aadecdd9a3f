"""Scoring for generated text: ROUGE for summarization, BLEU/chrF for translation, and baselines.

All scores are on a 0-100 scale. ROUGE numbers are the mean over pairs of `rouge_score`'s F1
(Porter stemming on); BLEU and chrF are sacrebleu's corpus-level scores with default settings.
`repeated_content_word_share` (stutter: "suicide bomb bomb blasts") is a share in [0, 1] and needs
no reference.
"""
from __future__ import annotations

import re
from typing import Any, Optional

from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

from .config import TASKS
from .words import content_words, stem

__all__ = [
    "TASKS",
    "ROUGE_KEYS",
    "split_sentences",
    "rouge_scores",
    "bleu_scores",
    "lead_words",
    "first_sentence",
    "summarization_baselines",
    "translation_baselines",
    "score",
    "baselines",
    "repeated_content_word_share",
]

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")

# A sentence ends after '.', '!' or '?' that is followed by white space ("3.5" and "e.g.x" stay whole).
_SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    """Split `text` after '.', '!' or '?' followed by white space; drop empty pieces."""
    return [piece.strip() for piece in _SENTENCE_BOUNDARY.split(text.strip()) if piece.strip()]


def _check_pairs(predictions: list[str], references: list[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(
            f"predictions and references differ in length: "
            f"{len(predictions)} predictions vs {len(references)} references"
        )
    if not predictions:
        raise ValueError("cannot score an empty list of predictions")


def rouge_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L/Lsum F1 (x100) over prediction/reference pairs.

    For rougeLsum both texts are split into sentences (see `split_sentences`), one per line.
    """
    _check_pairs(predictions, references)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_KEYS, 0.0)
    for prediction, reference in zip(predictions, references):
        plain = scorer.score(reference, prediction)  # rouge_score takes (target, prediction)
        lsum = scorer.score(
            "\n".join(split_sentences(reference)), "\n".join(split_sentences(prediction))
        )
        for key in ("rouge1", "rouge2", "rougeL"):
            totals[key] += plain[key].fmeasure
        totals["rougeLsum"] += lsum["rougeLsum"].fmeasure
    return {key: 100.0 * total / len(predictions) for key, total in totals.items()}


def bleu_scores(predictions: list[str], references: list[str]) -> dict[str, Any]:
    """sacrebleu corpus BLEU and chrF (one reference per prediction), with their signatures."""
    _check_pairs(predictions, references)
    bleu, chrf = BLEU(), CHRF()
    bleu_result = bleu.corpus_score(predictions, [references])
    chrf_result = chrf.corpus_score(predictions, [references])
    return {
        "bleu": float(bleu_result.score),
        "chrf": float(chrf_result.score),
        "signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


def lead_words(text: str, k: int = 10) -> str:
    """The first `k` whitespace-separated words of `text`."""
    return " ".join(text.split()[:k])


def first_sentence(text: str) -> str:
    """The first sentence of `text` (empty string for blank text)."""
    sentences = split_sentences(text)
    return sentences[0] if sentences else ""


def summarization_baselines(
    sources: list[str], references: list[str], k: int = 10
) -> dict[str, dict[str, float]]:
    """ROUGE of the lead-k words and of the first sentence of each source."""
    return {
        f"lead-{k}": rouge_scores([lead_words(s, k) for s in sources], references),
        "first-sentence": rouge_scores([first_sentence(s) for s in sources], references),
    }


def translation_baselines(sources: list[str], references: list[str]) -> dict[str, dict[str, Any]]:
    """BLEU/chrF of copying the source unchanged."""
    return {"copy-source": bleu_scores(list(sources), references)}


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


def score(task: str, predictions: list[str], references: list[str]) -> dict[str, Any]:
    """ROUGE for "summarization", BLEU/chrF for "translation"."""
    _check_task(task)
    if task == "summarization":
        return rouge_scores(predictions, references)
    return bleu_scores(predictions, references)


def baselines(task: str, sources: list[str], references: list[str]) -> dict[str, dict[str, Any]]:
    """The task's reference-free baselines, scored like `score` would score them."""
    _check_task(task)
    if task == "summarization":
        return summarization_baselines(sources, references)
    return translation_baselines(sources, references)


# ---------------------------------------------------------------------- paired bootstrap (Koehn 2004)
def per_example(task: str, predictions: list[str], references: list[str]) -> list[Any]:
    """What a bootstrap resamples: ROUGE-L F1 x100 of each example (summarization), or each
    sentence's BLEU sufficient statistics (translation: corpus BLEU is not a mean of sentence scores)."""
    _check_task(task)
    _check_pairs(predictions, references)
    if task == "summarization":
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
        return [100.0 * scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)]
    return [list(map(int, s)) for s in BLEU()._extract_corpus_statistics(predictions, [references])]


def corpus_score(task: str, items: list[Any]) -> float:
    """The corpus score of `per_example` items: mean ROUGE-L, or BLEU from the summed statistics."""
    if task == "summarization":
        return sum(items) / len(items)
    totals = [sum(col) for col in zip(*items)]
    return float(BLEU()._compute_score_from_stats(totals).score)


def bootstrap(task: str, items: list[Any], other: Optional[list[Any]] = None, resamples: int = 1000,
              seed: int = 0) -> dict[str, Any]:
    """95% confidence interval of the corpus score by resampling the examples with replacement
    (Koehn 2004); with `other` (the same examples scored for another system) also the paired
    interval of the difference score - other, and the share of resamples where it is <= 0."""
    import random
    if other is not None and len(other) != len(items):
        raise ValueError(f"paired bootstrap over {len(items)} and {len(other)} examples")
    rng = random.Random(seed)
    n = len(items)
    scores, diffs = [], []
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        s = corpus_score(task, [items[i] for i in idx])
        scores.append(s)
        if other is not None:
            diffs.append(s - corpus_score(task, [other[i] for i in idx]))

    def ci(xs: list[float]) -> list[float]:
        xs = sorted(xs)
        return [xs[int(0.025 * len(xs))], xs[min(len(xs) - 1, int(0.975 * len(xs)))]]
    out: dict[str, Any] = {"score": corpus_score(task, items), "ci": ci(scores), "resamples": resamples}
    if other is not None:
        out.update(difference=out["score"] - corpus_score(task, other), difference_ci=ci(diffs),
                   p_not_better=sum(d <= 0 for d in diffs) / resamples)
    return out


def repeated_content_word_share(predictions: list[str], stems: bool = False) -> float:
    """Share of `predictions` (0 to 1) in which some content word occurs twice or more:
    case-insensitive, words split at anything but letters and digits ("nhs's nhs" repeats "nhs"),
    function words and numbers ignored (see `genbert.words.content_words`); with `stems`, two
    words of one Porter stem count as a repeat too ("test ... tests"). 0.0 for no predictions."""
    if not predictions:
        return 0.0
    repeated = 0
    for words in map(content_words, predictions):
        keys = [stem(w) for w in words] if stems else words
        repeated += len(set(keys)) < len(keys)
    return repeated / len(predictions)
