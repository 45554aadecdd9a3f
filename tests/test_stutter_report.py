"""scripts/stutter_report.py end to end, on a tiny random model with the real WordPiece vocabulary."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genbert import GenBert, TextGenerator
from genbert.recipes import stutter
from conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, wordpiece):
    d = tmp_path_factory.mktemp("stutter") / "final"
    torch.manual_seed(0)
    model = GenBert(tiny_config(vocab_size=len(wordpiece), mask_scheme="prefix", max_position_embeddings=48))
    settings = {"max_source_length": 24, "max_target_length": 10, "max_new_tokens": 10, "num_beams": 2,
                "no_repeat_ngram_size": 3, "length_penalty": 1.0, "scheme": "prefix", "objective": "pseudo-mask"}
    TextGenerator(model, wordpiece, settings, device="cpu").save_pretrained(d)
    return d


def test_stutter_report_end_to_end(model_dir, tmp_path):
    out = tmp_path / "stutter.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "stutter_report.py"), str(model_dir),
                        "--dataset", "bbc-headlines", "--split", "validation", "--limit", "12", "--batch-size", "6",
                        "--output", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(out.read_text())
    runs = report["runs"]
    assert list(runs) == ["off", "content-words", "word-2gram", "both"]
    assert report["settings"]["num_examples"] == 12 and report["settings"]["stored"]["num_beams"] == 2
    # a random model stutters; blocking content words removes every repeat it can see
    assert runs["off"]["repeated_content_word_share"] > 0
    assert runs["content-words"]["repeated_content_word_share"] == 0 == runs["both"]["repeated_content_word_share"]
    assert runs["off"]["changed_share"] == 0 and runs["both"]["changed_share"] > 0
    assert set(runs["off"]["scores"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert report["examples"] and report["examples"][0]["off"] != report["examples"][0]["both"]
    for line in ("repeated content word %", "ROUGE-L", "content-words", "off -> both", f"wrote {out}"):
        assert line in r.stdout
    # the sources are cut to 24 tokens: said once, not once a run
    assert r.stdout.count("were cut") == 1 and "cut" not in r.stderr


def test_stutter_report_bad_arguments_are_one_line(model_dir, tmp_path, capsys):
    assert stutter.main([str(tmp_path), "--limit", "2"]) == 2
    assert "not a model directory" in capsys.readouterr().err
    assert stutter.main([str(model_dir), "--limit", "0"]) == 2
    assert capsys.readouterr().err.strip() == "stutter_report.py: error: --limit=0: must be >= 1"


def test_variants():
    assert list(stutter.variants(3, diffusion=True)) == ["off"]
    v = stutter.variants(3, diffusion=False)
    assert v["word-3gram"] == {"no_repeat_word_ngram_size": 3, "no_repeat_content_words": False}
    assert v["both"] == {"no_repeat_word_ngram_size": 3, "no_repeat_content_words": True}
