import pytest
import torch

from genbert import DecoderConfig, GenBert
from genbert.generation import GenerationConfig, apply_constraints, beam_search, greedy_or_sample
from conftest import hf_bert_config, padded_batch, tiny_config

KINDS = {
    "causal": dict(mask_scheme="causal"),
    "prefix": dict(mask_scheme="prefix"),
    "encoder-decoder": dict(decoder=DecoderConfig(num_hidden_layers=2)),
}
STRATEGIES = {
    "greedy": dict(),
    "beam": dict(num_beams=3),
    "beam-lp": dict(num_beams=4, length_penalty=0.5, early_stopping=True),
    "sample": dict(do_sample=True, top_k=20, top_p=0.9, temperature=0.8),
    "constrained": dict(num_beams=2, no_repeat_ngram_size=2, repetition_penalty=1.3, min_new_tokens=4),
}


def _model(kind, seed=0, **kw):
    torch.manual_seed(seed)
    return GenBert(tiny_config(**KINDS[kind], **kw)).eval()


def _gen(model, ids, am, **kw):
    if kw.get("do_sample"):
        kw["generator"] = torch.Generator().manual_seed(7)
    return model.generate(ids, am, max_new_tokens=12, **kw)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_cached_equals_uncached(kind, strategy):
    model = _model(kind)
    ids, am = padded_batch([9, 6, 3], low=5)
    a = _gen(model, ids, am, **STRATEGIES[strategy])
    b = _gen(model, ids, am, use_cache=False, **STRATEGIES[strategy])
    assert torch.equal(a, b)
    assert a.shape[0] == 3 and a.shape[1] <= 12
    # a broken cache could hide behind a constant model: outputs must differ across inputs
    assert not torch.equal(a[0], a[1]) or not torch.equal(a[1], a[2])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_batch_equals_each_source_alone(kind):
    model = _model(kind)
    ids, am = padded_batch([9, 6, 3], low=5)
    for kw in (dict(), dict(num_beams=3), dict(num_beams=3, copy_bias=2.0)):
        batch = _gen(model, ids, am, **kw)
        for i, n in enumerate([9, 6, 3]):
            alone = _gen(model, ids[i:i + 1, :n], am[i:i + 1, :n], **kw)
            assert torch.equal(batch[i, :alone.shape[1]], alone[0])
            assert (batch[i, alone.shape[1]:] == model.config.pad_token_id).all()


def test_mask_predict_cached_equals_uncached():
    model = _model("prefix", objective="masked-target", decoding="mask-predict")
    ids, am = padded_batch([8, 4], low=5)
    for kw in (dict(), dict(num_beams=3)):
        a = _gen(model, ids, am, **kw)
        assert torch.equal(a, _gen(model, ids, am, use_cache=False, **kw))
        assert not torch.equal(a, _gen(model, ids, am, mask_predict=False, **kw))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_beam_search_with_one_beam_equals_greedy(kind):
    model = _model(kind)
    ids, am = padded_batch([7, 5], low=5)
    assert torch.equal(_gen(model, ids, am, num_beams=1), _gen(model, ids, am))
    # the beam-search code itself with one beam and a fixed length picks the greedy tokens
    from genbert.generation import EncoderOnlyState, Seq2SeqState
    cfg = GenerationConfig(max_new_tokens=10, min_new_tokens=10)
    def state():
        if model.decoder is not None:
            return Seq2SeqState(model, ids, am, None, 10, True, model.config.decoder_start_token_id, 1)
        return EncoderOnlyState(model, ids, am, None, 10, True, False, 1)
    eos = model.config.sep_token_id
    with torch.inference_mode():
        g = greedy_or_sample(state(), 2, cfg, eos, 0, "cpu")
        cfg.num_beams = 1
        b = beam_search(state(), 2, cfg, eos, 0, "cpu")
    assert torch.equal(g, b)


def test_eos_padding_and_min_new_tokens():
    model = _model("encoder-decoder")
    ids, am = padded_batch([6, 6, 6, 6], low=5, seed=3)
    free = _gen(model, ids, am)
    eos = int(free[0, 2])  # pretend a token the model emits is EOS
    out = model.generate(ids, am, max_new_tokens=12, eos_token_id=eos)
    for row in out:
        hits = (row == eos).nonzero()
        if len(hits):
            assert (row[hits[0, 0] + 1:] == model.config.pad_token_id).all()
    blocked = model.generate(ids, am, max_new_tokens=12, min_new_tokens=12, eos_token_id=eos)
    assert blocked.shape[1] == 12 and not (blocked == eos).any()


