"""Masked diffusion, BERT's own way to generate: the collator, the weighted loss, the sampler."""
from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from genbert import DecoderConfig, GenBert, masks
from genbert.data.objectives import IGNORE_INDEX, DiffusionCollator, SpecialIds, diffusion_times
from genbert.generation import commit_schedule, remask_schedule
from genbert.words import WordVocab
from conftest import padded_batch, tiny_config

V = 99
# ids 0-3 special; even ids from 4 content words ("w4"), odd ones function words ("the")
WORDS = WordVocab.from_tokens(["[PAD]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" if i % 2 == 0 else "the"
                                                                      for i in range(4, V)], special_ids=range(4))
IDS = SpecialIds(pad=0, cls=1, sep=2, mask=3, vocab_size=V)
PROP = settings(max_examples=30, deadline=None)
pairs = st.lists(st.tuples(st.lists(st.integers(4, V - 1), max_size=12),
                           st.lists(st.integers(4, V - 1), max_size=12)), min_size=1, max_size=6)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _model(seed: int = 0, **kw) -> GenBert:
    torch.manual_seed(seed)
    kw = {"decoding": "diffusion", "objective": "diffusion", "pad_token_id": 0, "cls_token_id": 1,
          "sep_token_id": 2, "mask_token_id": 3, **kw}
    return GenBert(tiny_config(**kw)).eval()


def _source(lengths=(9, 6, 3), seed=0):
    """[CLS] ids [SEP] rows, right-padded, like the collator's sources."""
    ids, am = padded_batch([n - 2 for n in lengths], low=5, seed=seed)
    rows = [[1, *ids[i, :n - 2].tolist(), 2] for i, n in enumerate(lengths)]
    out = torch.zeros(len(rows), max(lengths), dtype=torch.long)
    mask = torch.zeros_like(out)
    for i, r in enumerate(rows):
        out[i, :len(r)], mask[i, :len(r)] = torch.tensor(r), 1
    return out, mask


def _count_steps(model):
    """Wrap model.step; returns the list of (input_ids, position_ids) of every call."""
    calls = []
    orig = model.step

    def step(input_ids, position_ids, token_type_ids, mask, cache):
        calls.append((input_ids.clone(), position_ids.clone()))
        return orig(input_ids, position_ids, token_type_ids, mask, cache)
    model.step = step
    return calls


# ----------------------------------------------------------------------------- collator


@PROP
@given(pairs, st.integers(0, 2**31 - 1), st.integers(1, 8))
def test_collator_layout(batch, seed, block):
    out, t = DiffusionCollator(IDS, max_target_length=block, generator=gen(seed)).collate_with_times(batch)
    assert set(out) == {"input_ids", "token_type_ids", "attention_mask", "labels", "shift_labels", "label_weights"}
    assert out["shift_labels"] is False
    picked = out["labels"] != IGNORE_INDEX
    for i, (src, tgt) in enumerate(batch):
        tgt = tgt[:block]
        row = [1, *src, 2, *tgt, *[2] * (block - len(tgt))]
        n, s = len(row), len(src) + 2
        original = torch.tensor(row)
        assert out["token_type_ids"][i, :n].tolist() == [0] * s + [1] * block
        assert (out["input_ids"][i, n:] == IDS.pad).all() and (out["token_type_ids"][i, n:] == 0).all()
        assert not picked[i, :s].any() and not picked[i, n:].any()  # the source is never masked
        assert out["input_ids"][i, :s].tolist() == row[:s]
        lab, inp = out["labels"][i, :n], out["input_ids"][i, :n]
        assert torch.equal(lab[picked[i, :n]], original[picked[i, :n]])
        assert (inp[picked[i, :n]] == IDS.mask).all() and torch.equal(inp[~picked[i, :n]], original[~picked[i, :n]])
    am = (out["input_ids"] != IDS.pad) | picked  # real tokens (no row holds a real pad id here)
    assert torch.equal(out["attention_mask"], masks.source_block(out["input_ids"], am.long(), out["token_type_ids"]))
    w = out["label_weights"]
    assert w.dtype == torch.float32 and (w >= 0).all()
    assert torch.equal(w == 0, ~picked)
    expected = (1.0 / (t * block)).float()[:, None].expand_as(w)
    assert torch.equal(w[picked], expected[picked])
    assert ((t >= 1e-3) & (t < 1)).all()


