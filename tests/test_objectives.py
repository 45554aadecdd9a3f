"""Property tests for genbert.data.objectives (MLM, NSP, infilling, UniLM, seq2seq packers)."""
from __future__ import annotations

import math
import types

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import minilm_dir
from genbert import masks
from genbert.config import GenBertConfig
from genbert.data.objectives import (
    IGNORE_INDEX,
    LAYOUTS,
    UNILM_SCHEMES,
    InfillingCollator,
    MLMCollator,
    NSPCollator,
    NSPExample,
    Seq2SeqCollator,
    SpecialIds,
    UniLMCollator,
    continuation_ids_from_tokenizer,
    infill,
    make_denoising_pair,
    make_nsp_examples,
    mask_tokens,
    permute_sentences,
    special_tokens_mask,
)

V = 200
IDS = SpecialIds(pad=0, cls=1, sep=2, mask=3, vocab_size=V)
SPECIAL = set(IDS.special)
PROP = settings(max_examples=50, deadline=None)

tok_id = st.integers(4, V - 1)
doc = st.lists(tok_id, min_size=0, max_size=40)
docs = st.lists(doc, min_size=1, max_size=8)
pair = st.tuples(st.lists(tok_id, max_size=20), st.lists(tok_id, max_size=20))
pairs = st.lists(pair, min_size=1, max_size=6)
seeds = st.integers(0, 2**31 - 1)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _eq(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool((a == b).all())
    return a == b


def batches_equal(x: dict, y: dict) -> bool:
    return x.keys() == y.keys() and all(_eq(x[k], y[k]) for k in x)


def check_mlm_invariants(original: torch.Tensor, masked: torch.Tensor, labels: torch.Tensor,
                         may_pick: torch.Tensor) -> None:
    """Labels aligned with the original; untouched outside picked positions; only allowed
    positions picked; picked positions hold [MASK], the original, or a non-special token."""
    picked = labels != IGNORE_INDEX
    assert not bool((picked & ~may_pick).any())
    assert bool((labels[picked] == original[picked]).all())
    assert bool((masked[~picked] == original[~picked]).all())
    changed = masked[picked]
    ok = (changed == IDS.mask) | (changed == original[picked]) | ~torch.isin(changed, torch.tensor(IDS.special))
    assert bool(ok.all())


# ----------------------------------------------------------------------------- SpecialIds


def test_special_ids_from_config_and_tokenizer():
    cfg = GenBertConfig(vocab_size=120, pad_token_id=0, cls_token_id=101, sep_token_id=102, mask_token_id=103)
    ids = SpecialIds.from_config(cfg)
    assert (ids.pad, ids.cls, ids.sep, ids.mask, ids.vocab_size) == (0, 101, 102, 103, 120)

    class Tok:
        pad_token_id, cls_token_id, sep_token_id, mask_token_id = 0, 1, 2, 3
        all_special_ids = [0, 1, 2, 3, 4]
        vocab = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]", "a", "##b", "c", "##d"]

        def __len__(self):
            return len(self.vocab)

        def convert_ids_to_tokens(self, ids):
            return [self.vocab[i] for i in ids]

    ids = SpecialIds.from_tokenizer(Tok())
    assert ids.vocab_size == 9 and ids.extra_special == (4,)
    assert ids.random_pool.tolist() == [5, 6, 7, 8]
    assert continuation_ids_from_tokenizer(Tok()) == [6, 8]
    with pytest.raises(ValueError):
        SpecialIds(0, 1, 2, 300, vocab_size=10)


# ----------------------------------------------------------------------------- real tokenizers


def test_special_ids_from_genbert_and_transformers_tokenizers(wordpiece, spm_tok):
    from transformers import BertTokenizerFast

    hf = BertTokenizerFast.from_pretrained(str(minilm_dir()))
    for tok, specials in ((wordpiece, wordpiece.special_ids), (spm_tok, spm_tok.special_ids),
                          (hf, set(hf.all_special_ids))):
        ids = SpecialIds.from_tokenizer(tok)
        assert (ids.pad, ids.cls, ids.sep, ids.mask, ids.vocab_size) == (
            tok.pad_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id, len(tok))
        assert tok.unk_token_id in ids.extra_special and tok.unk_token_id in specials
        pool = set(ids.random_pool.tolist())
        assert not pool & specials and len(pool) == len(tok) - len(specials)


