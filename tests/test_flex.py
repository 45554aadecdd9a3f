"""FlexAttention block masks (genbert/flex.py) equal the boolean masks of genbert/masks.py, and
attention through them gives the boolean masks' outputs (on CPU, eager FlexAttention)."""
from __future__ import annotations

import pytest
import torch

from genbert import DecoderConfig, GenBert, flex, masks
from conftest import padded_batch, tiny_config

pytestmark = pytest.mark.skipif(not flex.available(), reason="no torch.nn.attention.flex_attention")


def _layout(seed: int, lengths=(9, 6, 1, 7), t: int = 9):
    """Right-padded ids, an attention mask (one row with a single real token), and token types
    with the target/block starting at a different place in each row (one row all source, one all target)."""
    ids, am = padded_batch(list(lengths), seed=seed)
    ids = torch.nn.functional.pad(ids, (0, t - ids.shape[1]))
    am = torch.nn.functional.pad(am, (0, t - am.shape[1]))
    starts = torch.tensor([4, 2, 0, t][:len(lengths)])
    tt = (torch.arange(t)[None] >= starts[:, None]).long()
    return ids, am, tt


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scheme", sorted(flex.MODS))
def test_block_masks_equal_the_boolean_masks(scheme, seed):
    ids, am, tt = _layout(seed)
    fn = masks.get_mask_fn(scheme)
    for a, types in ((am, tt), (None, tt), (am, None), (torch.zeros_like(am), tt)):
        expected = fn(ids, a, types)
        got = flex.dense(flex.MODS[scheme](ids, a, types), ids.shape[0], ids.shape[1])
        assert torch.equal(got, expected), (scheme, a, types)


def test_pseudo_mask_block_mask_equals_the_boolean_mask():
    from genbert.data.objectives import Seq2SeqCollator, SpecialIds
    coll = Seq2SeqCollator(SpecialIds(pad=0, cls=1, sep=2, mask=3, vocab_size=99), "pseudo-mask")
    pairs = [([5, 6, 7, 8], [9, 10, 11]), ([12, 13], [14]), ([15, 16, 17, 18, 19, 20], [21, 22, 23, 24])]
    batch = coll(pairs)
    t = batch["input_ids"].shape[1]
    # the collator's layout, read back as segments and target indices
    segs = torch.full((3, t), 3)
    idx = torch.zeros(3, t, dtype=torch.long)
    for r, (src, tgt) in enumerate(pairs):
        n_src, n_tgt = len(src) + 2, len(tgt) + 1
        segs[r, :n_src] = 0
        segs[r, n_src:n_src + n_tgt] = 1
        segs[r, n_src + n_tgt:n_src + 2 * n_tgt] = 2
        idx[r, n_src:n_src + n_tgt] = torch.arange(n_tgt)
        idx[r, n_src + n_tgt:n_src + 2 * n_tgt] = torch.arange(n_tgt)
    expected = masks.pseudo_mask(segs, idx)
    assert torch.equal(expected, batch["attention_mask"])
    assert torch.equal(flex.dense(flex.pseudo_mask_mod(segs, idx), 3, t), expected)


@pytest.mark.parametrize("scheme", sorted(flex.MODS))
def test_attention_through_block_masks_equals_sdpa(scheme):
    from genbert.attention import Attention
    torch.manual_seed(0)
    att = Attention(tiny_config()).eval()
    ids, am, tt = _layout(3)
    mod = flex.MODS[scheme](ids, am, tt)
    x = torch.randn(ids.shape[0], ids.shape[1], 32)
    with torch.no_grad():
        ref = att(x, masks.get_mask_fn(scheme)(ids, am, tt))
        out = att(x, flex.block_mask(mod, ids.shape[0], ids.shape[1], "cpu"))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["causal", "prefix", "bidirectional", "encoder-decoder"])
def test_model_with_the_flex_backend_matches_sdpa(kind):
    torch.manual_seed(0)
    cfg = tiny_config(decoder=DecoderConfig(num_hidden_layers=1)) if kind == "encoder-decoder" else \
        tiny_config(mask_scheme=kind)
    model = GenBert(cfg).eval()
    ids, am = padded_batch([9, 6, 3], low=5)
    tt = (torch.arange(9) >= 4).long().expand(3, 9)
    kw = dict(labels=torch.tensor([[5, 6, 7, 2], [8, 2, -100, -100], [9, 10, 2, -100]])) \
        if kind == "encoder-decoder" else dict(token_type_ids=tt)
    with torch.no_grad():
        ref = model(ids, attention_mask=am, **kw)
        model.attention_backend = "flex"
        out = model(ids, attention_mask=am, **kw)
        assert flex.is_block_mask(model.build_mask(ids, am, tt))  # the encoder of an encoder-decoder too
    # with gradients on CPU (FlexAttention has no CPU backward) the boolean masks serve
    assert isinstance(model.build_mask(ids, am, tt), torch.Tensor)
    real = am.bool() if kind != "encoder-decoder" else kw["labels"] != -100
    torch.testing.assert_close(out.logits[real], ref.logits[real], atol=1e-4, rtol=1e-4)
    if kind != "bidirectional":
        gen = dict(max_new_tokens=6, num_beams=2)
        model.attention_backend = "sdpa"
        a = model.generate(ids, am, **gen)
        model.attention_backend = "flex"
        assert torch.equal(model.generate(ids, am, **gen), a)


def test_flex_backend_falls_back_while_training_with_dropout():
    model = GenBert(tiny_config(mask_scheme="prefix", attention_probs_dropout_prob=0.1)).train()
    model.attention_backend = "flex"
    ids, am = padded_batch([6, 4])
    assert isinstance(model.build_mask(ids, am), torch.Tensor)
    model.attention_backend = "bogus"
    with pytest.raises(ValueError, match="attention_backend"):
        model.build_mask(ids, am)