def test_times_are_stratified_and_uniform():
    for b in (1, 5, 16):
        t = diffusion_times(b, 1e-3, gen(b))
        assert t.shape == (b,) and ((t >= 1e-3) & (t < 1)).all()
        strata = torch.floor((t - 1e-3) / (1 - 1e-3) * b).long().sort().values
        assert torch.equal(strata, torch.arange(b))  # one rate per stratum
    t = torch.cat([diffusion_times(4, 1e-3, gen(s)) for s in range(500)])
    assert abs(float(t.mean()) - 0.5) < 0.03 and float(t.min()) < 0.02 and float(t.max()) > 0.98
    strata = torch.stack([diffusion_times(4, 1e-3, gen(s)) for s in range(200)])
    assert float((strata[:, 0] < 0.25).float().mean()) < 0.4  # a row's place does not fix its stratum


def test_masking_rate_is_t_and_weights_are_the_elbo_weight():
    batch = [([5, 6], list(range(4, 90)) * 3)] * 8
    out, t = DiffusionCollator(IDS, max_target_length=256, generator=gen(3)).collate_with_times(batch)
    picked = out["labels"] != IGNORE_INDEX
    frac = picked.sum(1).double() / 256
    assert torch.allclose(frac, t, atol=0.1)
    w = out["label_weights"]
    # 1/(t*L) on masked tokens: a row's weights sum to about 1 (its masked fraction / t); never 1/(1-t)
    torch.testing.assert_close(w.sum(1).double(), frac / t, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(w.max(1).values.double(), 1 / (t * 256), rtol=1e-6, atol=0)


def test_same_seed_same_batch_and_seeds_differ():
    batch = [([5, 6, 7], [8, 9, 10, 11]), ([12], [13, 14])] * 4
    for replace in ("mask", "80/10/10"):
        a = DiffusionCollator(IDS, max_target_length=6, generator=gen(0), replace=replace)
        b = DiffusionCollator(IDS, max_target_length=6, generator=gen(0), replace=replace)
        for _ in range(2):  # the streams stay in step
            x, y = a(batch), b(batch)
            assert all(torch.equal(x[k], y[k]) for k in x if k != "shift_labels")
        c = DiffusionCollator(IDS, max_target_length=6, generator=gen(1), replace=replace)(batch)
        assert not torch.equal(c["labels"], x["labels"])


def test_80_10_10_replacements_are_never_special():
    ids = SpecialIds(pad=0, cls=1, sep=2, mask=3, vocab_size=V, extra_special=(4,))
    batch = [([5, 6], list(range(5, 90)) * 3)] * 8
    out = DiffusionCollator(ids, max_target_length=256, generator=gen(0), replace="80/10/10")(batch)
    labels, inp = out["labels"], out["input_ids"]
    picked = labels != IGNORE_INDEX
    got, orig = inp[picked], labels[picked]
    is_mask, kept = got == ids.mask, got == orig
    replaced = ~is_mask & ~kept
    assert not torch.isin(got[replaced], torch.tensor([0, 1, 2, 3, 4])).any()
    n = picked.sum()
    assert abs(float(is_mask.sum() / n) - 0.8) < 0.05
    assert abs(float(replaced.sum() / n) - 0.1) < 0.04  # a random pick rarely equals the original
    assert torch.equal(inp[~picked], DiffusionCollator(ids, max_target_length=256, generator=gen(0))(batch)
                       ["input_ids"][~picked])


def test_bidirectional_attention_option():
    batch = [([5, 6, 7], [8]), ([9], [10, 11])]
    out = DiffusionCollator(IDS, max_target_length=3, attention="bidirectional", generator=gen(0))(batch)
    am = torch.tensor([[1] * 8, [1] * 6 + [0] * 2])
    assert torch.equal(out["attention_mask"], masks.bidirectional(out["input_ids"], am))


@pytest.mark.parametrize("bad, name", [
    (dict(max_target_length=0), "max_target_length"), (dict(eps=0.0), "eps"), (dict(eps=1.0), "eps"),
    (dict(replace="random"), "replace"), (dict(attention="causal"), "attention"),
])
def test_collator_bad_arguments(bad, name):
    with pytest.raises(ValueError, match=name):
        DiffusionCollator(IDS, **{"max_target_length": 4, **bad})


# ----------------------------------------------------------------------------- weighted loss


def _hand_loss(logits, labels, t, block, smoothing=0.0):
    rows = []
    for b in range(labels.shape[0]):
        keep = labels[b] != IGNORE_INDEX
        ce = F.cross_entropy(logits[b, keep].float(), labels[b, keep], reduction="none", label_smoothing=smoothing)
        rows.append((ce / float(t[b])).sum() / block)
    return torch.stack(rows).mean()


def test_weighted_loss_equals_hand_computation():
    model = _model()
    batch = [([5, 6, 7], [8, 9, 10]), ([11], [12, 13, 14, 15]), ([16, 17], [])]
    out_b, t = DiffusionCollator(IDS, max_target_length=5, generator=gen(0)).collate_with_times(batch)
    assert (out_b["labels"] != IGNORE_INDEX).any()
    full = model(**out_b)
    hand = _hand_loss(full.logits, out_b["labels"], t, 5)
    torch.testing.assert_close(full.loss, hand, rtol=1e-5, atol=1e-6)
    fast = model(**out_b, compute_logits=False)
    assert fast.logits is None
    torch.testing.assert_close(fast.loss, hand, rtol=1e-5, atol=1e-6)
    assert full.loss_weight.dim() == 0 and float(full.loss_weight) == 3 and float(fast.loss_weight) == 3
    smooth = model(**out_b, label_smoothing=0.1)
    torch.testing.assert_close(smooth.loss, _hand_loss(full.logits, out_b["labels"], t, 5, 0.1), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(smooth.loss, full.loss)
    # without weights, the plain token-mean cross-entropy, unchanged
    plain = {k: v for k, v in out_b.items() if k != "label_weights"}
    ref = F.cross_entropy(full.logits.reshape(-1, V).float(), out_b["labels"].reshape(-1), ignore_index=-100)
    assert torch.equal(model(**plain).loss, ref)


def test_label_weights_only_for_encoder_only_models():
    model = _model(decoder=DecoderConfig(num_hidden_layers=1), decoding="next-token", objective=None)
    ids = torch.tensor([[1, 5, 2]])
    with pytest.raises(ValueError, match="label_weights"):
        model(ids, labels=ids, label_weights=torch.ones(1, 3))


@pytest.mark.parametrize("copy_attention", [False, True])
def test_label_weights_must_have_the_labels_shape(copy_attention):
    model = _model(copy_attention=copy_attention)
    ids = torch.tensor([[1, 5, 2, 3, 2]])
    labels = torch.full_like(ids, -100)
    labels[0, 3] = 6
    for compute_logits in (True, False):
        with pytest.raises(ValueError, match=r"label_weights shape \(1, 4\) != labels shape \(1, 5\)"):
            model(ids, token_type_ids=torch.tensor([[0, 0, 0, 1, 1]]), labels=labels,
                  label_weights=torch.ones(1, 4), compute_logits=compute_logits)


# ----------------------------------------------------------------------------- sampler

SETTINGS = {
    "confidence": dict(),
    "confidence-4": dict(steps=4),
    "random": dict(order="random", steps=6),
    "left-to-right": dict(order="left-to-right"),
    "content-first": dict(order="content-first", steps=6),
    "collapse": dict(steps=4, collapse_repeats=True),
    "no-repeat": dict(steps=6, no_repeat_content_words=True, word_vocab=WORDS),
    "no-repeat-remask": dict(steps=4, remask=True, no_repeat_content_words=True, word_vocab=WORDS),
    "remask": dict(remask=True, steps=4),
    "remask-random": dict(remask=True, order="random", steps=3),
    "blocks": dict(block_length=4, steps=6),
    "blocks-remask": dict(block_length=6, steps=4, remask=True),
    "sample": dict(do_sample=True, temperature=0.8, top_k=20, top_p=0.9, steps=6),
    "copy": dict(steps=6, copy_bias=1.5),
}


def _gen(model, ids, am, seed=7, **kw):
    return model.generate(ids, am, max_new_tokens=12, generator=gen(seed), **kw)


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_cached_equals_uncached(setting):
    model = _model()
    ids, am = _source()
    a = _gen(model, ids, am, **SETTINGS[setting])
    b = _gen(model, ids, am, use_cache=False, **SETTINGS[setting])
    assert torch.equal(a, b)
    assert a.shape[0] == 3 and 1 <= a.shape[1] <= 12
    assert not (a == 3).any()  # never a [MASK]
    assert not torch.equal(a[0], a[1]) or not torch.equal(a[1], a[2])  # outputs depend on the input


def test_exactly_steps_passes_and_the_source_is_untouched():
    ids, am = _source()
    before = ids.clone()
    for use_cache in (True, False):
        model = _model()
        calls = _count_steps(model)
        _gen(model, ids, am, steps=5, use_cache=use_cache)
        src = ids.shape[1]
        if use_cache:  # one pass over the source into the cache, then 5 over the block alone
            assert len(calls) == 6 and calls[0][0].shape == ids.shape
            assert all(c[0].shape == (3, 12) for c in calls[1:])
            assert torch.equal(calls[1][1], am.sum(1, keepdim=True) + torch.arange(12))  # right after the source
        else:
            assert len(calls) == 5 and all(torch.equal(c[0][:, :src], ids) for c in calls)
    assert torch.equal(ids, before)
    ablation = _model(diffusion_mask="bidirectional")
    calls = _count_steps(ablation)
    _gen(ablation, ids, am, steps=5)  # no exact cache: every pass recomputes the source
    assert len(calls) == 5 and all(c[0].shape == (3, src + 12) for c in calls)


def _masks_fed(model, ids, am, **kw):
    calls = _count_steps(model)
    _gen(model, ids, am, **kw)
    return [(c[0] == 3).sum(1).tolist() for c in calls[1:]]


def test_commit_counts_follow_the_schedule():
    model = _model()
    ids, am = _source()
    fed = _masks_fed(model, ids, am, steps=5)
    left = 12
    for n, commit in zip(fed, commit_schedule(12, 5)):
        assert n == [left] * 3
        left -= commit
    assert left == 0
    # blocks: the block after the current one stays masked until its turn
    fed = _masks_fed(model, ids, am, steps=4, block_length=6)
    assert [f[0] for f in fed] == [12, 9, 6, 3]
    # Mask-Predict: after step s, 12 * (1 - s/4) tokens (committed or not) are masked again
    fed = _masks_fed(model, ids, am, steps=4, remask=True)
    assert [f[0] for f in fed] == [12, *remask_schedule(12, 4)[:-1]] == [12, 9, 6, 3]


def test_left_to_right_commits_in_order():
    """"BERT as it is" (Samuel 2024): a plain MLM model, never trained for seq2seq, one token
    per pass from the left."""
    torch.manual_seed(0)
    model = GenBert(tiny_config(pad_token_id=0, cls_token_id=1, sep_token_id=2, mask_token_id=3)).eval()
    assert model.config.decoding == "next-token" and model.config.mask_scheme == "bidirectional"
    ids, am = _source()
    calls = _count_steps(model)
    out = _gen(model, ids, am, order="left-to-right", steps=12)
    assert len(calls) == 13
    for i, (fed, _) in enumerate(calls[1:]):
        assert (fed[:, i:] == 3).all() and not (fed[:, :i] == 3).any()
    assert out.shape[0] == 3 and not (out == 3).any()
    assert torch.equal(out, _gen(model, ids, am, order="left-to-right", steps=12, use_cache=False))


@pytest.mark.parametrize("setting", ["confidence", "left-to-right", "remask", "blocks", "blocks-remask", "no-repeat",
                                     "no-repeat-remask", "copy"])
def test_batch_equals_each_source_alone(setting):
    model = _model()
    lengths = (9, 6, 3)
    ids, am = _source(lengths)
    batch = _gen(model, ids, am, **SETTINGS[setting])
    for i, n in enumerate(lengths):
        alone = _gen(model, ids[i:i + 1, :n], am[i:i + 1, :n], **SETTINGS[setting])
        assert torch.equal(batch[i, :alone.shape[1]], alone[0])
        assert (batch[i, alone.shape[1]:] == 0).all()


def test_seeded_sampling_is_reproducible_and_varies():
    model = _model()
    ids, am = _source((8, 8))
    for kw in (dict(do_sample=True, temperature=1.5, steps=6), dict(order="random", steps=6)):
        a, b = _gen(model, ids, am, seed=1, **kw), _gen(model, ids, am, seed=1, **kw)
        assert torch.equal(a, b)
        assert any(not torch.equal(a, _gen(model, ids, am, seed=s, **kw)) for s in (2, 3))


def test_never_a_mask_and_pad_after_eos():
    model = _model()
    with torch.no_grad():
        model.lm_head.bias[3] += 100.0  # the model would love to write [MASK]
        model.lm_head.bias[2] += 2.0  # and [SEP] often
    ids, am = _source((9, 6, 3, 7))
    for kw in (dict(), dict(remask=True, steps=3), dict(do_sample=True)):
        out = _gen(model, ids, am, **kw)
        assert not (out == 3).any()
        for row in out:
            hits = (row == 2).nonzero()
            if len(hits):
                assert (row[hits[0, 0] + 1:] == 0).all()
        blocked = _gen(model, ids, am, min_new_tokens=12, **kw)
        assert blocked.shape[1] == 12 and not (blocked == 2).any()


def test_schedules():
    assert commit_schedule(12, 5) == [3, 3, 2, 2, 2]
    assert commit_schedule(4, 4) == [1, 1, 1, 1] and commit_schedule(7, 1) == [7]
    assert remask_schedule(12, 4) == [9, 6, 3, 0] and remask_schedule(5, 1) == [0]
    for n in range(1, 20):
        for s in range(1, n + 1):
            c = commit_schedule(n, s)
            assert sum(c) == n and min(c) >= 1 and max(c) - min(c) <= 1
            r = remask_schedule(n, s)
            assert r[-1] == 0 and all(x >= y for x, y in zip(r, r[1:]))
    for bad in (0, 13):
        with pytest.raises(ValueError, match="steps"):
            commit_schedule(12, bad)


@pytest.mark.parametrize("bad, name", [
    (dict(steps=0), "steps"), (dict(steps=13), "steps"), (dict(block_length=5), "block_length"),
    (dict(block_length=0), "block_length"), (dict(block_length=4, steps=4), "steps"),
    (dict(order="right-to-left"), "order"), (dict(remask=1), "remask"), (dict(num_beams=3), "num_beams"),
    (dict(repetition_penalty=1.2), "repetition_penalty"), (dict(no_repeat_ngram_size=2), "no_repeat_ngram_size"),
    (dict(mask_predict=True), "mask_predict"),
])
def test_bad_arguments_name_the_argument(bad, name):
    model = _model()
    ids, am = _source((5,))
    with pytest.raises(ValueError, match=name):
        model.generate(ids, am, **{"max_new_tokens": 12, **bad})


@pytest.mark.parametrize("kind", [dict(mask_scheme="prefix"), dict(mask_scheme="causal"),
                                  dict(decoder=DecoderConfig(num_hidden_layers=1))])
def test_other_decodings_reject_diffusion_arguments(kind):
    model = _model(decoding="next-token", objective=None, **kind)
    ids, am = _source((5,))
    for arg in (dict(steps=2), dict(order="confidence"), dict(remask=False), dict(block_length=2)):
        with pytest.raises(ValueError, match=next(iter(arg))):
            model.generate(ids, am, max_new_tokens=4, **arg)
    assert model.generate(ids, am, max_new_tokens=4).shape[0] == 1
    model.config.decoding = "diffusion"  # a diffusion decoding needs the bidirectional scheme
    with pytest.raises(ValueError, match="bidirectional"):
        model.generate(ids, am, max_new_tokens=4)


def test_positions_must_fit():
    model = _model()
    ids, am = _source((9,))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model.generate(ids, am, max_new_tokens=60)


# ----------------------------------------------------------------------------- end to end


def test_toy_copy_task_loss_goes_down():
    model = _model(seed=0, initializer_range=0.02).train()
    g = gen(0)
    data = [(s, s) for s in torch.randint(4, 20, (64, 4), generator=g).tolist()]
    collate = DiffusionCollator(IDS, max_target_length=6, generator=gen(1))
    held_out = DiffusionCollator(IDS, max_target_length=6, generator=gen(2))(data)

    def eval_loss():
        model.eval()
        with torch.no_grad():
            loss = float(model(**held_out, compute_logits=False).loss)
        model.train()
        return loss

    before = eval_loss()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for i in range(40):
        batch = collate(data[(i * 16) % 64:(i * 16) % 64 + 16])
        loss = model(**batch, compute_logits=False).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert eval_loss() < 0.7 * before


def test_on_step_sees_every_pass_unmasking():
    ids, am = _source()
    model = _model()
    states = []
    out = _gen(model, ids, am, steps=4, on_step=states.append)
    assert len(states) == 4
    masked = [int((s == 3).sum()) for s in states]  # [MASK] is id 3 in these tiny configs
    assert masked == sorted(masked, reverse=True) and masked[-1] == 0
    assert torch.equal(states[-1][:, :out.shape[1]].masked_fill(out == 0, 0), out)
    with pytest.raises(ValueError, match="on_step"):
        GenBert(tiny_config(mask_scheme="prefix")).generate(ids, am, max_new_tokens=4, on_step=print)


def test_content_first_commits_end_tokens_last():
    """The EOS-padded block makes the model surest of the padding; content-first commits every
    position predicted as content before any predicted as EOS, in the same number of passes."""
    model = _model()
    eos = model.config.sep_token_id
    with torch.no_grad():  # make EOS the surest prediction at some positions, not at all
        model.lm_head.bias[eos] += 3.0
    ids, am = _source()
    for order, eos_early in (("confidence", True), ("content-first", False)):
        states = []
        _gen(model, ids, am, steps=6, order=order, on_step=states.append)
        assert len(states) == 6 and not (states[-1] == 3).any()
        first = states[0]
        assert ((first != 3).sum(1) == commit_schedule(12, 6)[0]).all()
        assert bool(((first == eos) & (first != 3)).any()) == eos_early


def test_collapse_repeats_keeps_a_run_once():
    from genbert.generation import _collapse_repeats
    x = torch.tensor([[5, 5, 6, 7, 7, 7, 2, 2], [8, 9, 8, 9, 9, 2, 2, 2], [4, 4, 4, 4, 4, 4, 4, 4]])
    assert _collapse_repeats(x, 2).tolist() == [[5, 6, 7, 2, 2, 2, 2, 2], [8, 9, 8, 9, 2, 2, 2, 2],
                                               [4, 2, 2, 2, 2, 2, 2, 2]]
    model = _model()
    ids, am = _source()
    plain, merged = _gen(model, ids, am, steps=4), _gen(model, ids, am, steps=4, collapse_repeats=True)
    for p, m in zip(plain.tolist(), merged.tolist()):
        p = [t for t in p if t not in (0, 2)]  # pad and EOS
        want = [t for i, t in enumerate(p) if i == 0 or t != p[i - 1]]
        assert [t for t in m if t not in (0, 2)] == want


def test_no_repeated_content_word_in_any_order():
    """Masked diffusion commits tokens in parallel and in any order; with no_repeat_content_words
    no content-word token occurs twice in a row's output (function words may), in the passes
    and commit counts of the schedule."""
    model = _model()
    with torch.no_grad():  # few likely tokens: repeats are what the model would write
        model.lm_head.bias[4:12] += 4.0
    ids, am = _source()
    for order in ("confidence", "left-to-right", "random"):
        plain = _gen(model, ids, am, steps=6, order=order)
        calls = _count_steps(model)
        out = _gen(model, ids, am, steps=6, order=order, no_repeat_content_words=True, word_vocab=WORDS)
        assert len(calls) == 7
        fed = [(c[0] == 3).sum(1).tolist() for c in calls[1:]]
        left = 12
        for n, commit in zip(fed, commit_schedule(12, 6)):
            assert n == [left] * 3
            left -= commit
        model.step = type(model).step.__get__(model)
        def repeats(row):
            toks = [t for t in row.tolist() if t >= 4 and t % 2 == 0]
            return len(toks) - len(set(toks))
        assert sum(repeats(r) for r in plain) > 0, order  # the constraint has something to do
        assert all(repeats(r) == 0 for r in out), order
    assert WORDS.content_tokens()[:6] == [False, False, False, False, True, False]


def test_no_repeat_content_words_is_greedy_only():
    ids, am = _source()
    with pytest.raises(ValueError, match="no_repeat_content_words=True: .*greedy"):
        _gen(_model(), ids, am, steps=4, do_sample=True, no_repeat_content_words=True, word_vocab=WORDS)


def test_mean_weight_counts_each_row_once():
    """weight="mean" (Mask-Predict's loss): each masked token weighs 1/(masked tokens of its row)."""
    pairs = [(list(range(5, 15)), list(range(20, 20 + k))) for k in (3, 8, 12, 1)] * 4
    batch, t = DiffusionCollator(IDS, max_target_length=12, generator=gen(3), weight="mean").collate_with_times(pairs)
    w, picked = batch["label_weights"], batch["labels"] != IGNORE_INDEX
    assert ((w > 0) == picked).all()
    rows = picked.any(1)
    assert torch.allclose(w.sum(1)[rows], torch.ones(int(rows.sum())))
    elbo, _ = DiffusionCollator(IDS, max_target_length=12, generator=gen(3)).collate_with_times(pairs)
    assert torch.equal(elbo["input_ids"], batch["input_ids"])  # the same masks, other weights
    with pytest.raises(ValueError, match="weight must be one of"):
        DiffusionCollator(IDS, weight="1/t")


@pytest.mark.parametrize("kw", [dict(), dict(remask=True, steps=4), dict(order="left-to-right")])
def test_copy_bias_writes_source_tokens(kw):
    """A large copy prior: every written token but the end token is one of the row's own source
    tokens ([CLS]/[SEP] and padding are not sources); without it the model writes others."""
    model = _model()
    ids, am = _source((9, 6, 3))
    plain = _gen(model, ids, am, **kw)
    out = _gen(model, ids, am, copy_bias=1e3, **kw)
    for i, row in enumerate(out):
        source = set(ids[i, 1:int(am[i].sum()) - 1].tolist())
        written = [t for t in row.tolist() if t not in (0, 2)]
        assert written and set(written) <= source
    assert any(not set(r.tolist()) <= set(ids[i].tolist()) for i, r in enumerate(plain))


# ----------------------------------------------------------------------------- copy head

def test_copy_head_weighted_loss_is_the_elbo_of_the_mixture():
    """With a copy head the diffusion loss is the ELBO-weighted cross-entropy of the pointer-generator
    mixture's log p (out.logits), by hand; the labelled-positions-only path gives the same."""
    model = _model(copy_attention=True)
    batch = [([5, 6, 7], [8, 6, 10]), ([11, 12], [12, 13, 14, 15]), ([16, 17], [])]
    out_b, t = DiffusionCollator(IDS, max_target_length=5, generator=gen(1)).collate_with_times(batch)
    assert (out_b["labels"] != IGNORE_INDEX).sum() >= 3
    full = model(**out_b, label_smoothing=0.1)
    torch.testing.assert_close(full.logits.exp().sum(-1), torch.ones(full.logits.shape[:2]))
    plain = _model()  # the same weights without the head give other scores
    plain.load_state_dict(model.state_dict(), strict=False)
    assert not torch.allclose(plain(**out_b).logits.log_softmax(-1), full.logits, atol=1e-3)
    hand = _hand_loss(full.logits, out_b["labels"], t, 5, 0.1)
    torch.testing.assert_close(full.loss, hand, rtol=1e-5, atol=1e-6)
    fast = model(**out_b, label_smoothing=0.1, compute_logits=False)
    torch.testing.assert_close(fast.loss, hand, rtol=1e-5, atol=1e-6)
    assert float(full.loss_weight) == 3 and float(fast.loss_weight) == 3
    fast.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.copy_head.parameters())


@pytest.mark.parametrize("setting", ["confidence", "left-to-right", "remask", "blocks", "no-repeat", "copy"])
@pytest.mark.parametrize("attention", ["source-block", "bidirectional"])
def test_copy_head_sampler_cached_uncached_and_alone(setting, attention):
    model = _model(copy_attention=True, diffusion_mask=attention)
    lengths = (9, 6, 3)
    ids, am = _source(lengths)
    a = _gen(model, ids, am, **SETTINGS[setting])
    assert torch.equal(a, _gen(model, ids, am, use_cache=False, **SETTINGS[setting]))
    assert not (a == 3).any()
    assert not torch.equal(a[0], a[1]) or not torch.equal(a[1], a[2])
    for i, n in enumerate(lengths):
        alone = _gen(model, ids[i:i + 1, :n], am[i:i + 1, :n], **SETTINGS[setting])
        assert torch.equal(a[i, :alone.shape[1]], alone[0])


def test_copy_head_sampler_scores_are_the_forward_mixture():
    """The first pass's choice at every block position is the argmax of the forward's log p
    over the all-[MASK] block laid out as the collator does."""
    from genbert.generation import DiffusionState
    model = _model(2, copy_attention=True)
    ids, am = _source((7,))
    state = DiffusionState(model, ids, am, None, 6, use_cache=True)
    block = torch.full((1, 6), 3)
    scores = state.logits(block, 0, 6)
    full = torch.cat([ids, block], 1)
    tt = torch.tensor([[0] * 7 + [1] * 6])
    out = model(full, token_type_ids=tt, attention_mask=masks.source_block(full, torch.ones_like(full), tt))
    torch.testing.assert_close(scores, out.logits[:, 7:], rtol=1e-4, atol=1e-5)