def test_continuation_ids_from_genbert_tokenizers(wordpiece, spm_tok):
    wp = continuation_ids_from_tokenizer(wordpiece)
    assert wp and all(wordpiece.id_to_token(i).startswith("##") for i in wp)
    n_hash = sum(1 for i in range(len(wordpiece)) if wordpiece.id_to_token(i).startswith("##"))
    assert len(wp) == n_hash  # every "##" piece (no special token starts with "##")
    ids = wordpiece.encode("tokenization")
    assert [i in wp for i in ids] == [False] + [True] * (len(ids) - 1)
    sp = continuation_ids_from_tokenizer(spm_tok)
    starts = [i for i in range(len(spm_tok)) if spm_tok.id_to_token(i).startswith("\u2581")]
    assert sp and not set(sp) & set(starts) and not set(sp) & spm_tok.special_ids
    assert sorted({*sp, *starts, *spm_tok.special_ids}) == list(range(len(spm_tok)))


def _random_replacements(batch: dict, ids: SpecialIds) -> torch.Tensor:
    """The tokens the 80/10/10 rule put in place of a picked one (neither [MASK] nor kept)."""
    labels = batch["labels"]
    n = labels.shape[1]  # masked-target / MLM labels are aligned with the inputs
    inputs = batch["input_ids"][:, :n]
    picked = labels != IGNORE_INDEX
    return inputs[picked & (inputs != ids.mask) & (inputs != labels)]


def test_random_replacements_are_never_special_tokens(spm_tok, titles):
    """Every collator that masks, with a real (sentencepiece: 300 ids, so [UNK] would be drawn
    within a few hundred replacements) genbert Tokenizer and every token picked."""
    ids = SpecialIds.from_tokenizer(spm_tok)
    banned = torch.tensor(sorted(spm_tok.special_ids | {spm_tok.unk_token_id}))
    docs_ = spm_tok.batch_encode(titles[:64])
    pairs_ = list(zip(docs_[0::2], docs_[1::2]))
    nsp = [NSPExample(a, b, False) for a, b in pairs_]
    collators = {
        "mlm": (MLMCollator(ids, 64, prob=1.0, generator=gen(0)), docs_),
        "nsp": (NSPCollator(ids, 64, prob=1.0, generator=gen(1)), nsp),
        "unilm": (UniLMCollator(ids, 64, prob=1.0, generator=gen(2)), docs_),
        "masked-target": (Seq2SeqCollator(ids, "masked-target", mask_prob=1.0, generator=gen(3)), pairs_),
        "infilling": (InfillingCollator(ids, "masked-target", mask_prob=1.0, generator=gen(4), scheme="prefix"), docs_),
    }
    for name, (collate, examples) in collators.items():
        drawn = torch.cat([_random_replacements(collate(examples), ids) for _ in range(50)])
        assert drawn.numel() > 1500, (name, drawn.numel())  # P(no [UNK] | in the pool) < 1%
        assert not bool(torch.isin(drawn, banned).any()), (name, sorted(set(drawn[torch.isin(drawn, banned)].tolist())))


# ----------------------------------------------------------------------------- MLM


