"""CUDA: parity with transformers in float32, cached == uncached, bf16 training smoke steps.

Every test here carries the ``cuda`` marker and skips cleanly without a GPU, so ``tests/`` passes
on CPU; ``scripts/gpu_report.sh`` runs them with ``pytest -m cuda`` on a lent GPU.
"""
from __future__ import annotations

import warnings

import pytest
import torch

from genbert import DecoderConfig, GenBert, masks
from conftest import hf_bert_config, padded_batch, tiny_config

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (no GPU on this machine)")]

KINDS = {
    "causal": dict(mask_scheme="causal"),
    "prefix": dict(mask_scheme="prefix"),
    "encoder-decoder": dict(decoder=DecoderConfig(num_hidden_layers=2)),
}
STRATEGIES = {"greedy": dict(), "beam": dict(num_beams=3),
              "constrained": dict(num_beams=2, no_repeat_ngram_size=2, repetition_penalty=1.3, min_new_tokens=4)}


@pytest.fixture(autouse=True)
def exact_float32():
    """Full float32 matmuls (no TF32) so that CUDA results compare with CPU and transformers."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _cuda(*tensors):
    return [t.cuda() for t in tensors]


def test_parity_with_transformers_masked_lm_float32_on_cuda(tmp_path):
    from transformers import BertForPreTraining
    torch.manual_seed(0)
    ref = BertForPreTraining(hf_bert_config())
    ref.save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GenBert.from_pretrained(tmp_path).cuda().eval()
    ref = ref.cuda().eval()
    ids, am = _cuda(*padded_batch([10, 7, 3]))
    with torch.no_grad():
        r = ref(ids, attention_mask=am).prediction_logits
        g = model(ids, attention_mask=am).logits
    real = am.bool()
    torch.testing.assert_close(g[real], r[real], atol=1e-4, rtol=0)


def test_parity_with_transformers_bert2bert_float32_on_cuda(tmp_path):
    from transformers import BertLMHeadModel, BertModel, EncoderDecoderModel
    torch.manual_seed(0)
    ref = EncoderDecoderModel(encoder=BertModel(hf_bert_config()),
                              decoder=BertLMHeadModel(hf_bert_config(is_decoder=True, add_cross_attention=True)))
    ref.config.decoder_start_token_id, ref.config.pad_token_id, ref.config.eos_token_id = 1, 0, 2
    ref.save_pretrained(tmp_path)
    model = GenBert.from_pretrained(tmp_path).cuda().eval()
    ref = ref.cuda().eval()
    src, am = _cuda(*padded_batch([9, 6, 3]))
    labels = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, -100, -100], [11, 2, -100, -100, -100]]).cuda()
    with torch.no_grad():
        r = ref(input_ids=src, attention_mask=am, labels=labels)
        g = model(src, attention_mask=am, labels=labels)
    real = labels != -100
    torch.testing.assert_close(g.logits[real], r.logits[real], atol=1e-4, rtol=0)
    torch.testing.assert_close(g.loss, r.loss, atol=1e-4, rtol=0)
    # greedy and beam search pick transformers' tokens
    for beams in (1, 3):
        kw = dict(max_new_tokens=8, min_new_tokens=8, num_beams=beams)
        with torch.no_grad():
            theirs = ref.generate(input_ids=src, attention_mask=am, do_sample=False, decoder_start_token_id=1,
                                  eos_token_id=2, pad_token_id=0, **kw)[:, 1:]
        assert torch.equal(model.generate(src, am, **kw), theirs)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_cached_equals_uncached_on_cuda(kind, strategy):
    torch.manual_seed(0)
    model = GenBert(tiny_config(**KINDS[kind])).cuda().eval()
    ids, am = _cuda(*padded_batch([9, 6, 3], low=5))
    kw = dict(max_new_tokens=12, **STRATEGIES[strategy])
    a = model.generate(ids, am, **kw)
    assert torch.equal(a, model.generate(ids, am, use_cache=False, **kw))
    # and CUDA picks the tokens the CPU picks
    assert torch.equal(a.cpu(), model.cpu().generate(ids.cpu(), am.cpu(), **kw))


def test_diffusion_cached_equals_uncached_on_cuda():
    torch.manual_seed(0)
    model = GenBert(tiny_config(decoding="diffusion")).cuda().eval()
    ids, am = _cuda(*padded_batch([9, 6, 3], low=5))
    kw = dict(max_new_tokens=8, steps=4)
    assert torch.equal(model.generate(ids, am, **kw), model.generate(ids, am, use_cache=False, **kw))


@pytest.mark.skipif(torch.cuda.is_available() and not torch.cuda.is_bf16_supported(), reason="no bf16 on this GPU")
@pytest.mark.parametrize("kind", ["prefix", "encoder-decoder"])
def test_bf16_training_smoke_steps(kind):
    """A few AdamW steps under bf16 autocast on one batch: finite losses that go down, float32
    master weights, and the trained model still generates under autocast."""
    torch.manual_seed(0)
    model = GenBert(tiny_config(**KINDS[kind])).cuda().train()
    ids, am = _cuda(*padded_batch([9, 7, 5, 4], low=5))
    tt = (torch.arange(ids.shape[1], device="cuda") >= 3).long().expand_as(ids)
    batch = dict(input_ids=ids, attention_mask=am, labels=ids.masked_fill(am == 0, -100))
    if kind != "encoder-decoder":
        batch["token_type_ids"] = tt
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(**batch, compute_logits=False)
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss))
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert losses[-1] < 0.7 * losses[0], losses
    assert all(p.dtype == torch.float32 for p in model.parameters())
    model.eval()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        tokens = model.generate(ids, am, max_new_tokens=6, num_beams=2)
    assert tokens.shape[0] == 4 and tokens.device.type == "cuda"


def test_bf16_trainer_steps(tmp_path):
    """genbert's Trainer with bf16=True on CUDA: a short run finishes with finite logged losses."""
    from genbert.data.objectives import Seq2SeqCollator, SpecialIds
    from genbert.training import TrainConfig, Trainer
    torch.manual_seed(0)
    model = GenBert(tiny_config(mask_scheme="prefix"))
    g = torch.Generator().manual_seed(0)
    data = []
    for _ in range(32):
        src = torch.randint(5, 99, (int(torch.randint(4, 12, (1,), generator=g)),), generator=g).tolist()
        data.append((src, src[:len(src) // 2][::-1]))
    coll = Seq2SeqCollator(SpecialIds(pad=0, cls=1, sep=2, mask=3, vocab_size=99), "next-token",
                           generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(lr=3e-3, max_steps=8, batch_size=8, log_steps=2, progress=False, plot=False, bf16=True,
                      device="cuda")
    trainer = Trainer(model, data, coll, cfg, tmp_path)
    trainer.train()
    losses = [r["loss"] for r in trainer.history if "loss" in r]
    assert losses and all(torch.isfinite(torch.tensor(losses)))


def test_causal_flag_equals_the_boolean_mask_on_cuda():
    """SDPA's causal flag (its fastest kernels) gives the boolean causal mask's outputs."""
    from genbert.attention import Attention
    torch.manual_seed(0)
    att = Attention(tiny_config()).cuda().eval()
    x = torch.randn(3, 11, 32, device="cuda")
    ids = torch.zeros(3, 11, dtype=torch.long, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(att(x, masks.CAUSAL), att(x, masks.causal(ids)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["causal", "prefix", "encoder-decoder"])
def test_flex_block_masks_match_sdpa_on_cuda(kind):
    """attention_backend="flex" (compiled FlexAttention, block masks) gives the boolean masks'
    logits and tokens on CUDA, forward and backward."""
    from genbert import flex
    if not flex.available():
        pytest.skip("no torch.nn.attention.flex_attention")
    torch.manual_seed(0)
    model = GenBert(tiny_config(**KINDS[kind])).cuda().eval()
    ids, am = _cuda(*padded_batch([9, 6, 3], low=5))
    tt = (torch.arange(9, device="cuda") >= 4).long().expand(3, 9)
    kw = dict(labels=torch.tensor([[5, 6, 7, 2], [8, 2, -100, -100], [9, 10, 2, -100]]).cuda()) \
        if kind == "encoder-decoder" else dict(token_type_ids=tt, labels=ids.masked_fill(am == 0, -100))
    ref = model(ids, attention_mask=am, **kw)
    ref.loss.backward()
    ref_grad = model.embeddings.word.weight.grad.clone()
    model.zero_grad(set_to_none=True)
    model.attention_backend = "flex"
    out = model(ids, attention_mask=am, **kw)
    out.loss.backward()
    torch.testing.assert_close(out.loss, ref.loss, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(model.embeddings.word.weight.grad, ref_grad, atol=1e-4, rtol=1e-3)
    with torch.no_grad():
        a = model.generate(ids, am, max_new_tokens=6, num_beams=2)
        model.attention_backend = "sdpa"
        assert torch.equal(model.generate(ids, am, max_new_tokens=6, num_beams=2), a)
