"""int8 decoding: GenBert.quantize("int8"), TextGenerator(dtype="int8"), --dtype int8."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genbert import DecoderConfig, GenBert, TextGenerator, packing, quantize
from conftest import padded_batch, tiny_config

pytestmark = pytest.mark.skipif(not quantize.available(), reason="no fbgemm/x86 int8 kernels in this torch build")
ROOT = Path(__file__).resolve().parents[1]
KINDS = {
    "causal": dict(mask_scheme="causal"),
    "prefix": dict(mask_scheme="prefix"),
    "encoder-decoder": dict(decoder=DecoderConfig(num_hidden_layers=2)),
    "bertshare": dict(decoder=DecoderConfig(num_hidden_layers=2, share_encoder_weights=True)),
}


def _model(kind, seed=0):
    torch.manual_seed(seed)
    return GenBert(tiny_config(**KINDS[kind])).eval()


def test_int8_linear_is_close_to_float_and_stores_int8():
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 48)
    q = quantize.Int8Linear.from_float(lin)
    w, scale = q.weight_int8()
    assert w.dtype == torch.int8 and w.shape == (48, 64) and scale.shape == (48,)
    assert int(w.abs().amax(1).min()) == 127  # symmetric per channel: every row uses the full range
    x = torch.randn(5, 3, 64)
    with torch.no_grad():
        ref, out = lin(x), q(x)
    assert out.shape == (5, 3, 48) and out.dtype == torch.float32
    assert float((out - ref).norm() / ref.norm()) < 0.03


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_quantize_returns_a_new_model_and_leaves_the_original_untouched(kind):
    model = _model(kind)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids, am = padded_batch([9, 6, 3], low=5)
    first = model.generate(ids, am, max_new_tokens=8)
    q = model.quantize("int8")
    assert q is not model and q.quantized == "int8" and model.quantized is None
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert any(isinstance(m, packing.Linear) for m in model.modules())  # the original keeps float layers
    assert not any(isinstance(m, torch.nn.Linear) for m in q.modules())
    heads = [m for m in q.modules() if isinstance(m, quantize.Int8LMHead)]
    assert heads and all(isinstance(h.projection, quantize.Int8Linear) for h in heads)
    assert q.embeddings.word.weight.dtype == torch.float32  # lookups stay float32
    assert torch.equal(model.generate(ids, am, max_new_tokens=8), first)
    if kind == "bertshare":  # shared modules stay shared
        assert q.decoder.layers[0].self_attention is q.encoder.layers[0].attention
        assert q.decoder.layers[0].ffn.up is q.encoder.layers[0].ffn.up


@pytest.mark.parametrize("kind", ["causal", "prefix", "encoder-decoder"])
def test_int8_tokens_mostly_equal_float32(kind):
    model = _model(kind)
    q = model.quantize("int8")
    ids, am = padded_batch([9, 8, 6, 5, 4, 3], low=5)
    for kw in (dict(), dict(num_beams=3)):
        f32 = model.generate(ids, am, max_new_tokens=10, min_new_tokens=10, **kw)
        i8 = q.generate(ids, am, max_new_tokens=10, min_new_tokens=10, **kw)
        assert i8.shape == f32.shape
        # the first tokens, where errors have not compounded, agree; most tokens overall
        assert float((i8[:, 0] == f32[:, 0]).float().mean()) >= 0.65
        assert float((i8 == f32).float().mean()) >= 0.6, (kind, kw)
    # the logits themselves are close
    labels = torch.randint(5, 99, (6, 4), generator=torch.Generator().manual_seed(1))
    kw = dict(labels=labels) if model.decoder is not None else dict()
    with torch.no_grad():
        a, b = model(ids, attention_mask=am, **kw).logits, q(ids, attention_mask=am, **kw).logits
    assert float((a - b).norm() / a.norm()) < 0.05
    assert float((a.argmax(-1) == b.argmax(-1)).float().mean()) >= 0.9


def test_int8_decoding_modes_run():
    q = _model("encoder-decoder").quantize("int8")
    ids, am = padded_batch([7, 4], low=5)
    for kw in (dict(use_cache=False), dict(do_sample=True, generator=torch.Generator().manual_seed(0)),
               dict(num_beams=2, no_repeat_ngram_size=2)):
        out = q.generate(ids, am, max_new_tokens=6, **kw)
        assert out.shape[0] == 2 and out.shape[1] <= 6
    diffusion = GenBert(tiny_config(decoding="diffusion")).eval().quantize("int8")
    assert diffusion.generate(ids, am, max_new_tokens=4, steps=2).shape[0] == 2


def test_quantized_model_is_not_saved_or_quantized_twice(tmp_path):
    q = _model("prefix").quantize("int8")
    with pytest.raises(ValueError, match="not saved"):
        q.save_pretrained(tmp_path / "q")
    with pytest.raises(ValueError, match="already quantized"):
        q.quantize("int8")
    with pytest.raises(ValueError, match="dtype"):
        _model("prefix").quantize("int4")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_quantize_refuses_a_model_on_cuda():
    with pytest.raises(ValueError, match="CPU"):
        _model("prefix").cuda().quantize("int8")


# ---------------------------------------------------------------- TextGenerator and the command lines
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from genbert.tokenization import train_sentencepiece
    texts = [f"the {w} market rose {i} points on {d}" for i, (w, d) in
             enumerate([(w, d) for w in ("stock", "bond", "oil", "gold") for d in ("monday", "friday")])] * 3
    d = tmp_path_factory.mktemp("int8")
    tok = train_sentencepiece(texts, d / "tok", vocab_size=39)
    torch.manual_seed(0)
    model = GenBert(tiny_config(vocab_size=len(tok), decoder=DecoderConfig(num_hidden_layers=2),
                                pad_token_id=tok.pad_token_id, cls_token_id=tok.cls_token_id,
                                sep_token_id=tok.sep_token_id, mask_token_id=tok.mask_token_id,
                                decoder_start_token_id=tok.cls_token_id))
    TextGenerator(model, tok, {"max_source_length": 16, "max_new_tokens": 6}, device="cpu").save_pretrained(d / "m")
    (d / "in.txt").write_text("\n".join(texts[:4]) + "\n")
    (d / "data.jsonl").write_text("".join(json.dumps({"source": t, "target": t.split(" rose")[0]}) + "\n"
                                          for t in texts[:4]))
    return d


def test_text_generator_int8(model_dir):
    f32 = TextGenerator.from_pretrained(model_dir / "m", device="cpu")
    i8 = TextGenerator.from_pretrained(model_dir / "m", dtype="int8")
    assert i8.model.quantized == "int8" and f32.model.quantized is None and i8.device.type == "cpu"
    texts = (model_dir / "in.txt").read_text().splitlines()
    outs = i8.generate(texts)
    assert len(outs) == 4 and all(isinstance(o, str) for o in outs)
    assert TextGenerator.from_pretrained(model_dir / "m", dtype="float32").model.quantized is None
    with pytest.raises(ValueError, match="dtype"):
        TextGenerator.from_pretrained(model_dir / "m", dtype="int4")
    with pytest.raises(ValueError, match="CPU"):
        TextGenerator.from_pretrained(model_dir / "m", dtype="int8", device="cuda")


def test_generate_cli_dtype_int8(model_dir):
    cmd = [sys.executable, str(ROOT / "scripts" / "generate.py"), str(model_dir / "m"), str(model_dir / "in.txt")]
    r = subprocess.run(cmd + ["--dtype", "int8"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 4
    bad = subprocess.run(cmd + ["--dtype", "int8", "--device", "cuda"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--dtype int8 decodes on CPU" in bad.stderr
    bad = subprocess.run(cmd + ["--dtype", "int4"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice: 'int4'" in bad.stderr


def test_benchmark_cli_dtype_int8(model_dir, tmp_path):
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--data", str(model_dir / "data.jsonl"),
                        "--task", "summarization", "--model", str(model_dir / "m"), "--dtype", "int8",
                        "--output", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["settings"]["dtype"] == "int8" and "rougeL" in json.dumps(res["scores"])


def test_bench_int8_script_reports_quality_and_identical_share(model_dir, tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_int8.py"), str(model_dir / "m"),
                        "--data", str(model_dir / "data.jsonl"), "--task", "summarization", "--threads", "1",
                        "--tolerance", "100", "--output-dir", str(tmp_path), "--name", "tiny"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "int8_quality_tiny.json").read_text())
    assert res["num_examples"] == 4 and res["main_metric"] == "rougeL" and res["within_tolerance"]
    assert set(res["scores"]) == {"float32", "int8"} and 0.0 <= res["identical_outputs"] <= 1.0
    assert res["delta"] == pytest.approx(res["scores"]["int8"]["rougeL"] - res["scores"]["float32"]["rougeL"])
    assert "int8 - float32" in (tmp_path / "int8_quality_tiny.md").read_text()
    strict = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_int8.py"), str(model_dir / "m"),
                             "--data", str(model_dir / "data.jsonl"), "--task", "summarization", "--threads", "1",
                             "--tolerance", "-1", "--output-dir", str(tmp_path)], capture_output=True, text=True)
    assert strict.returncode == 1  # outside the tolerance: exit status 1