def test_mlm_fraction_and_80_10_10():
    g = gen(0)
    b, t = 512, 128
    original = torch.randint(4, V, (b, t), generator=g)
    lengths = torch.randint(10, t + 1, (b,), generator=g)
    pad = torch.arange(t)[None] >= lengths[:, None]
    original[pad] = IDS.pad
    original[:, 0] = IDS.cls
    original[torch.arange(b), lengths - 1] = IDS.sep
    special = special_tokens_mask(original, IDS)
    masked, labels = mask_tokens(original, special, IDS, 0.15, g)
    picked = labels != IGNORE_INDEX
    n_cand = (~special).sum()
    assert abs(picked.sum().item() / n_cand.item() - 0.15) < 0.01
    assert bool((picked.sum(1) >= 1).all())
    check_mlm_invariants(original, masked, labels, ~special)
    n = picked.sum().item()
    frac_mask = (masked[picked] == IDS.mask).sum().item() / n
    frac_same = (masked[picked] == original[picked]).sum().item() / n
    frac_rand = 1 - frac_mask - frac_same
    assert abs(frac_mask - 0.8) < 0.02
    assert abs(frac_same - 0.1) < 0.02
    assert abs(frac_rand - 0.1) < 0.02


@PROP
@given(docs, seeds, st.integers(3, 48), st.sampled_from([0.15, 0.5, 1.0]))
def test_mlm_collator_properties(batch, seed, max_length, prob):
    out = MLMCollator(IDS, max_length=max_length, prob=prob, generator=gen(seed))(batch)
    assert out["shift_labels"] is False
    rows = [[IDS.cls, *d[: max_length - 2], IDS.sep] for d in batch]
    t = max(map(len, rows))
    assert out["input_ids"].shape == out["labels"].shape == out["attention_mask"].shape == (len(batch), t)
    original = torch.full((len(batch), t), IDS.pad)
    for i, r in enumerate(rows):
        original[i, : len(r)] = torch.tensor(r)
        assert out["attention_mask"][i].tolist() == [1] * len(r) + [0] * (t - len(r))
    may_pick = ~special_tokens_mask(original, IDS)
    check_mlm_invariants(original, out["input_ids"], out["labels"], may_pick)
    picked = (out["labels"] != IGNORE_INDEX).sum(1)
    n_cand = may_pick.sum(1)
    expected = torch.where(n_cand > 0, torch.floor(prob * n_cand + 0.5).clamp(min=1), torch.zeros_like(n_cand))
    assert picked.tolist() == expected.long().tolist()


@PROP
@given(st.lists(st.lists(st.tuples(tok_id, st.booleans()), max_size=30), min_size=1, max_size=6), seeds)
def test_whole_word_masking_picks_whole_words(rows, seed):
    # token ids >= 100 are continuation ("##") pieces
    cont = list(range(100, V))
    batch = [[t if not c else 100 + t % 100 for t, c in r] for r in rows]
    out = MLMCollator(IDS, 64, whole_word=True, continuation_ids=cont, generator=gen(seed))(batch)
    ids, labels = out["input_ids"], out["labels"]
    for i, d in enumerate(batch):
        body = labels[i, 1 : len(d) + 1].tolist()
        # a continuation piece is labelled iff the token before it is (same word)
        for j in range(1, len(d)):
            if d[j] >= 100:
                assert (body[j] != IGNORE_INDEX) == (body[j - 1] != IGNORE_INDEX)
        if d:
            assert any(x != IGNORE_INDEX for x in body)
        assert labels[i, 0] == IGNORE_INDEX and labels[i, len(d) + 1] == IGNORE_INDEX
    assert ids.shape == labels.shape


def test_whole_word_fraction():
    g = gen(1)
    batch = [[(4 + k) if k % 3 == 0 else 150 for k in range(90)] for _ in range(200)]  # 3-piece words
    out = MLMCollator(IDS, 128, whole_word=True, continuation_ids=[150], generator=g)(batch)
    frac = (out["labels"] != IGNORE_INDEX).float().sum().item() / (200 * 90)
    assert abs(frac - 0.15) < 0.02
    with pytest.raises(ValueError):
        MLMCollator(IDS, whole_word=True)


def test_mlm_explicit_mask_is_bidirectional():
    out = MLMCollator(IDS, 16, generator=gen(0), explicit_mask=True)([[5, 6, 7], [8]])
    attn = torch.tensor([[1] * 5, [1, 1, 1, 0, 0]])
    assert torch.equal(out["attention_mask"], masks.bidirectional(out["input_ids"], attn))


