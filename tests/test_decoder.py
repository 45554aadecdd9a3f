import warnings

import pytest
import torch

from genbert import DecoderConfig, GenBert
from conftest import hf_bert_config, padded_batch, tiny_config


def _bert_dir(tmp_path, seed=0):
    from transformers import BertForPreTraining
    torch.manual_seed(seed)
    BertForPreTraining(hf_bert_config()).save_pretrained(tmp_path / "bert")
    return tmp_path / "bert"


def _hf_bert2bert(seed=0):
    from transformers import BertLMHeadModel, BertModel, EncoderDecoderModel
    torch.manual_seed(seed)
    enc = BertModel(hf_bert_config())
    dec = BertLMHeadModel(hf_bert_config(is_decoder=True, add_cross_attention=True))
    m = EncoderDecoderModel(encoder=enc, decoder=dec)
    m.config.decoder_start_token_id = 1
    m.config.pad_token_id = 0
    m.config.eos_token_id = 2
    return m.eval()


def test_encoder_decoder_forward_and_teacher_forcing():
    model = GenBert(tiny_config(decoder=DecoderConfig(num_hidden_layers=2))).eval()
    src, am = padded_batch([7, 4])
    labels = torch.tensor([[5, 6, 7, 2], [8, 2, 0, 0]])
    out = model(src, attention_mask=am, labels=labels)
    assert out.logits.shape == (2, 4, 99)
    dec_in = model.shift_right(labels)
    assert dec_in[:, 0].eq(model.config.decoder_start_token_id).all()
    assert torch.equal(dec_in[:, 1:], labels[:, :-1])
    # padding in labels never counts: -100 and pad give the same loss
    out2 = model(src, attention_mask=am, labels=labels.masked_fill(labels == 0, -100))
    torch.testing.assert_close(out.loss, out2.loss)
    # and equals the loss on the real label positions alone
    logits = out.logits
    keep = labels != 0
    ref = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    torch.testing.assert_close(out.loss, ref)


def test_missing_special_ids_fail_at_construction():
    with pytest.raises(ValueError, match="pad_token_id"):
        tiny_config(pad_token_id=None, decoder=DecoderConfig())
    with pytest.raises(ValueError, match="decoder_start_token_id"):
        tiny_config(decoder_start_token_id=1000, decoder=DecoderConfig())


def test_bert2bert_parity_with_transformers_both_ways(tmp_path):
    from transformers import EncoderDecoderModel
    ref = _hf_bert2bert()
    ref.save_pretrained(tmp_path / "hf")
    model = GenBert.from_pretrained(tmp_path / "hf").eval()
    assert model.config.decoder_start_token_id == 1 and model.config.eos_token_id == 2
    src, am = padded_batch([9, 6, 3])
    dec, dam = padded_batch([5, 3, 4], seed=1)
    with torch.no_grad():
        r = ref(input_ids=src, attention_mask=am, decoder_input_ids=dec, decoder_attention_mask=dam).logits
        g = model(src, attention_mask=am, decoder_input_ids=dec, decoder_attention_mask=dam).logits
    torch.testing.assert_close(g[dam.bool()], r[dam.bool()], atol=1e-4, rtol=0)
    assert (g.argmax(-1)[0] != g.argmax(-1)[1]).any()
    # export: transformers loads genbert's encoder-decoder with identical logits
    model.save_pretrained(tmp_path / "out", format="transformers")
    back = EncoderDecoderModel.from_pretrained(tmp_path / "out").eval()
    with torch.no_grad():
        b = back(input_ids=src, attention_mask=am, decoder_input_ids=dec, decoder_attention_mask=dam).logits
    torch.testing.assert_close(b[dam.bool()], g[dam.bool()], atol=1e-4, rtol=0)


@pytest.mark.parametrize("init", ["bert", "shared", "random"])
def test_export_each_init_to_transformers(tmp_path, init):
    from transformers import EncoderDecoderModel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GenBert.from_pretrained(_bert_dir(tmp_path), decoder=init).eval()
    model.save_pretrained(tmp_path / "out", format="transformers")
    back = EncoderDecoderModel.from_pretrained(tmp_path / "out").eval()
    src, am = padded_batch([6, 4])
    dec, dam = padded_batch([3, 3], seed=2)
    with torch.no_grad():
        torch.testing.assert_close(back(input_ids=src, attention_mask=am, decoder_input_ids=dec).logits,
                                   model(src, attention_mask=am, decoder_input_ids=dec).logits,
                                   atol=1e-4, rtol=0)


def test_bert2bert_init_copies_checkpoint(tmp_path):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        model = GenBert.from_pretrained(_bert_dir(tmp_path), decoder="bert")
    assert any("cross_attention" in str(x.message) for x in w)
    enc, dec = model.encoder.layers[1], model.decoder.layers[1]
    for a, b in [(enc.attention.query.weight, dec.self_attention.query.weight), (enc.ffn.up.weight, dec.ffn.up.weight)]:
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()  # copied, not shared
    assert model.decoder.embeddings.word is model.embeddings.word  # word embeddings shared by default
    assert not torch.equal(dec.cross_attention.query.weight, enc.attention.query.weight)


def test_bertshare_shares_tensors_and_trains_them_consistently(tmp_path):
    path = _bert_dir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shared = GenBert.from_pretrained(path, decoder="shared")
        b2b = GenBert.from_pretrained(path, decoder="bert")
        enc_only = GenBert.from_pretrained(path)
    enc, dec = shared.encoder.layers[0], shared.decoder.layers[0]
    assert dec.self_attention.query.weight is enc.attention.query.weight
    assert dec.ffn.down.weight is enc.ffn.down.weight
    cross = sum(p.numel() for layer in shared.decoder.layers for p in layer.cross_attention.parameters())
    assert shared.num_parameters() == enc_only.num_parameters() + cross
    assert b2b.num_parameters() > shared.num_parameters()
    # one optimizer step moves the shared tensor once, seen identically by encoder and decoder
    opt = torch.optim.SGD(shared.parameters(), lr=0.1)
    before = enc.attention.query.weight.detach().clone()
    src, am = padded_batch([5, 5])
    shared(src, attention_mask=am, labels=torch.tensor([[5, 6, 2], [7, 2, 0]])).loss.backward()
    opt.step()
    assert not torch.equal(before, enc.attention.query.weight)
    assert dec.self_attention.query.weight is enc.attention.query.weight
    # and the saved model keeps the sharing
    shared.save_pretrained(tmp_path / "s")
    again = GenBert.from_pretrained(tmp_path / "s")
    assert again.decoder.layers[0].ffn.up.weight is again.encoder.layers[0].ffn.up.weight
    torch.testing.assert_close(again.encoder.layers[0].attention.query.weight, enc.attention.query.weight)


def test_random_decoder_and_round_trip(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GenBert.from_pretrained(_bert_dir(tmp_path), decoder="random", decoder_layers=1).eval()
    assert len(model.decoder.layers) == 1 and model.config.decoder.init == "random"
    model.save_pretrained(tmp_path / "r")
    again = GenBert.from_pretrained(tmp_path / "r").eval()
    src, am = padded_batch([6, 2])
    dec = torch.tensor([[1, 5, 6], [1, 7, 8]])
    torch.testing.assert_close(again(src, attention_mask=am, decoder_input_ids=dec).logits,
                               model(src, attention_mask=am, decoder_input_ids=dec).logits)