def test_no_repeat_ngram_and_repetition_penalty_constraints():
    logp = torch.log_softmax(torch.randn(2, 10), -1)
    gen = torch.tensor([[1, 2, 3, 1], [4, 4, 4, 4]])
    out = apply_constraints(logp.clone(), gen, GenerationConfig(no_repeat_ngram_size=2), eos=9)
    assert out[0, 2] == float("-inf") and out[1, 4] == float("-inf")  # "1 2" and "4 4" seen before
    assert torch.isfinite(out[0, [0, 1, 3, 4]]).all()
    pen = apply_constraints(logp.clone(), gen, GenerationConfig(repetition_penalty=2.0), eos=9)
    torch.testing.assert_close(pen[0, 1], logp[0, 1] * 2)
    torch.testing.assert_close(pen[0, 5], logp[0, 5])
    model = _model("prefix")
    ids, am = padded_batch([8], low=5)
    out = model.generate(ids, am, max_new_tokens=20, no_repeat_ngram_size=2)[0].tolist()
    pairs = list(zip(out, out[1:]))
    assert len(pairs) == len(set(pairs))


def test_sampling_is_seeded_and_varies():
    model = _model("prefix")
    ids, am = padded_batch([8, 8], low=5)
    kw = dict(do_sample=True, max_new_tokens=12, temperature=1.5)
    a = model.generate(ids, am, generator=torch.Generator().manual_seed(1), **kw)
    b = model.generate(ids, am, generator=torch.Generator().manual_seed(1), **kw)
    c = model.generate(ids, am, generator=torch.Generator().manual_seed(2), **kw)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("bad, name", [
    (dict(num_beams=0), "num_beams"), (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"),
    (dict(do_sample=True, temperature=0.0), "temperature"), (dict(max_new_tokens=-1), "max_new_tokens"),
    (dict(min_new_tokens=-2), "min_new_tokens"), (dict(top_k=-1), "top_k"),
    (dict(no_repeat_ngram_size=-1), "no_repeat_ngram_size"), (dict(foo=1), "foo"),
    (dict(copy_bias=float("nan")), "copy_bias"), (dict(copy_bias="1"), "copy_bias"),
])
def test_bad_arguments_name_the_argument(bad, name):
    model = _model("prefix")
    ids, am = padded_batch([5], low=5)
    with pytest.raises(ValueError, match=name):
        model.generate(ids, am, **{"max_new_tokens": 4, **bad})


def test_greedy_and_beam_match_transformers_bert2bert(tmp_path):
    from transformers import BertLMHeadModel, BertModel, EncoderDecoderModel
    torch.manual_seed(0)
    ref = EncoderDecoderModel(encoder=BertModel(hf_bert_config()),
                              decoder=BertLMHeadModel(hf_bert_config(is_decoder=True, add_cross_attention=True)))
    ref.config.decoder_start_token_id, ref.config.pad_token_id, ref.config.eos_token_id = 1, 0, 2
    ref.eval().save_pretrained(tmp_path)
    model = GenBert.from_pretrained(tmp_path).eval()
    ids, am = padded_batch([9, 7, 4], low=5)
    for beams in (1, 4):
        kw = dict(max_new_tokens=10, min_new_tokens=10, num_beams=beams)
        with torch.no_grad():
            r = ref.generate(input_ids=ids, attention_mask=am, do_sample=False, decoder_start_token_id=1,
                                 eos_token_id=2, pad_token_id=0, **kw)[:, 1:]
        g = model.generate(ids, am, **kw)
        assert torch.equal(g, r), (beams, g, r)
        assert not torch.equal(g[0], g[1])


def test_greedy_and_beam_match_transformers_causal_lm(tmp_path):
    from transformers import BertLMHeadModel
    torch.manual_seed(1)
    ref = BertLMHeadModel(hf_bert_config(is_decoder=True)).eval()
    ref.save_pretrained(tmp_path)
    model = GenBert.from_pretrained(tmp_path).eval()
    ids, _ = padded_batch([6, 6], low=5)
    outs = []
    for beams in (1, 3):
        kw = dict(max_new_tokens=8, min_new_tokens=8, num_beams=beams, eos_token_id=2, pad_token_id=0)
        with torch.no_grad():
            r = ref.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, **kw)[:, 6:]
        g = model.generate(ids, **kw)
        assert torch.equal(g, r), (beams, g, r)
        outs.append(g)
    assert not torch.equal(outs[0][0], outs[0][1])