# ----------------------------------------------------------------------------- NSP


sentence = st.lists(tok_id, min_size=1, max_size=8)
corpus = st.lists(st.lists(sentence, min_size=1, max_size=6), min_size=2, max_size=6)


@PROP
@given(corpus, seeds)
def test_nsp_examples_are_true_or_random_segments(documents, seed):
    examples = make_nsp_examples(documents, gen(seed), max_length=1000, short_seq_prob=0.0)
    assert examples
    for a, b, is_random in examples:
        assert a and b
        if not is_random:  # A + B is a run of consecutive sentences of one document
            joined = a + b
            ok = False
            for d in documents:
                for i in range(len(d)):
                    acc: list[int] = []
                    for s in d[i:]:
                        acc = acc + s
                        ok |= acc == joined and acc[: len(a)] == a
            assert ok


def test_nsp_label_balance_and_collator():
    g = gen(2)
    documents = [[[4 + (d * 7 + s) % 190] * 3 for s in range(12)] for d in range(200)]
    examples = make_nsp_examples(documents, g, max_length=16)
    frac_random = sum(e.is_random_next for e in examples) / len(examples)
    assert abs(frac_random - 0.5) < 0.06
    assert all(len(e.tokens_a) + len(e.tokens_b) <= 13 for e in examples)

    batch = examples[:8] + [([5, 6], [7], 1)]
    out = NSPCollator(IDS, max_length=16, generator=gen(3))(batch)
    assert set(out) == {"input_ids", "token_type_ids", "attention_mask", "labels", "next_sentence_label", "shift_labels"}
    assert out["shift_labels"] is False
    assert out["next_sentence_label"].tolist() == [int(e[2]) for e in batch]
    for i, (a, b, _) in enumerate(batch):
        row = [IDS.cls, *a, IDS.sep, *b, IDS.sep]
        n = len(row)
        assert out["token_type_ids"][i, :n].tolist() == [0] * (len(a) + 2) + [1] * (len(b) + 1)
        assert out["attention_mask"][i].sum() == n
        orig = torch.tensor(row)
        lab = out["labels"][i, :n]
        check_mlm_invariants(orig[None], out["input_ids"][i : i + 1, :n], lab[None],
                             ~special_tokens_mask(orig[None], IDS))
        assert bool((out["labels"][i, n:] == IGNORE_INDEX).all())


def test_nsp_single_document_has_no_random_pairs():
    examples = make_nsp_examples([[[5, 6], [7], [8, 9], [10]]], gen(0), max_length=64)
    assert examples and not any(e.is_random_next for e in examples)


# ----------------------------------------------------------------------------- infilling


@PROP
@given(st.integers(0, 120), seeds, st.sampled_from([0.1, 0.3, 0.5]), st.sampled_from([0.5, 3.0, 6.0]))
def test_infill_budget_and_alignment(n, seed, ratio, lam):
    tokens = list(range(4, 4 + n))  # distinct ids: the alignment is unique
    src = infill(tokens, IDS, gen(seed), mask_ratio=ratio, poisson_lambda=lam)
    n_masks = src.count(IDS.mask)
    kept = [t for t in src if t != IDS.mask]
    assert kept == sorted(kept) and set(kept) <= set(tokens)  # order kept, nothing invented
    covered = n - len(kept)
    assert covered == math.ceil(n * ratio - 1e-9)  # the ~30% budget, exactly
    assert len(src) == n - covered + n_masks
    if covered:
        assert n_masks >= 1
    # every gap of removed tokens is marked by at least one [MASK] (one per span)
    prev = 3
    pending_mask = False
    for t in src + [4 + n]:
        if t == IDS.mask:
            pending_mask = True
            continue
        if t != prev + 1:
            assert pending_mask
        prev, pending_mask = t, False


def test_infill_mean_span_count():
    g = gen(5)
    masks_total, runs = 0, 300
    for _ in range(runs):
        masks_total += infill(list(range(4, 104)), IDS, g).count(IDS.mask)
    # 30 covered tokens / E[len]=3 -> ~10 spans (zero-length insertions included)
    assert 8 < masks_total / runs < 12.5


