"""Progress display: plain periodic lines off a terminal, each phase labelled, the whole job's time left."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from genbert.progress import Progress, format_duration

from test_train_summarization import SCRIPT, TINY, write_pairs


def test_plain_lines_off_a_terminal():
    out = io.StringIO()
    p = Progress("training", total=4, stream=out, every_s=0.0, later_s=lambda rate: 100.0)
    for _ in range(4):
        p.update(1, tokens=50, loss=1.5)
    p.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and "\r" not in out.getvalue()
    assert lines[0].startswith("training: step 1/4 (25%), loss 1.500, ") and "tokens/s" in lines[0]
    assert "this phase ~" in lines[0] and "whole job ~" in lines[0]
    assert lines[-1].startswith("training: step 4/4 (100%)") and "this phase" not in lines[-1]


def test_lines_are_periodic_and_the_last_always_shows():
    out = io.StringIO()
    p = Progress("MLM warm-up", total=50, stream=out, every_s=3600.0)
    for _ in range(50):
        p.update(1)
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[-1]]
    assert out.getvalue().startswith("MLM warm-up: step 50/50 (100%)")


def test_format_duration():
    assert (format_duration(9), format_duration(130), format_duration(3725)) == ("9s", "2m10s", "1h02m")


def test_a_run_logged_to_a_file_labels_each_phase(tmp_path):
    train, val = write_pairs(tmp_path / "t.jsonl", 24), write_pairs(tmp_path / "v.jsonl", 6, seed=1)
    args = [a for a in TINY if a != "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--train", str(train), "--validation", str(val),
                           "--output-dir", str(tmp_path / "run"), "--max-steps", "3", *args],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\r" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert any(line.startswith("MLM warm-up: step 2/2 (100%)") and "whole job ~" in line for line in lines)
    assert any(line.startswith("training: step 3/3 (100%)") and "whole job ~" in line for line in lines)


def test_generating_is_a_labelled_phase_too(tmp_path, capsys):
    import torch
    from genbert import GenBert, TextGenerator
    from genbert.tokenization import train_sentencepiece
    from conftest import tiny_config
    from test_train_summarization import WORDS
    tok = train_sentencepiece([" ".join(WORDS)] * 20, tmp_path / "tok", vocab_size=40)
    torch.manual_seed(0)
    model = GenBert(tiny_config(vocab_size=len(tok), mask_scheme="prefix", pad_token_id=tok.pad_token_id,
                                cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id,
                                mask_token_id=tok.mask_token_id))
    gen = TextGenerator(model, tok, {"max_new_tokens": 3}, device="cpu")
    gen.generate(["the cat sat", "a dog ran", "birds flew"], batch_size=2, progress=True)
    assert 3 <= gen.last_generated_tokens <= 9  # 1 to max_new_tokens ids for each of the 3 inputs
    err = capsys.readouterr().err  # not a terminal here: one plain line at the end, no carriage returns
    assert "generating: batch 2/2 (100%)" in err and "\r" not in err
