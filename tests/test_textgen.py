import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from genbert import GenBert, TextGenerator
from genbert.tokenization import train_sentencepiece
from conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [f"the {w} market rose {i} points on {d}" for i, (w, d) in
         enumerate([(w, d) for w in ("stock", "bond", "oil", "gold", "housing") for d in ("monday", "friday")])] * 3


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tg")
    tok = train_sentencepiece(TEXTS, d / "tok", vocab_size=60)
    torch.manual_seed(0)
    model = GenBert(tiny_config(vocab_size=len(tok), mask_scheme="prefix", pad_token_id=tok.pad_token_id,
                                cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id,
                                mask_token_id=tok.mask_token_id))
    TextGenerator(model, tok, {"max_source_length": 16, "max_new_tokens": 6}, device="cpu").save_pretrained(d / "m")
    return d / "m"


def test_round_trip_and_generate(model_dir):
    gen = TextGenerator.from_pretrained(model_dir, device="cpu")
    assert gen.settings["max_source_length"] == 16
    assert isinstance(gen.model, GenBert)
    outs = gen.generate(TEXTS[:7], batch_size=3)
    assert len(outs) == 7 and all(isinstance(o, str) for o in outs)
    # batching and order do not change what each input gets
    assert gen.generate(TEXTS[3]) == outs[3]
    assert gen.generate(TEXTS[:7][::-1], batch_size=7) == outs[::-1]
    assert len(set(outs)) > 1


def test_truncation_warns_once(model_dir):
    gen = TextGenerator.from_pretrained(model_dir, device="cpu")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        gen.generate([" ".join(TEXTS)] * 3)
    assert sum("truncated" in str(x.message) for x in w) == 1


def test_cli_reads_lines_and_jsonl(model_dir, tmp_path):
    (tmp_path / "in.txt").write_text("\n".join(TEXTS[:3]) + "\n")
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps({"source": t}) for t in TEXTS[:3]) + "\n")
    cmd = [sys.executable, str(ROOT / "scripts" / "generate.py"), str(model_dir)]
    a = subprocess.run(cmd + [str(tmp_path / "in.txt")], capture_output=True, text=True, check=True)
    b = subprocess.run(cmd + [str(tmp_path / "in.jsonl"), "--jsonl"], capture_output=True, text=True, check=True)
    lines = a.stdout.splitlines()
    assert len(lines) == 3
    assert [json.loads(x)["prediction"] for x in b.stdout.splitlines()] == lines


def test_cli_bad_input_is_one_line(model_dir, tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"source": "a"}\n{"source": \n')
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), str(model_dir),
                        str(tmp_path / "bad.jsonl")], capture_output=True, text=True)
    assert r.returncode != 0 and "bad.jsonl:2" in r.stderr and "Traceback" not in r.stderr


def test_render_masks_script(tmp_path):
    out = tmp_path / "m.png"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "render_masks.py"), "--output", str(out)], check=True,
                   capture_output=True)
    assert out.stat().st_size > 10_000