@PROP
@given(st.lists(sentence, min_size=1, max_size=6), seeds)
def test_permute_and_denoising_pair(sentences, seed):
    perm = permute_sentences(sentences, gen(seed))
    assert sorted(map(tuple, perm)) == sorted(map(tuple, sentences))
    src, tgt = make_denoising_pair(sentences, IDS, gen(seed), permute=True)
    assert tgt == [t for s in sentences for t in s]
    assert len(tgt) - len([t for t in src if t != IDS.mask]) == math.ceil(0.3 * len(tgt) - 1e-9)


def test_infilling_collator():
    g = gen(0)
    batch = [list(range(4, 40)), list(range(50, 60))]
    out = InfillingCollator(IDS, max_target_length=20, generator=g)(batch)
    assert out["labels"][0].tolist() == list(range(4, 24)) + [IDS.sep]
    assert out["labels"][1].tolist() == list(range(50, 60)) + [IDS.sep] + [IGNORE_INDEX] * 10
    assert (out["input_ids"] == IDS.mask).any()


# ----------------------------------------------------------------------------- UniLM


unilm_example = st.one_of(doc, pair)


@PROP
@given(st.lists(unilm_example, min_size=1, max_size=8), seeds)
def test_unilm_rows_match_mask_functions(batch, seed):
    out, schemes = UniLMCollator(IDS, max_length=32, generator=gen(seed)).collate_with_schemes(batch)
    assert len(schemes) == len(batch) and set(schemes) <= set(UNILM_SCHEMES)
    assert out["shift_labels"] is False and "scheme_ids" not in out
    ids, tt, m = out["input_ids"], out["token_type_ids"], out["attention_mask"]
    assert m.dtype == torch.bool and m.shape == (len(batch), ids.shape[1], ids.shape[1])
    attn = (ids != IDS.pad).long()  # input tokens are never pad: pad only on the right
    for i, s in enumerate(schemes):
        expected = masks.build_mask(s, ids[i : i + 1], attn[i : i + 1], tt[i : i + 1])
        assert torch.equal(m[i : i + 1], expected)
        if s == "prefix":
            assert tt[i].sum() >= 1  # a target segment exists
        n = int(attn[i].sum())
        seps = (ids[i, :n] == IDS.sep) & (out["labels"][i, :n] == IGNORE_INDEX)
        assert ids[i, 0] == IDS.cls and ids[i, n - 1] == IDS.sep and seps.sum() >= 1
    picked = out["labels"] != IGNORE_INDEX
    assert not bool((picked & (attn == 0)).any())
    # labels never sit on [CLS]/[SEP]/pad: those positions are unchanged in the input
    assert not bool(torch.isin(out["labels"][picked], torch.tensor(IDS.special)).any())


def test_unilm_scheme_frequencies():
    g = gen(7)
    batch = [[5, 6, 7, 8]] * 6000
    _, schemes = UniLMCollator(IDS, generator=g).collate_with_schemes(batch)
    expected = dict(zip(UNILM_SCHEMES, (1 / 3, 1 / 6, 1 / 6, 1 / 3)))
    for name, p in expected.items():
        assert abs(schemes.count(name) / len(batch) - p) < 0.02, name


# ----------------------------------------------------------------------------- seq2seq packers


def layout(src, tgt):
    return [IDS.cls, *src, IDS.sep, *tgt, IDS.sep], [0] * (len(src) + 2) + [1] * (len(tgt) + 1)


