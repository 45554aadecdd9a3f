import pytest
import torch
import torch.nn.functional as F

from genbert import DecoderConfig, GenBert, packing
from conftest import padded_batch, tiny_config

needs_mkl = pytest.mark.skipif(not packing.available(torch.zeros(1)), reason="no MKL packing in this build")


@needs_mkl
def test_packed_linear_equals_f_linear_and_applies_only_to_its_row_count():
    torch.manual_seed(0)
    lin = packing.Linear(32, 48)
    x, other = torch.randn(6, 1, 32), torch.randn(5, 32)
    with torch.inference_mode(), packing.packed_for(lin, rows=6):
        assert lin.pack is not None and lin.pack[0] == 6
        torch.testing.assert_close(lin(x), F.linear(x, lin.weight, lin.bias), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(lin(other), F.linear(other, lin.weight, lin.bias), rtol=0, atol=0)
    assert lin.pack is None  # only inside the block


@needs_mkl
def test_pack_is_rebuilt_when_the_weight_changes():
    torch.manual_seed(0)
    lin = packing.Linear(16, 16)
    x = torch.randn(4, 16)
    with torch.inference_mode(), packing.packed_for(lin, rows=4):
        before = lin(x)
    with torch.no_grad():
        lin.weight.mul_(2.0)  # an optimizer step changes weights in place
    with torch.inference_mode(), packing.packed_for(lin, rows=4):
        after = lin(x)
    torch.testing.assert_close(after, F.linear(x, lin.weight, lin.bias), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(before, after)


@needs_mkl
@pytest.mark.parametrize("num_beams", [1, 3])
def test_packed_decoding_gives_the_unpacked_logits(num_beams):
    torch.manual_seed(0)
    model = GenBert(tiny_config(decoder=DecoderConfig(num_hidden_layers=2))).eval()
    ids, am = padded_batch([7, 4], low=5)
    dec = torch.randint(5, 99, (2 * num_beams, 1))
    with torch.inference_mode():
        memory = model.encode(ids, am).repeat_interleave(num_beams, 0)
        plain = model.logits(model.decoder(dec, None, memory, None))
        with packing.packed_for(model.decoder, rows=2 * num_beams):
            packed = model.logits(model.decoder(dec, None, memory, None))
    torch.testing.assert_close(packed, plain, rtol=1e-5, atol=1e-5)


@needs_mkl
def test_a_model_that_decoded_can_still_be_copied_and_pickled():
    import copy
    import io
    torch.manual_seed(0)
    model = GenBert(tiny_config(decoder=DecoderConfig(num_hidden_layers=2))).eval()
    ids, am = padded_batch([5, 3], low=5)
    first = model.generate(ids, am, max_new_tokens=5)
    twin = copy.deepcopy(model)  # packs are opaque MKL tensors: they must not live on the modules
    assert torch.equal(twin.generate(ids, am, max_new_tokens=5), first)
    torch.save(model, io.BytesIO())
