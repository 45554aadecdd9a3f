import torch

from genbert import masks

T = torch.tensor


def test_bidirectional_sees_real_keys_only():
    ids = torch.zeros(1, 4, dtype=torch.long)
    m = masks.bidirectional(ids, T([[1, 1, 1, 0]]))
    assert m.shape == (1, 4, 4) and m.dtype == torch.bool
    assert m[0, :, :3].all() and not m[0, :3, 3].any()


def test_causal_and_anti_causal():
    ids = torch.zeros(1, 3, dtype=torch.long)
    assert torch.equal(masks.causal(ids)[0], T([[1, 0, 0], [1, 1, 0], [1, 1, 1]]).bool())
    assert torch.equal(masks.anti_causal(ids)[0], T([[1, 1, 1], [0, 1, 1], [0, 0, 1]]).bool())
    m = masks.causal(ids, T([[1, 1, 0]]))
    assert not m[0, :, 2][:2].any()


def test_prefix_unilm_layout():
    ids = torch.zeros(1, 6, dtype=torch.long)
    tt = T([[0, 0, 0, 1, 1, 0]])  # [CLS] s [SEP] t1 t2 pad
    am = T([[1, 1, 1, 1, 1, 0]])
    m = masks.prefix(ids, am, tt)[0].int()
    expected = T([
        [1, 1, 1, 0, 0, 0],  # source sees all source, no target
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],  # target sees source and targets at or before it
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 0, 0, 0],  # padding query (segment 0): harmless, never attended to
    ])
    assert torch.equal(m, expected)


def test_prefix_without_segments_is_bidirectional():
    ids = torch.zeros(2, 5, dtype=torch.long)
    am = T([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert torch.equal(masks.prefix(ids, am), masks.bidirectional(ids, am))


def test_source_block_diffusion_layout():
    ids = torch.zeros(2, 6, dtype=torch.long)
    tt = T([[0, 0, 0, 1, 1, 0], [0, 0, 1, 1, 0, 0]])  # [CLS] s [SEP] b1 b2 pad / [CLS] [SEP] b1 b2 pad pad
    am = T([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]])
    m = masks.source_block(ids, am, tt).int()
    expected = T([[
        [1, 1, 1, 0, 0, 0],  # source sees the source only
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 1, 0],  # the block sees source and the whole block, both directions
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 0, 0, 0],  # padding query (segment 0): harmless, never attended to
    ], [
        [1, 1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
    ]])
    assert torch.equal(m, expected)
    assert masks.get_mask_fn("source_block") is masks.source_block
    # the ablation: everything sees every real token; without segments it is bidirectional
    assert torch.equal(masks.bidirectional(ids, am)[0, 0], am[0].bool())
    assert torch.equal(masks.source_block(ids, am), masks.bidirectional(ids, am))
    # an all-padding row still has a key per query (no NaN)
    assert masks.source_block(ids, T([[0] * 6, [0] * 6]), tt).any(-1).all()


def test_all_padding_row_has_no_empty_query():
    ids = torch.zeros(1, 3, dtype=torch.long)
    m = masks.causal(ids, T([[0, 0, 0]]))
    assert m.any(-1).all()


def test_get_mask_fn_by_name():
    assert masks.get_mask_fn("prefix") is masks.prefix
    try:
        masks.get_mask_fn("nope")
    except ValueError as e:
        assert "bidirectional" in str(e)
    else:
        raise AssertionError("no error")