@PROP
@given(pairs, seeds)
def test_next_token_and_causal_layout(batch, seed):
    for scheme in ("prefix", "causal"):
        out = Seq2SeqCollator(IDS, "next-token", generator=gen(seed), scheme=scheme)(batch)
        objective = "causal" if scheme == "causal" else "next-token"
        assert out["shift_labels"] is True
        for i, (src, tgt) in enumerate(batch):
            row, types = layout(src, tgt)
            n = len(row)
            assert out["input_ids"][i, :n].tolist() == row
            # causal: token type 0 everywhere, as the causal scheme generates
            assert out["token_type_ids"][i, :n].tolist() == (types if objective == "next-token" else [0] * n)
            lab = out["labels"][i].tolist()
            assert lab[: len(src) + 2] == [IGNORE_INDEX] * (len(src) + 2)
            assert lab[len(src) + 2 : n] == [*tgt, IDS.sep]
            assert all(x == IGNORE_INDEX for x in lab[n:])
        attn = (out["token_type_ids"] >= 0) & (out["input_ids"] != IDS.pad)
        if objective == "next-token":
            assert out["attention_mask"].dim() == 2 and torch.equal(out["attention_mask"].bool(), attn)
        else:
            assert torch.equal(out["attention_mask"], masks.causal(out["input_ids"], attn.long()))


def test_next_token_explicit_prefix_mask():
    out = Seq2SeqCollator(IDS, "next-token", explicit_mask=True)([([5, 6], [7]), ([8], [9, 10, 11])])
    attn = (out["input_ids"] != IDS.pad).long()
    assert torch.equal(out["attention_mask"], masks.prefix(out["input_ids"], attn, out["token_type_ids"]))


@PROP
@given(pairs, seeds)
def test_masked_target_layout(batch, seed):
    out = Seq2SeqCollator(IDS, "masked-target", generator=gen(seed))(batch)
    assert out["shift_labels"] is False and out["attention_mask"].dim() == 2
    for i, (src, tgt) in enumerate(batch):
        row, types = layout(src, tgt)
        n, s = len(row), len(src) + 2
        orig = torch.tensor(row)[None]
        may_pick = torch.tensor(types, dtype=torch.bool)[None]  # the final [SEP] included
        check_mlm_invariants(orig, out["input_ids"][i : i + 1, :n], out["labels"][i : i + 1, :n], may_pick)
        assert out["input_ids"][i, :s].tolist() == row[:s]
        k = int((out["labels"][i] != IGNORE_INDEX).sum())
        assert k == max(1, math.floor(0.7 * (len(tgt) + 1) + 0.5))


def reference_pseudo_mask(s: int, m: int, t: int) -> torch.Tensor:
    """The s2s-ft mask for a source of s tokens and m targets (incl. [SEP]), padded to t."""
    seg = ["s"] * s + [("r", j) for j in range(m)] + [("p", i) for i in range(m)]
    out = torch.zeros(t, t, dtype=torch.bool)
    for q in range(t):
        if q >= len(seg):
            out[q, q] = True
            continue
        for k in range(len(seg)):
            if seg[k] == "s":
                out[q, k] = True
            elif seg[q] != "s" and seg[k][0] == "r":
                j = seg[k][1]
                out[q, k] = j <= seg[q][1] if seg[q][0] == "r" else j < seg[q][1]
            elif seg[q] != "s" and seg[k][0] == "p":
                out[q, k] = q == k
    return out


@PROP
@given(pairs, seeds)
def test_pseudo_mask_layout(batch, seed):
    out = Seq2SeqCollator(IDS, "pseudo-mask", generator=gen(seed))(batch)
    assert out["shift_labels"] is False
    t = out["input_ids"].shape[1]
    for i, (src, tgt) in enumerate(batch):
        s, m = len(src) + 2, len(tgt) + 1
        n = s + 2 * m
        tgt_ = [*tgt, IDS.sep]
        assert out["input_ids"][i, :n].tolist() == [IDS.cls, *src, IDS.sep, *tgt_, *[IDS.mask] * m]
        pos = out["position_ids"][i].tolist()
        assert pos[:s + m] == list(range(s + m))
        assert pos[s + m : n] == pos[s : s + m]  # pseudo i shares target i's position
        assert out["token_type_ids"][i, :n].tolist() == [0] * s + [1] * (2 * m)
        assert out["labels"][i].tolist() == [IGNORE_INDEX] * (s + m) + tgt_ + [IGNORE_INDEX] * (t - n)
        assert torch.equal(out["attention_mask"][i], reference_pseudo_mask(s, m, t))
        assert not bool(out["attention_mask"][i, :n, n:].any())  # nobody real sees padding