def test_encoder_runs_once_and_cross_kv_is_computed_once():
    model = _model("encoder-decoder")
    ids, am = padded_batch([7, 5], low=5)
    calls = {"encoder": 0, "cross_kv": 0}
    model.encoder.register_forward_hook(lambda *a: calls.__setitem__("encoder", calls["encoder"] + 1))
    for layer in model.decoder.layers:
        orig = layer.cross_attention.project_kv
        def counted(memory, orig=orig):
            calls["cross_kv"] += 1
            return orig(memory)
        layer.cross_attention.project_kv = counted
    model.generate(ids, am, max_new_tokens=8, num_beams=3)
    assert calls == {"encoder": 1, "cross_kv": len(model.decoder.layers)}


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_copy_bias_writes_source_tokens(kind, strategy):
    """A large copy prior: every written token but the end token is one of the row's own real
    source tokens (padding is not a source); cached equals uncached with it."""
    model = _model(kind)
    ids, am = padded_batch([9, 6, 3], low=5)
    eos, pad = model.config.generation_eos_token_id, model.config.pad_token_id
    kw = {**STRATEGIES[strategy], "copy_bias": 1e3}
    out = _gen(model, ids, am, **kw)
    assert torch.equal(out, _gen(model, ids, am, use_cache=False, **kw))
    for i, row in enumerate(out):
        written = [t for t in row.tolist() if t not in (eos, pad)]
        assert written and set(written) <= set(ids[i, :int(am[i].sum())].tolist())
    plain = _gen(model, ids, am, **STRATEGIES[strategy])
    assert any(not set(r.tolist()) <= set(ids[i].tolist()) | {eos, pad} for i, r in enumerate(plain))


def test_copy_bonus_marks_each_rows_real_source_once_per_beam():
    from genbert.generation import copy_bonus
    model = _model("prefix")
    c = model.config
    ids = torch.tensor([[c.cls_token_id, 7, 8, 7, c.sep_token_id], [c.cls_token_id, 9, c.sep_token_id, 0, 0]])
    am = (torch.arange(5) < torch.tensor([[5], [3]])).long()
    assert copy_bonus(ids, am, 0.0, c, 20) is None
    bonus = copy_bonus(ids, am, 1.5, c, 20, rows_per_source=2)
    assert bonus.shape == (4, 20)
    expected = torch.zeros(2, 20)
    expected[0, [7, 8]] = 1.5
    expected[1, 9] = 1.5
    assert torch.equal(bonus, expected.repeat_interleave(2, 0))


@pytest.mark.parametrize("vocab", [30522, 2049, 4096])
def test_two_level_top_k_and_argmax_equal_torch(vocab):
    from genbert.generation import argmax_rows, top_k_rows
    g = torch.Generator().manual_seed(vocab)
    x = torch.randn(32, vocab, generator=g).log_softmax(-1)
    x[3, :] = float("-inf")                         # nothing allowed
    x[4, : vocab - 3] = float("-inf")               # fewer finite values than k, all in the tail
    x[5, 100], x[5, 9000 % vocab] = 5.0, 5.0        # a tie for the maximum: argmax keeps the first
    x[6, vocab - 1] = 7.0                           # the best in the last, partial chunk
    for k in (1, 8, 9):
        top, ids = top_k_rows(x, k)
        ref = torch.topk(x, k, dim=-1).values
        assert torch.equal(top, ref)
        assert int(ids.max()) < vocab and torch.equal(x.gather(1, ids), top)
    assert torch.equal(argmax_rows(x), x.argmax(-1))
    assert int(argmax_rows(x)[5]) == min(100, 9000 % vocab)


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_profile_generate_script_writes_both_tables(tmp_path, dtype):
    from genbert import quantize
    if dtype == "int8" and not quantize.available():
        pytest.skip("no fbgemm/x86 quantized engine in this torch build")
    import os
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "profile.md"
    env = {**os.environ, "PYTHONPATH": str(repo), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, str(repo / "scripts" / "profile_generate.py"), "--size", "tiny",
                          "--threads", "1", "--rows", "5", "--dtype", dtype, "--output", str(out)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    text = out.read_text()
    assert f"; {dtype}; bert2bert" in text
    assert "## greedy:" in text and "## beam 4:" in text and text.count("| all operators |") == 2
    assert "mkl::_mkl_linear" in text or "aten::" in text
    if dtype == "int8":
        assert "quantized::linear_dynamic" in text and "--dtype int8" in text
