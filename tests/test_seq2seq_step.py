"""One seq2seq training step against transformers' EncoderDecoderModel on the same weights
(scripts/bench_seq2seq_step.py's parity check, on a tiny config)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genbert import GenBert
from conftest import hf_bert_config, padded_batch

REPO = Path(__file__).resolve().parents[1]


def _pair(tmp_path):
    from transformers import BertLMHeadModel, BertModel, EncoderDecoderModel
    torch.manual_seed(0)
    ref = EncoderDecoderModel(encoder=BertModel(hf_bert_config()),
                              decoder=BertLMHeadModel(hf_bert_config(is_decoder=True, add_cross_attention=True)))
    ref.config.decoder_start_token_id, ref.config.pad_token_id, ref.config.eos_token_id = 1, 0, 2
    ref.save_pretrained(tmp_path)
    return ref.train(), GenBert.from_pretrained(tmp_path).train()


@pytest.mark.parametrize("source_padding", [False, True])
def test_training_steps_match_transformers(tmp_path, source_padding):
    """Forward, backward, AdamW: the same loss (within 1e-4) at every step, so the same
    gradients and updates, with -100 padding in the labels; genbert projects onto the
    vocabulary only where a label exists."""
    ref, ours = _pair(tmp_path)
    ids, am = padded_batch([9, 9, 9, 9] if not source_padding else [9, 7, 5, 3], low=5)
    labels = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, -100, -100], [11, 12, 13, 2, -100], [14, 2, -100, -100, -100]])
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-3) for m in (ref, ours)]
    for _ in range(3):
        losses = []
        for model, opt in zip((ref, ours), opts):
            opt.zero_grad(set_to_none=True)
            if model is ref:
                loss = model(input_ids=ids, attention_mask=am, labels=labels).loss
            else:
                loss = model(ids, attention_mask=am, labels=labels, compute_logits=False).loss
            loss.backward()
            opt.step()
            losses.append(float(loss))
        assert abs(losses[0] - losses[1]) <= 1e-4, losses


def test_bench_seq2seq_step_script_checks_parity(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_seq2seq_step.py"), "--size", "tiny",
                          "--threads", "1", "--batch", "4", "--source-length", "12", "--target-length", "6",
                          "--steps", "1", "--output-dir", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads((tmp_path / "seq2seq_step_tiny_cpu.json").read_text())
    assert res["loss_parity"] and res["loss_abs_diff"] <= 1e-4
    assert set(res["median_step_s"]) == {"transformers", "genbert", "genbert prefix (pseudo-mask)"}
    assert all(v > 0 for v in res["flops_per_step"].values())
    assert "Loss parity" in (tmp_path / "seq2seq_step_tiny_cpu.md").read_text()


def test_trainer_optimizer_is_the_fused_adamw():
    """genbert's Trainer steps AdamW with the fused kernel where every parameter allows it."""
    from genbert.training import TrainConfig, build_optimizer
    from conftest import tiny_config
    opt = build_optimizer(GenBert(tiny_config()), TrainConfig())
    assert opt.defaults["fused"] is True
