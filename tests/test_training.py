"""genbert.training: optimisation, checkpoints, bit-exact resume after SIGKILL, torchrun.

This file is also a tiny training script (``python tests/test_training.py OUT [--resume]``)
that the subprocess tests run, alone or under ``torch.distributed.run``.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from genbert import GenBert, GenBertConfig  # noqa: E402
from genbert.data.objectives import Seq2SeqCollator, SpecialIds  # noqa: E402
from genbert.training import (  # noqa: E402
    CHECKPOINT_FILES,
    LOG_FILE,
    PLOT_FILE,
    TrainConfig,
    Trainer,
    bucketed_batches,
    latest_checkpoint,
    list_checkpoints,
)

VOCAB = 40


def tiny_model(dropout: float = 0.1, seed: int = 0) -> GenBert:
    torch.manual_seed(seed)
    cfg = GenBertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=dropout,
                        attention_probs_dropout_prob=dropout, mask_scheme="prefix")
    return GenBert(cfg)


def copy_task(n: int = 32, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """Source: random ids; target: the first half of the source reversed."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(4, 12, (1,), generator=g))
        src = torch.randint(5, VOCAB, (length,), generator=g).tolist()
        out.append((src, src[: length // 2][::-1]))
    return out


def varied_pairs(n: int = 16, seed: int = 1) -> list[tuple[list[int], list[int]]]:
    """Half long pairs (20-30 source and target ids), half short ones (2-3 source ids, 1
    target id): length bucketing puts them in micro-batches of very different token counts."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        lo, hi = ((20, 30), (20, 30)) if i % 2 else ((2, 4), (1, 2))
        src = torch.randint(5, VOCAB, (int(torch.randint(*lo, (1,), generator=g)),), generator=g).tolist()
        tgt = torch.randint(5, VOCAB, (int(torch.randint(*hi, (1,), generator=g)),), generator=g).tolist()
        out.append((src, tgt))
    return out


def collator(objective: str = "masked-target") -> Seq2SeqCollator:
    ids = SpecialIds(pad=0, cls=1, sep=2, mask=3, vocab_size=VOCAB)
    return Seq2SeqCollator(ids, objective, generator=torch.Generator().manual_seed(0))


def make_trainer(out, steps: int = 12, save_steps: int = 3, batch_size: int = 8, grad_accum: int = 2,
                 split_test: bool = False, callback=None) -> Trainer:
    """The trainer the subprocess tests run. ``split_test``: pairs of very different lengths,
    next-token labels, no dropout, float64 weights (the split-invariance checks)."""
    if split_test:
        model, data, coll = tiny_model(dropout=0.0).double(), varied_pairs(), collator("next-token")
    else:
        model, data, coll = tiny_model(), copy_task(40), collator()
    cfg = TrainConfig(lr=2e-3, warmup=2, max_steps=steps, batch_size=batch_size, grad_accum=grad_accum,
                      save_steps=save_steps, log_steps=2, seed=3, progress=False,
                      new_params={"lm_head"}, new_param_lr_multiplier=3.0)
    return Trainer(model, data, coll, cfg, out, step_callback=callback)


class StepOneRecorder:
    """A step_callback keeping step 1's loss, gradients and updated weights."""

    def __init__(self) -> None:
        self.record: dict = {}

    def __call__(self, trainer: Trainer, rec: dict) -> None:
        if rec["step"] == 1:
            named = list(trainer.model.named_parameters())
            self.record = {"loss": rec["loss"],
                           "grads": {n: p.grad.detach().clone() for n, p in named if p.grad is not None},
                           "weights": {n: p.detach().clone() for n, p in named}}


def run_cli(argv=None) -> None:
    """The subprocess entry point: train the tiny model, write OUT/final."""
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--save-steps", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--grad-accum", type=int, default=2)
    p.add_argument("--split-test", action="store_true", help="see make_trainer; writes OUT/step1.pt")
    p.add_argument("--sleep", type=float, default=0.0, help="seconds to sleep after each step")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    recorder = StepOneRecorder()

    def callback(trainer: Trainer, rec: dict) -> None:
        recorder(trainer, rec)
        if a.sleep:
            time.sleep(a.sleep)
    trainer = make_trainer(a.out, a.steps, a.save_steps, a.batch_size, a.grad_accum, a.split_test, callback)
    trainer.train(resume=a.resume)
    if trainer.is_main:
        trainer.model.save_pretrained(Path(a.out) / "final")
        if a.split_test:
            torch.save(recorder.record, Path(a.out) / "step1.pt")


def run_script(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, __file__, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    return load_file(str(path / "model.safetensors"))


# --------------------------------------------------------------------------- in-process tests
def test_loss_decreases_on_tiny_overfit(tmp_path):
    model = tiny_model(dropout=0.0)
    data = copy_task(16)
    cfg = TrainConfig(lr=3e-3, warmup=0.1, max_steps=60, batch_size=8, log_steps=5, progress=False,
                      weight_decay=0.0, plot=False)
    trainer = Trainer(model, data, collator("next-token"), cfg, tmp_path)
    summary = trainer.train()
    losses = [r["loss"] for r in trainer.history if "loss" in r]
    assert summary["steps"] == 60 and len(losses) == 12
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(r["tokens_per_s"] > 0 and r["step_time_s"] > 0 for r in trainer.history)


def test_checkpoint_layout_and_atomic_writes(tmp_path):
    seen_tmp = []

    def on_save(d: Path) -> None:  # runs while the checkpoint is being written: a temp dir
        seen_tmp.append(d.name)
        (d / "extra.txt").write_text("hello")

    cfg = TrainConfig(lr=1e-3, max_steps=7, batch_size=4, save_steps=2, log_steps=1, progress=False)
    trainer = Trainer(tiny_model(), copy_task(20), collator(), cfg, tmp_path, on_save=on_save)
    trainer.train()
    names = sorted(p.name for p in tmp_path.iterdir())
    # saved at 2, 4, 6 and at the end (7); the newest two are kept; no temp dirs are left
    assert names == ["checkpoint-6", "checkpoint-7", LOG_FILE, PLOT_FILE], names
    assert seen_tmp == [".tmp-checkpoint-2", ".tmp-checkpoint-4", ".tmp-checkpoint-6", ".tmp-checkpoint-7"]
    ck = latest_checkpoint(tmp_path)
    assert ck.name == "checkpoint-7" and [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-6", "checkpoint-7"]
    for f in (*CHECKPOINT_FILES, "config.json", "extra.txt"):
        assert (ck / f).is_file(), f
    for f in ("optimizer.pt", "scheduler.pt", "rng_state.pt"):  # loadable without unpickling code
        torch.load(ck / f, weights_only=True)
    state = json.loads((ck / "trainer_state.json").read_text())
    assert state["step"] == 7 and state["total_steps"] == 7 and state["config"]["batch_size"] == 4
    # 20 examples / batch 4 = 5 steps an epoch: step 7 is epoch 1, 2 batches in
    assert (state["epoch"], state["batch_in_epoch"]) == (1, 2)
    reloaded = GenBert.from_pretrained(ck)
    for (n, a), (_, b) in zip(trainer.model.named_parameters(), reloaded.named_parameters()):
        assert torch.equal(a, b), n
    log = [json.loads(x) for x in (tmp_path / LOG_FILE).read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 8))
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "step_time_s", "elapsed_s"} <= set(log[0])
    assert (tmp_path / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a fresh (non-resume) run refuses to mix with another run's checkpoints
    with pytest.raises(ValueError, match="already holds checkpoints"):
        Trainer(tiny_model(), copy_task(20), collator(), cfg, tmp_path).train()


def test_resume_when_finished_is_a_no_op(tmp_path):
    cfg = TrainConfig(lr=1e-3, max_steps=3, batch_size=4, progress=False, plot=False)
    Trainer(tiny_model(), copy_task(12), collator(), cfg, tmp_path).train()
    before = load_weights(tmp_path / "checkpoint-3")
    t = Trainer(tiny_model(seed=5), copy_task(12), collator(), cfg, tmp_path)
    assert t.train(resume=True)["steps"] == 3
    for n, p in t.model.named_parameters():
        assert torch.equal(p.detach(), before[n]), n
    changed = TrainConfig(lr=2e-3, max_steps=3, batch_size=4, progress=False, plot=False)
    with pytest.raises(ValueError, match="lr"):
        Trainer(tiny_model(), copy_task(12), collator(), changed, tmp_path).train(resume=True)


def test_average_last_is_the_mean_of_the_weights_at_those_steps(tmp_path):
    from genbert.training import ResumeError

    def cfg(**kw):
        return TrainConfig(lr=1e-3, max_steps=6, batch_size=4, save_steps=2, save_total_limit=None, seed=1,
                           progress=False, plot=False, **kw)
    Trainer(tiny_model(), copy_task(12), collator(), cfg(), tmp_path / "plain").train()
    raw = {s: load_weights(tmp_path / "plain" / f"checkpoint-{s}") for s in (2, 4, 6)}
    t = Trainer(tiny_model(), copy_task(12), collator(), cfg(average_last=3, average_every=2), tmp_path / "avg")
    t.train()
    assert sorted(p.name for p in (tmp_path / "avg").glob("average-*")) == ["average-2.safetensors",
                                                                           "average-4.safetensors"]
    changed = 0
    for n, p in t.model.named_parameters():
        want = ((raw[2][n].double() + raw[4][n].double()) + raw[6][n].double()) / 3
        assert torch.equal(p.detach(), want.float()), n
        changed += not torch.equal(p.detach(), raw[6][n])
    assert changed > 10  # the mean is not the last weights
    # the checkpoint keeps the last weights (a resumed run continues from them), and resuming a
    # finished run averages again to the same weights
    last = load_weights(tmp_path / "avg" / "checkpoint-6")
    assert all(torch.equal(last[n], raw[6][n]) for n in raw[6])
    again = Trainer(tiny_model(seed=7), copy_task(12), collator(), cfg(average_last=3, average_every=2),
                    tmp_path / "avg")
    again.train(resume=True)
    assert all(torch.equal(a, b) for a, b in zip(again.model.parameters(), t.model.parameters()))
    (tmp_path / "avg" / "average-2.safetensors").unlink()
    with pytest.raises(ResumeError, match="average-2.safetensors"):
        Trainer(tiny_model(), copy_task(12), collator(), cfg(average_last=3, average_every=2),
                tmp_path / "avg").train(resume=True)
    with pytest.raises(ValueError, match="average_last=4 with average_every=2 reaches back"):
        Trainer(tiny_model(), copy_task(12), collator(), cfg(average_last=4, average_every=2), tmp_path / "x")
    with pytest.raises(ValueError, match="average_every"):
        cfg(average_every=0).validate()


def test_the_recipe_passes_weight_averaging_to_the_trainer():
    from genbert.recipes.seq2seq import Seq2SeqRecipe
    c = Seq2SeqRecipe(average_last=3, average_every=50).train_config()
    assert (c.average_last, c.average_every) == (3, 50)
    assert Seq2SeqRecipe().train_config().average_last == 1


def test_bf16_autocast_on_cpu_follows_the_config(tmp_path, monkeypatch):
    """bf16=True autocasts on CPU too (losses differ from float32 but train); None autocasts only where
    the device computes bf16 natively; the recipes default to None, and --fp16 turns it off."""
    from genbert import training
    from genbert.recipes.seq2seq import Seq2SeqRecipe

    def run(bf16, sub):
        cfg = TrainConfig(lr=3e-3, max_steps=6, batch_size=8, log_steps=1, progress=False, plot=False,
                          weight_decay=0.0, bf16=bf16)
        trainer = Trainer(tiny_model(dropout=0.0), copy_task(16), collator("next-token"), cfg, tmp_path / sub)
        trainer.train()
        return trainer.amp_dtype, [r["loss"] for r in trainer.history if "loss" in r]

    off, fp32 = run(False, "a")
    on, bf16 = run(True, "b")
    assert (off, on) == (None, torch.bfloat16)
    assert bf16 != fp32 and all(torch.isfinite(torch.tensor(bf16))) and bf16[-1] < bf16[0]
    monkeypatch.setattr(training, "native_bf16", lambda device: False)
    assert run(None, "c") == (None, fp32)  # bit-equal to float32
    monkeypatch.setattr(training, "native_bf16", lambda device: True)
    assert run(None, "d") == (torch.bfloat16, bf16)
    cfg = TrainConfig(max_steps=1, batch_size=8, progress=False, plot=False, fp16=True)  # fp16 asked: no bf16
    assert Trainer(tiny_model(), copy_task(16), collator("next-token"), cfg, tmp_path / "e").amp_dtype is None
    assert Seq2SeqRecipe().train_config().bf16 is None
    assert Seq2SeqRecipe(fp16=True).train_config().bf16 is False
    assert Seq2SeqRecipe(bf16=False).train_config().bf16 is False


def test_native_bf16_is_a_bool_for_every_device_kind():
    from genbert.training import native_bf16
    assert isinstance(native_bf16("cpu"), bool) and native_bf16("meta") is False
    assert native_bf16("cuda") == (torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def test_per_group_learning_rates(tmp_path):
    model = tiny_model()
    cfg = TrainConfig(lr=1e-3, warmup=0, max_steps=4, batch_size=4, progress=False, plot=False,
                      new_params={"lm_head.dense.weight", "lm_head.dense.bias", "lm_head.norm"},
                      new_param_lr_multiplier=5.0, weight_decay=0.1)
    trainer = Trainer(model, copy_task(16), collator(), cfg, tmp_path)
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert set(groups) == {"base/decay", "base/no_decay", "new/decay", "new/no_decay"}
    assert groups["new/decay"]["param_names"] == ["lm_head.dense.weight"]
    assert sorted(groups["new/no_decay"]["param_names"]) == ["lm_head.dense.bias", "lm_head.norm.bias",
                                                             "lm_head.norm.weight"]
    no_decay = groups["base/no_decay"]["param_names"]
    assert "embeddings.norm.weight" in no_decay and "encoder.layers.0.attention.query.bias" in no_decay
    assert "encoder.layers.0.attention.query.weight" in groups["base/decay"]["param_names"]
    assert groups["base/no_decay"]["weight_decay"] == 0.0 and groups["base/decay"]["weight_decay"] == 0.1
    for _ in range(2):
        lrs = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
        assert lrs["new/decay"] == pytest.approx(5 * lrs["base/decay"]) and lrs["base/decay"] > 0
        trainer.optimizer.step()
        trainer.scheduler.step()
    with pytest.raises(ValueError, match="no trainable parameter"):
        Trainer(tiny_model(), copy_task(8), collator(),
                TrainConfig(max_steps=1, batch_size=4, new_params={"nope"}, progress=False), tmp_path / "x")


def test_bucketed_batches_are_deterministic_and_grouped():
    lengths = [i % 17 for i in range(200)]
    a = bucketed_batches(lengths, 8, seed=1, epoch=0, bucket_size=5)
    assert a == bucketed_batches(lengths, 8, seed=1, epoch=0, bucket_size=5)
    assert a != bucketed_batches(lengths, 8, seed=1, epoch=1, bucket_size=5)
    assert sorted(i for b in a for i in b) == list(range(200))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in a) / len(a)
    plain = bucketed_batches(lengths, 8, seed=1, epoch=0, bucket_size=0)
    plain_spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plain) / len(plain)
    assert spread < plain_spread / 2
    assert all(len(b) >= 3 for b in bucketed_batches(lengths[:10], 8, 0, 0, min_batch=3))


def _flat(d: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([d[k].reshape(-1).double() for k in sorted(d)])


def assert_same_step(a: dict, b: dict, initial: dict[str, torch.Tensor], rel: float = 1e-6) -> None:
    """Two step-1 records (StepOneRecorder) agree: loss, gradients, update (within ``rel``)."""
    assert a["grads"].keys() == b["grads"].keys()
    assert abs(a["loss"] - b["loss"]) <= rel * abs(a["loss"]), (a["loss"], b["loss"])
    ga, gb = _flat(a["grads"]), _flat(b["grads"])
    assert float((ga - gb).norm()) <= rel * float(ga.norm()), float((ga - gb).norm() / ga.norm())
    ua = _flat({k: v - initial[k] for k, v in a["weights"].items()})
    ub = _flat({k: v - initial[k] for k, v in b["weights"].items()})
    assert float(ua.norm()) > 0
    assert float((ua - ub).norm()) <= rel * float(ua.norm()), float((ua - ub).norm() / ua.norm())


def step_one(out: Path, batch_size: int, grad_accum: int) -> dict:
    recorder = StepOneRecorder()
    make_trainer(out, steps=1, save_steps=0, batch_size=batch_size, grad_accum=grad_accum, split_test=True,
                 callback=recorder).train()
    return recorder.record


def test_update_does_not_depend_on_the_micro_batch_split(tmp_path):
    data = varied_pairs()
    trainer = make_trainer(tmp_path / "probe", batch_size=8, grad_accum=2, split_test=True)
    sizes = [int((trainer.collate_fn([data[i] for i in b])["labels"] != -100).sum())
             for b in trainer.epoch_batches(0)]
    assert len(sizes) == 2 and max(sizes) > 4 * min(sizes), sizes  # bucketing: unequal micro-batches
    initial = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    whole = step_one(tmp_path / "whole", 16, 1)
    split = step_one(tmp_path / "split", 8, 2)
    assert_same_step(whole, split, initial)
    # the logged loss is the mean over every labelled token of the step
    model = tiny_model(dropout=0.0).double()
    with torch.no_grad():
        ref = model(**collator("next-token")(data)).loss
    assert whole["loss"] == pytest.approx(float(ref), rel=1e-6)


# --------------------------------------------------------------------------- subprocess tests
def test_resume_after_sigkill_is_bit_exact(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    ref = run_script(str(straight))
    victim = run_script(str(killed), "--sleep", "0.3")
    deadline = time.time() + 60
    while not (killed / "checkpoint-3").is_dir():
        assert victim.poll() is None, victim.communicate()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    time.sleep(0.4)  # somewhere after the first checkpoint, maybe while writing the next one
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not (killed / "final").exists() and not (killed / "checkpoint-12").exists()
    resumed = run_script(str(killed), "--resume")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert "resuming from" in err
    out, err = ref.communicate(timeout=120)
    assert ref.returncode == 0, err
    a, b = load_weights(straight / "final"), load_weights(killed / "final")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the log has each logged step once, as if the run had never stopped
    steps = [json.loads(x)["step"] for x in (killed / LOG_FILE).read_text().splitlines()]
    assert steps == [2, 4, 6, 8, 10, 12]
    assert not [p for p in killed.iterdir() if p.name.startswith(".")]


def test_torchrun_two_processes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "ddp"
    # 2 processes x 8 examples, one micro-batch each: the same step as 1 process x 16
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           __file__, str(out), "--steps", "4", "--save-steps", "2", "--batch-size", "16", "--grad-accum", "1",
           "--split-test"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    initial = {n: p.detach().clone() for n, p in tiny_model(dropout=0.0).double().named_parameters()}
    single = step_one(tmp_path / "single", 16, 1)  # while the two processes run
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert_same_step(single, torch.load(out / "step1.pt", weights_only=True), initial)
    tmp_path = out
    assert (tmp_path / "final" / "model.safetensors").is_file()
    state = json.loads((tmp_path / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and state["step"] == 4
    rng = torch.load(tmp_path / "checkpoint-4" / "rng_state.pt", weights_only=True)
    assert len(rng["ranks"]) == 2
    assert not torch.equal(rng["ranks"][0]["torch"], rng["ranks"][1]["torch"])
    log = [json.loads(x) for x in (tmp_path / LOG_FILE).read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]  # one writer (rank 0)


if __name__ == "__main__":
    run_cli()