@PROP
@given(pairs, seeds, st.integers(0, 10), st.integers(0, 10))
def test_encoder_decoder_and_truncation(batch, seed, max_src, max_tgt):
    out = Seq2SeqCollator(IDS, max_source_length=max_src, max_target_length=max_tgt,
                          generator=gen(seed), scheme="encoder-decoder")(batch)
    assert set(out) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    for i, (src, tgt) in enumerate(batch):
        row = [IDS.cls, *src[:max_src], IDS.sep]
        assert out["input_ids"][i, : len(row)].tolist() == row
        assert out["attention_mask"][i].sum() == len(row)
        lab = out["labels"][i].tolist()
        k = min(len(tgt), max_tgt)
        assert lab[: k + 1] == [*tgt[:k], IDS.sep]
        assert all(x == IGNORE_INDEX for x in lab[k + 1 :])


def test_unknown_objective_lists_choices():
    with pytest.raises(ValueError) as e:
        Seq2SeqCollator(IDS, "bogus")
    for name in ("next-token", "masked-target", "pseudo-mask"):
        assert name in str(e.value)
    with pytest.raises(ValueError, match="'masked-target' for the causal scheme"):
        Seq2SeqCollator(IDS, "masked-target", scheme="causal")


# ----------------------------------------------------------------------------- reproducibility


def _all_collators(seed: int):
    return [
        (MLMCollator(IDS, 32, generator=gen(seed)), "docs"),
        (UniLMCollator(IDS, 32, generator=gen(seed)), "docs"),
        (NSPCollator(IDS, 32, generator=gen(seed)), "nsp"),
        (InfillingCollator(IDS, "masked-target", generator=gen(seed), scheme="prefix"), "docs"),
        *[(Seq2SeqCollator(IDS, o if s == "prefix" else "next-token", generator=gen(seed), scheme=s), "pairs")
          for o in LAYOUTS for s in [{"causal": "causal", "encoder-decoder": "encoder-decoder"}.get(o, "prefix")]],
    ]


@PROP
@given(docs, pairs, seeds)
def test_reproducible_with_same_seed(batch_docs, batch_pairs, seed):
    inputs = {"docs": batch_docs, "pairs": batch_pairs,
              "nsp": [NSPExample(a or [5], b or [6], bool(i % 2)) for i, (a, b) in enumerate(batch_pairs)]}
    for (c1, kind), (c2, _) in zip(_all_collators(seed), _all_collators(seed)):
        assert batches_equal(c1(inputs[kind]), c2(inputs[kind]))
        assert batches_equal(c1(inputs[kind]), c2(inputs[kind]))  # streams stay in step
    d = [[[5 + i, 6 + i], [7 + i]] for i in range(5)]
    assert make_nsp_examples(d, gen(seed)) == make_nsp_examples(d, gen(seed))
    assert infill(list(range(4, 50)), IDS, gen(seed)) == infill(list(range(4, 50)), IDS, gen(seed))


def test_different_seeds_differ_and_workers_reseed(monkeypatch):
    batch = [list(range(4, 100))] * 16
    a = MLMCollator(IDS, 128, generator=gen(0))(batch)
    b = MLMCollator(IDS, 128, generator=gen(1))(batch)
    assert not torch.equal(a["labels"], b["labels"])

    def in_worker(wid, wseed):
        info = types.SimpleNamespace(id=wid, seed=wseed)
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: info)
        return MLMCollator(IDS, 128, generator=gen(0))(batch)["labels"]

    assert torch.equal(in_worker(0, 10), in_worker(0, 10))  # reproducible per worker seed
    assert not torch.equal(in_worker(0, 10), in_worker(1, 11))  # workers differ
    assert not torch.equal(in_worker(0, 10), a["labels"])
