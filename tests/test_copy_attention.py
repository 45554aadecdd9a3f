"""The pointer-generator copy head (config.copy_attention, heads.CopyHead) of the prefix scheme (diffusion's:
tests/test_diffusion.py)."""
import math

import pytest
import torch

from genbert import GenBert
from genbert.data.objectives import Seq2SeqCollator, SpecialIds
from conftest import tiny_config


def _model(seed: int = 0) -> GenBert:
    torch.manual_seed(seed)
    return GenBert(tiny_config(mask_scheme="prefix", copy_attention=True, objective="pseudo-mask",
                               decoding="mask-predict")).eval()


def _batch(c):
    ids = SpecialIds(pad=c.pad_token_id, cls=c.cls_token_id, sep=c.sep_token_id, mask=c.mask_token_id,
                     vocab_size=c.vocab_size)
    batch = Seq2SeqCollator(ids, objective="pseudo-mask")([([5, 6, 7, 8, 6], [6, 9]), ([10, 11], [12, 11, 13, 40])])
    batch.pop("shift_labels")
    return batch


def _sources(c):
    cls, sep = c.cls_token_id, c.sep_token_id
    src = torch.tensor([[cls, 5, 6, 7, 8, 9, 10, sep], [cls, 11, 12, 13, sep, 0, 0, 0]])
    return src, (src != 0).long()


def test_loss_is_the_pointer_generator_mixture():
    """At every labelled position p = g * softmax(logits) + (1 - g) * attention summed over the
    source positions holding the token (token type 0, no special token), computed here by hand."""
    m = _model()
    c = m.config
    batch = _batch(c)
    out = m(**batch, shift_labels=False)
    fast = m(**batch, shift_labels=False, compute_logits=False)
    torch.testing.assert_close(fast.loss, out.loss)
    hidden = out.hidden_states
    head = m.copy_head
    nll = []
    for b in range(2):
        ids, tt = batch["input_ids"][b].tolist(), batch["token_type_ids"][b].tolist()
        src = [j for j, (i, t) in enumerate(zip(ids, tt))
               if t == 0 and i not in (c.pad_token_id, c.cls_token_id, c.sep_token_id, c.mask_token_id)]
        keys = head.key(hidden[b, src])
        for t, y in enumerate(batch["labels"][b].tolist()):
            if y == -100:
                continue
            h = hidden[b, t]
            att = torch.softmax(keys @ head.query(h) / math.sqrt(h.numel()), 0)
            copy = sum(a for a, j in zip(att, src) if ids[j] == y)
            g = torch.sigmoid(head.gate(h))[0]
            p = g * torch.softmax(m.lm_head(h), 0)[y] + (1 - g) * copy
            nll.append(-torch.log(p))
            # the returned logits are the mixture's log-probabilities
            torch.testing.assert_close(out.logits[b, t, y], torch.log(p))
    torch.testing.assert_close(out.loss, torch.stack(nll).mean())
    torch.testing.assert_close(out.logits.exp().sum(-1), torch.ones(out.logits.shape[:2]))
    out.loss.backward()
    for p in m.copy_head.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize("num_beams", [1, 3])
def test_cached_generation_equals_uncached_and_depends_on_the_source(num_beams):
    m = _model()
    src, am = _sources(m.config)
    kw = dict(token_type_ids=torch.zeros_like(src), max_new_tokens=8, num_beams=num_beams, min_new_tokens=8)
    cached = m.generate(src, am, **kw)
    assert torch.equal(cached, m.generate(src, am, use_cache=False, **kw))
    assert not torch.equal(cached[0], cached[1])
    # each right-padded row gets what it gets alone
    for r in range(2):
        n = int(am[r].sum())
        alone = m.generate(src[r:r + 1, :n], am[r:r + 1, :n], token_type_ids=torch.zeros(1, n, dtype=torch.long),
                           max_new_tokens=8, num_beams=num_beams, min_new_tokens=8)
        assert torch.equal(alone[0], cached[r])


def test_generation_scores_are_the_forward_mixture():
    """A greedy step's choice is the argmax of the forward's log p at the pseudo [MASK]."""
    m = _model(1)
    c = m.config
    src, am = _sources(c)
    first = m.generate(src[:1, :8], am[:1, :8], token_type_ids=torch.zeros(1, 8, dtype=torch.long),
                       max_new_tokens=1, min_new_tokens=1)
    ids = torch.cat([src[:1], torch.tensor([[c.mask_token_id]])], 1)
    out = m(ids, token_type_ids=torch.tensor([[0] * 8 + [1]]))
    assert first[0, 0] == out.logits[0, -1].argmax()


def test_copy_attention_is_a_prefix_scheme_head(tmp_path):
    with pytest.raises(ValueError, match="copy_attention"):
        tiny_config(mask_scheme="causal", copy_attention=True)
    m = _model()
    m.save_pretrained(tmp_path / "g")
    back = GenBert.from_pretrained(tmp_path / "g").eval()
    src, am = _sources(m.config)
    kw = dict(token_type_ids=torch.zeros_like(src), max_new_tokens=6)
    assert torch.equal(back.generate(src, am, **kw), m.generate(src, am, **kw))
    with pytest.raises(ValueError, match="copy head"):
        m.save_pretrained(tmp_path / "hf", format="transformers")


def test_recipe_flag_is_for_the_prefix_and_bidirectional_schemes():
    from genbert.recipes.common import UsageError
    from genbert.recipes.seq2seq import Seq2SeqRecipe
    for scheme in ("causal", "encoder-decoder"):
        with pytest.raises(UsageError, match="--copy-attention"):
            Seq2SeqRecipe(scheme=scheme, copy_attention=True).check()
    Seq2SeqRecipe(scheme="bidirectional", copy_attention=True).check()
    # on by default where it applies; a stored run from before the flag keeps its own False
    assert Seq2SeqRecipe(scheme="prefix").copying and Seq2SeqRecipe(scheme="bidirectional").copying
    assert not Seq2SeqRecipe(scheme="causal").copying and not Seq2SeqRecipe(scheme="encoder-decoder").copying
    assert not Seq2SeqRecipe(scheme="bidirectional", copy_attention=False).copying
    assert Seq2SeqRecipe(scheme="bidirectional", copy_attention=True).model_spec("summarization").copy_attention
    assert Seq2SeqRecipe(copy_attention=True).model_spec("summarization").copy_attention
