"""A small, task-agnostic training loop: AdamW, warmup + linear decay, clipping, length-bucketed
batches, atomic checkpoints with bit-exact resume, and DistributedDataParallel under torchrun.

    trainer = Trainer(model, examples, collate_fn, TrainConfig(lr=1e-4, max_steps=500), "runs/x")
    summary = trainer.train(resume=True)   # continues from the newest complete checkpoint

* ``model(**batch, **forward_kwargs)`` must return something with a ``.loss`` (or a dict with
  ``"loss"``); ``compute_logits=False`` and ``label_smoothing`` are passed when the model's
  ``forward`` takes them.
* One optimizer step averages the loss over its labelled tokens, however they are split into
  micro-batches (``grad_accum``) and processes: a model output's ``loss_weight`` (a 0-dim
  tensor: the number of tokens its ``loss`` is a mean over, see
  :class:`genbert.model.GenBertOutput`) weighs each micro-batch, and the logged loss is the
  weighted mean. Without ``loss_weight`` every micro-batch weighs the same (a micro-batch of
  few tokens then counts as much as a long one).
* ``train_dataset`` is a list of examples; ``collate_fn(list_of_examples) -> dict`` builds a
  batch. Batches are formed by :func:`bucketed_batches` (similar lengths together, batch order
  shuffled; a pure function of seed and epoch). A collator with a ``torch.Generator`` attribute
  ``generator`` is reseeded from (seed, epoch, batch, rank) before every batch, so its random
  masking never depends on what ran before (resume, number of processes).
* ``OUTPUT/checkpoint-STEP/`` holds the model (``model.save_pretrained``), ``optimizer.pt``,
  ``scheduler.pt``, ``rng_state.pt`` (python / numpy / torch / CUDA / collator states, one
  entry per process), ``trainer_state.json`` (step, data position, config). It is written
  in ``OUTPUT/.tmp-checkpoint-STEP`` and renamed into place, so a directory named
  ``checkpoint-STEP`` is always complete; the newest ``save_total_limit`` are kept.
* ``average_last=N`` (with ``average_every=E``): the weights after steps total - E, ..., total -
  (N - 1) E are kept in ``OUTPUT/average-STEP.safetensors``, and once training ends the model's
  weights become the mean of those and the last (checkpoint averaging). Checkpoints keep the last
  weights, so a resumed run continues exactly and averages the same files again.
* ``OUTPUT/log.jsonl`` gets one JSON object per ``log_steps`` (loss, lr, grad norm, tokens/s,
  step time) and per evaluation; ``OUTPUT/loss.png`` plots the loss.
* Under ``torchrun --nproc_per_node N`` each global batch of ``batch_size`` examples is split
  across the N processes; only rank 0 writes files or shows progress.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import math
import os
import random
import shutil
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .io import atomic_write, write_json, write_text

__all__ = [
    "TrainConfig",
    "ResumeError",
    "Trainer",
    "DistInfo",
    "init_distributed",
    "barrier",
    "bucketed_batches",
    "example_length",
    "latest_checkpoint",
    "list_checkpoints",
    "build_optimizer",
    "linear_schedule",
    "CHECKPOINT_PREFIX",
    "LOG_FILE",
    "PLOT_FILE",
    "STATE_FILE",
]

CHECKPOINT_PREFIX = "checkpoint-"
TMP_PREFIX = ".tmp-"
DELETE_PREFIX = ".deleting-"
LOG_FILE = "log.jsonl"
PLOT_FILE = "loss.png"
AVERAGE_PREFIX = "average-"  # OUTPUT/average-STEP.safetensors: weights kept for TrainConfig.average_last
STATE_FILE = "trainer_state.json"  # written last: its presence marks a complete checkpoint
CHECKPOINT_FILES = ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pt", STATE_FILE)

# settings that change the training trajectory: a resumed run must use the same values
_TRAJECTORY_FIELDS = ("lr", "weight_decay", "warmup", "epochs", "max_steps", "batch_size", "grad_accum",
                      "max_grad_norm", "label_smoothing", "seed", "new_param_lr_multiplier", "new_params",
                      "bucket_size", "adam_betas", "adam_eps")


class ResumeError(ValueError):
    """A checkpoint cannot be resumed: incomplete, or saved with different settings."""


# --------------------------------------------------------------------------- configuration
@dataclass
class TrainConfig:
    """Training settings.

    ``warmup``: a fraction of the total steps when < 1, else a number of steps.
    ``max_steps`` (optimizer steps) overrides ``epochs`` when set. ``batch_size`` is the global
    batch per forward pass (split across processes); one optimizer step sees
    ``batch_size * grad_accum`` examples. ``save_steps=0`` saves only at the end.
    ``new_params``: names (or module prefixes) of newly initialised parameters, trained with
    ``lr * new_param_lr_multiplier``. ``bf16``: autocast in bfloat16 (True, on CUDA or CPU), where
    the device computes bfloat16 natively (None; :func:`native_bf16`), or float32 (False).
    ``fp16`` autocast (with a GradScaler) applies on CUDA only.
    ``bucket_size``: batches per length-sorted chunk (0 = plain random batches).
    """

    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.0
    epochs: float = 1.0
    max_steps: Optional[int] = None
    batch_size: int = 16
    grad_accum: int = 1
    max_grad_norm: Optional[float] = 1.0
    label_smoothing: float = 0.0
    seed: int = 0
    save_steps: int = 0
    save_total_limit: Optional[int] = 2
    log_steps: int = 10
    bf16: Optional[bool] = False
    fp16: bool = False
    gradient_checkpointing: bool = False
    new_param_lr_multiplier: float = 1.0
    new_params: frozenset = field(default_factory=frozenset)
    device: Optional[str] = None
    adam_betas: tuple = (0.9, 0.999)
    adam_eps: float = 1e-8
    bucket_size: int = 50
    # the final weights: the mean of the weights after the last `average_last` steps that are
    # multiples of `average_every` back from the end (the last step included); 1 = the last weights
    average_last: int = 1
    average_every: int = 100
    progress: bool = True
    progress_label: str = "training"  # the progress bar's label, e.g. "MLM warm-up"
    plot: bool = True

    def __post_init__(self) -> None:
        self.new_params = frozenset(self.new_params or ())
        self.adam_betas = tuple(float(b) for b in self.adam_betas)

    def validate(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r}: {what}")
        need(self.lr > 0, "lr", "must be > 0")
        need(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        need(self.warmup >= 0 and (self.warmup < 1 or float(self.warmup).is_integer()), "warmup",
             "must be a fraction in [0, 1) or a whole number of steps")
        need(self.epochs > 0, "epochs", "must be > 0")
        need(self.max_steps is None or (isinstance(self.max_steps, int) and self.max_steps >= 1),
             "max_steps", "must be None or an int >= 1")
        need(isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size", "must be an int >= 1")
        need(isinstance(self.grad_accum, int) and self.grad_accum >= 1, "grad_accum", "must be an int >= 1")
        need(self.max_grad_norm is None or self.max_grad_norm >= 0, "max_grad_norm", "must be None or >= 0")
        need(0 <= self.label_smoothing < 1, "label_smoothing", "must be in [0, 1)")
        need(isinstance(self.save_steps, int) and self.save_steps >= 0, "save_steps", "must be an int >= 0")
        need(self.save_total_limit is None or self.save_total_limit >= 1, "save_total_limit",
             "must be None (keep all) or >= 1")
        need(isinstance(self.log_steps, int) and self.log_steps >= 1, "log_steps", "must be an int >= 1")
        need(not (self.bf16 and self.fp16), "fp16", "bf16 and fp16 are exclusive")
        need(self.new_param_lr_multiplier > 0, "new_param_lr_multiplier", "must be > 0")
        need(self.bucket_size >= 0, "bucket_size", "must be >= 0")
        need(isinstance(self.average_last, int) and self.average_last >= 1, "average_last", "must be an int >= 1")
        need(isinstance(self.average_every, int) and self.average_every >= 1, "average_every",
             "must be an int >= 1")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["new_params"] = sorted(self.new_params)
        d["adam_betas"] = list(self.adam_betas)
        return d


# --------------------------------------------------------------------------- distributed
@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: Optional[str] = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: Optional[str] = None) -> DistInfo:
    """Join the process group torchrun describes (WORLD_SIZE > 1): nccl on CUDA, gloo on CPU.
    A single process (no torchrun) gets DistInfo() and nothing is initialised."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and not (device or "").startswith("cpu")
        backend = "nccl" if use_cuda else "gloo"
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dist.get_backend())


def barrier(info: DistInfo) -> None:
    """Wait for every process (a no-op without torchrun)."""
    if info.enabled:
        dist.barrier()


# --------------------------------------------------------------------------- batching
def example_length(example: Any) -> int:
    """A length for bucketing: token count of a list, a (source, target) pair (summed) or a
    mapping's ``input_ids`` (plus ``labels`` / ``target`` when present)."""
    if isinstance(example, Mapping):
        n = 0
        for key in ("input_ids", "source", "target", "labels"):
            if key in example:
                n += example_length(example[key])
        return n
    if isinstance(example, Tensor):
        return int(example.numel())
    if isinstance(example, str):
        return len(example.split())
    if isinstance(example, (list, tuple)):
        if example and all(isinstance(x, (list, tuple, Tensor)) for x in example):
            return sum(example_length(x) for x in example)
        return len(example)
    return 1


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (splitmix64 style), stable across runs and platforms."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (int(v) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def bucketed_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                     bucket_size: int = 50, min_batch: int = 1) -> list[list[int]]:
    """Index batches for one epoch: shuffle, cut into chunks of ``batch_size * bucket_size``,
    sort each chunk by length (longest first), cut into batches, shuffle the batch order.
    Deterministic in (seed, epoch). Batches smaller than ``min_batch`` are dropped."""
    n = len(lengths)
    g = torch.Generator().manual_seed(_mix(seed, epoch, 0x5EED))
    perm = torch.randperm(n, generator=g).tolist()
    batches: list[list[int]] = []
    if bucket_size:
        chunk = batch_size * bucket_size
        for start in range(0, n, chunk):
            part = sorted(perm[start:start + chunk], key=lambda i: -lengths[i])
            batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
        order = torch.randperm(len(batches), generator=g).tolist()
        batches = [batches[i] for i in order]
    else:
        batches = [perm[i:i + batch_size] for i in range(0, n, batch_size)]
    return [b for b in batches if len(b) >= min_batch]


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bfloat16 matmuls natively: a CUDA GPU with bf16, or a CPU with
    AVX512-BF16 or AMX (there bf16 autocast halves a training step of the summarization default,
    docs/summarization.md; elsewhere it is emulated, and slower than float32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        return any(bool(getattr(cpu, f, lambda: False)()) for f in ("_is_avx512_bf16_supported",
                                                                      "_is_amx_tile_supported"))
    return False


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _count_tokens(batch: Mapping, pad_id: Optional[int]) -> int:
    def real(x: Tensor) -> int:
        return int((x != pad_id).sum()) if pad_id is not None else x.numel()
    n = 0
    ids = batch.get("input_ids")
    if isinstance(ids, Tensor):
        n += real(ids)
    dec = batch.get("decoder_input_ids")
    labels = batch.get("labels")
    if isinstance(dec, Tensor):
        n += real(dec)
    elif isinstance(labels, Tensor) and isinstance(ids, Tensor) and labels.shape != ids.shape:
        n += int((labels != -100).sum())  # encoder-decoder targets
    return n


# --------------------------------------------------------------------------- optimizer
def _no_decay_names(model: nn.Module) -> set[str]:
    """Biases and LayerNorm weights: no weight decay (BERT's recipe)."""
    out = set()
    for mod_name, module in model.named_modules():
        for p_name, _ in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if p_name == "bias" or p_name.endswith("_bias") or isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
                out.add(full)
    return out


def _is_new(name: str, new: frozenset) -> bool:
    return name in new or any(name.startswith(p.rstrip(".") + ".") for p in new)


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over up to four named groups: decay / no_decay, times base / new (new parameters
    train at ``lr * new_param_lr_multiplier``). Each group carries ``name`` and ``lr_scale``."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    names = {n for n, _ in params}
    unknown = [e for e in config.new_params if not any(_is_new(n, frozenset([e])) for n in names)]
    if unknown:
        raise ValueError(f"new_params name no trainable parameter: {', '.join(sorted(unknown)[:5])}")
    no_decay = _no_decay_names(model)
    groups: dict[str, dict[str, Any]] = {}
    for n, p in params:
        new = _is_new(n, config.new_params)
        key = ("new" if new else "base") + ("/no_decay" if n in no_decay else "/decay")
        if key not in groups:
            scale = config.new_param_lr_multiplier if new else 1.0
            groups[key] = {"params": [], "param_names": [], "name": key, "lr_scale": scale,
                           "lr": config.lr * scale,
                           "weight_decay": 0.0 if n in no_decay else config.weight_decay}
        groups[key]["params"].append(p)
        groups[key]["param_names"].append(n)
    order = ["base/decay", "base/no_decay", "new/decay", "new/no_decay"]
    # the fused kernel (one pass over each tensor instead of one per operation: a fifth of a
    # MiniLM-size seq2seq step on CPU with the per-tensor loop) where every parameter allows it
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64, torch.float16,
                                                                 torch.bfloat16) for _, p in params)
    return torch.optim.AdamW([groups[k] for k in order if k in groups], lr=config.lr,
                             betas=config.adam_betas, eps=config.adam_eps, fused=fused or None)


def linear_schedule(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """LR factor: linear warmup from 0 over ``warmup_steps``, then linear decay to 0 at ``total_steps``."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
    return factor


# --------------------------------------------------------------------------- checkpoints
def _checkpoint_step(path: Path) -> Optional[int]:
    name = path.name
    if not name.startswith(CHECKPOINT_PREFIX):
        return None
    tail = name[len(CHECKPOINT_PREFIX):]
    return int(tail) if tail.isdigit() else None


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoint directories (``checkpoint-STEP`` with every file), oldest first."""
    d = Path(output_dir)
    if not d.is_dir():
        return []
    found = []
    for p in d.iterdir():
        step = _checkpoint_step(p)
        if step is not None and p.is_dir() and all((p / f).is_file() for f in CHECKPOINT_FILES):
            found.append((step, p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(output_dir: str | os.PathLike) -> Optional[Path]:
    """The newest complete checkpoint in ``output_dir``, or None."""
    ckpts = list_checkpoints(output_dir)
    return ckpts[-1] if ckpts else None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _remove_dir(path: Path) -> None:
    """Rename out of the checkpoint namespace first, then delete: never a half-deleted checkpoint-N."""
    if not path.exists():
        return
    doomed = path.with_name(f"{DELETE_PREFIX}{path.name}")
    if doomed.exists():
        shutil.rmtree(doomed, ignore_errors=True)
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def _torch_save(obj: Any, path: Path) -> None:
    def write(tmp: str) -> None:
        torch.save(obj, tmp)
    atomic_write(path, write)


def _rng_state(collator_generator: Optional[torch.Generator]) -> dict[str, Any]:
    """Every RNG state as tensors / plain lists, so ``torch.load(weights_only=True)`` reads it."""
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "torch": torch.get_rng_state(),
    }
    if "numpy" in sys.modules:
        import numpy as np
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = {"kind": str(kind), "keys": torch.as_tensor(keys.astype("int64")), "pos": int(pos),
                          "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if collator_generator is not None:
        state["collator"] = collator_generator.get_state()
    return state


def _set_rng_state(state: Mapping[str, Any], collator_generator: Optional[torch.Generator]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"]), py["gauss"]))
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        import numpy as np
        s = state["numpy"]
        np.random.set_state((s["kind"], s["keys"].numpy().astype("uint32"), s["pos"], s["has_gauss"],
                             s["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if collator_generator is not None and "collator" in state:
        collator_generator.set_state(state["collator"])


@torch.no_grad()
def load_mean_weights(model: nn.Module, states: Sequence[Mapping[str, Tensor]]) -> None:
    """Set ``model``'s floating-point weights to their mean over ``states`` (state dicts holding at
    least those names), summed in float64 in the order given: the same states give the same bits."""
    own = model.state_dict()
    names = [k for k, v in own.items() if v.is_floating_point()]
    mean = {k: sum((s[k].to(own[k].device, torch.float64) for s in states),
                   torch.zeros_like(own[k], dtype=torch.float64)) / len(states) for k in names}
    for k in names:  # after every mean is taken: tied names share one tensor
        own[k].copy_(mean[k])


# --------------------------------------------------------------------------- the trainer
def trim_jsonl(path: Path, step: int) -> list[dict[str, Any]]:
    """Keep the records of a JSONL log up to `step` (dropping those an interrupted run wrote
    after its last checkpoint, and any line cut short by a crash); returns the kept records."""
    path = Path(path)
    if not path.is_file():
        return []
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and rec.get("step", 0) <= step:
            kept.append(rec)
    write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
    return kept


class Trainer:
    """See the module docstring. ``eval_fn(model) -> dict`` runs (rank 0, eval mode) at the end
    of every epoch; its result is logged. ``on_save(dir)`` adds files to each checkpoint (e.g.
    the tokenizer). ``step_callback(trainer, record)`` runs after every optimizer step.
    ``lengths`` (per example) drive length bucketing; default :func:`example_length`.
    ``on_log(record)`` gets each record written to log.jsonl (main process only)."""

    def __init__(self, model: nn.Module, train_dataset: Sequence[Any], collate_fn: Callable[[list], Mapping],
                 config: TrainConfig, output_dir: str | os.PathLike,
                 eval_fn: Optional[Callable[[nn.Module], Optional[Mapping[str, Any]]]] = None,
                 lengths: Optional[Sequence[int]] = None, on_save: Optional[Callable[[Path], None]] = None,
                 step_callback: Optional[Callable[["Trainer", dict], None]] = None,
                 forward_kwargs: Optional[Mapping[str, Any]] = None,
                 later_s: Optional[Callable[[float], float]] = None,
                 on_log: Optional[Callable[[dict[str, Any]], None]] = None):
        config.validate()
        self.config = config
        self.output_dir = Path(output_dir)
        # a Sequence other than a list (e.g. token chunks memory-mapped from disk) is indexed where it lies
        self.dataset = train_dataset if isinstance(train_dataset, Sequence) and not isinstance(train_dataset, list) \
            else list(train_dataset)
        if not self.dataset:
            raise ValueError("the training set is empty")
        self.lengths = list(lengths) if lengths is not None else [example_length(x) for x in self.dataset]
        if len(self.lengths) != len(self.dataset):
            raise ValueError(f"{len(self.lengths)} lengths for {len(self.dataset)} examples")
        self.collate_fn = collate_fn
        self.eval_fn, self.on_save, self.step_callback = eval_fn, on_save, step_callback
        # seconds of the job's work after this run, given its tokens/s (shown as the whole job's time left)
        self.later_s = later_s
        self.on_log = on_log  # also given every log.jsonl record (main process): e.g. a TensorBoard writer
        self.dist = init_distributed(config.device)
        self.device = self._resolve_device(config.device)
        world = self.dist.world_size
        if config.batch_size % world:
            raise ValueError(f"batch_size={config.batch_size} must be divisible by the {world} processes")
        self.model = model.to(self.device)
        if config.gradient_checkpointing:
            if not hasattr(model, "gradient_checkpointing_enable"):
                raise ValueError("gradient_checkpointing needs a model with gradient_checkpointing_enable()")
            model.gradient_checkpointing_enable()
        self.wrapped: nn.Module = model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = DDP(model, device_ids=ids, find_unused_parameters=True)
        self.optimizer = build_optimizer(model, config)
        self.batches_per_epoch = len(self.epoch_batches(0))
        if self.batches_per_epoch == 0:
            raise ValueError(f"{len(self.dataset)} examples make no batch for {world} processes")
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / config.grad_accum)
        self.total_steps = config.max_steps or max(1, math.ceil(config.epochs * self.steps_per_epoch))
        w = config.warmup
        self.warmup_steps = int(round(w * self.total_steps)) if w < 1 else int(w)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           linear_schedule(self.warmup_steps, self.total_steps))
        n, every = config.average_last, config.average_every
        if (n - 1) * every >= self.total_steps:
            raise ValueError(f"TrainConfig.average_last={n} with average_every={every} reaches back before step 1 "
                             f"of {self.total_steps}")
        self.average_steps = [self.total_steps - i * every for i in reversed(range(n))]  # ascending
        use_cuda = self.device.type == "cuda"
        # None: bf16 where the device computes it natively, unless fp16 was asked for
        bf16 = (native_bf16(self.device) and not config.fp16) if config.bf16 is None else config.bf16
        self.amp_dtype = torch.bfloat16 if bf16 else (torch.float16 if config.fp16 and use_cuda else None)
        self.scaler = torch.amp.GradScaler("cuda") if (use_cuda and config.fp16) else None
        self.forward_kwargs = dict(forward_kwargs or {})
        params = inspect.signature(model.forward).parameters
        if "compute_logits" in params:
            self.forward_kwargs.setdefault("compute_logits", False)
        if config.label_smoothing:
            if "label_smoothing" not in params:
                raise ValueError("label_smoothing needs a model whose forward takes label_smoothing")
            self.forward_kwargs.setdefault("label_smoothing", config.label_smoothing)
        cfg = getattr(model, "config", None)
        self.pad_id = getattr(cfg, "pad_token_id", None)
        # progress
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0  # optimizer steps (groups of micro-batches) done in self.epoch
        self.elapsed = 0.0
        self.tokens_seen = 0
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ helpers
    def _resolve_device(self, device: Optional[str]) -> torch.device:
        if device:
            d = torch.device(device)
            if d.type == "cuda" and d.index is None:
                d = torch.device("cuda", self.dist.local_rank)
            return d
        if torch.cuda.is_available():
            return torch.device("cuda", self.dist.local_rank)
        return torch.device("cpu")

    @property
    def autocast_note(self) -> str:
        """The precision part of a run's log line: " in bfloat16 autocast" (or float16), "" in float32."""
        return f" in {str(self.amp_dtype).replace('torch.', '')} autocast" if self.amp_dtype is not None else ""

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def _collator_generator(self) -> Optional[torch.Generator]:
        g = getattr(self.collate_fn, "generator", None)
        return g if isinstance(g, torch.Generator) else None

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The global batches (dataset indices) of ``epoch``."""
        return bucketed_batches(self.lengths, self.config.batch_size, self.config.seed, epoch,
                                self.config.bucket_size, min_batch=self.dist.world_size)

    def _epoch_groups(self, epoch: int) -> list[list[list[int]]]:
        b, ga = self.epoch_batches(epoch), self.config.grad_accum
        return [b[i:i + ga] for i in range(0, len(b), ga)]

    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            with open(self.output_dir / LOG_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, sort_keys=True) + "\n")
            if self.on_log is not None:
                self.on_log(record)

    def _reduce(self, values: list[float]) -> list[float]:
        if not self.dist.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device if self.dist.backend == "nccl" else "cpu")
        dist.all_reduce(t)
        return t.tolist()

    def _all_reduce(self, t: Tensor) -> Tensor:
        """Sum a tensor over the processes (on the device for nccl, through the CPU for gloo)."""
        if self.dist.backend == "nccl" or t.device.type == "cpu":
            t = t.clone()
            dist.all_reduce(t)
            return t
        host = t.cpu()
        dist.all_reduce(host)
        return host.to(t.device)

    # ------------------------------------------------------------------ one optimizer step
    def _train_step(self, group: list[list[int]], epoch: int, group_index: int) -> tuple[float, int, float, float]:
        """Forward/backward over the group's micro-batches, clip, step. Returns (loss, tokens of
        this process, gradient norm, learning rate of the first group used for the step); the
        loss is the ``loss_weight``-weighted mean over every process's micro-batches.

        Micro-batch j of process r contributes ``loss_rj * w_rj`` (``w`` = the model output's
        ``loss_weight``); once all have run, the summed weight W is all-reduced and the
        gradients (which DDP averaged over the processes) are scaled by ``world_size / W``: the
        step's gradient is that of sum(loss * w) / W whatever the split into micro-batches and
        processes. A model output without ``loss_weight`` gets w = 1 per micro-batch (each
        micro-batch counts equally, however many tokens it holds)."""
        cfg, rank, world = self.config, self.dist.rank, self.dist.world_size
        self.optimizer.zero_grad(set_to_none=True)
        tokens, n = 0, len(group)
        exact = torch.float32 if self.device.type == "mps" else torch.float64  # mps has no float64
        sums = torch.zeros(2, dtype=exact, device=self.device)  # sum(loss * w), sum(w) here
        weighted: Optional[bool] = None
        ref = 1.0
        gen = self._collator_generator()
        check = getattr(self.model, "check_batch", None) if self.device.type != "cpu" else None
        for j, global_batch in enumerate(group):
            if gen is not None:  # masking = f(seed, epoch, batch, rank): resume- and world-size-proof
                gen.manual_seed(_mix(cfg.seed, epoch, group_index * cfg.grad_accum + j, rank))
            local = global_batch[rank::world]
            host = self.collate_fn([self.dataset[i] for i in local])
            if check is not None:  # once per batch on the host: forward skips it on the device
                check(host)
            tokens += _count_tokens(host, self.pad_id)
            batch = _to_device(host, self.device)
            sync = j == n - 1 or not self.dist.enabled
            ctx = contextlib.nullcontext() if sync else self.wrapped.no_sync()
            with ctx:
                amp = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None
                       else contextlib.nullcontext())
                with amp:
                    out = self.wrapped(**batch, **self.forward_kwargs)
                if isinstance(out, Mapping):
                    loss, weight = out["loss"], out.get("loss_weight")
                else:
                    loss, weight = out.loss, getattr(out, "loss_weight", None)
                if loss is None:
                    raise ValueError("the model returned no loss: does the batch carry labels?")
                if weighted is None:
                    weighted = weight is not None
                    # backward runs on loss * w / ref, ref the same on every process, so that the
                    # summed backward stays near a mean's range (fp16 GradScaler) before the rescale
                    ref = (max(1.0, sum(self.lengths[i] for b in group for i in b) / world) if weighted
                           else float(n))
                elif weighted != (weight is not None):
                    raise ValueError("the model returned loss_weight for some micro-batches only")
                w = weight.detach().float() if weighted else torch.ones((), device=loss.device)
                scaled = loss.float() * (w / ref)
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            sums += torch.stack([loss.detach().to(exact) * w.to(exact), w.to(exact)]).to(sums.device)
        if self.dist.enabled:
            sums = self._all_reduce(sums)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if weighted:  # DDP averaged over the processes: sum over every micro-batch / total weight
            factor = (world * ref / sums[1].clamp(min=1e-12)).float()
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            if grads:
                torch._foreach_mul_(grads, factor)
        # unweighted: each backward ran on loss / n and DDP averaged the processes: already a mean
        max_norm = cfg.max_grad_norm if cfg.max_grad_norm else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))
        lr = float(self.optimizer.param_groups[0]["lr"])
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        return float(sums[0] / sums[1]), tokens, grad_norm, lr

    # ------------------------------------------------------------------ the loop
    def train(self, resume: bool | str | os.PathLike = False) -> dict[str, Any]:
        """Train to ``total_steps``. ``resume=True`` continues from the newest complete checkpoint
        in the output directory (if any); a path names the checkpoint. Returns a summary."""
        cfg = self.config
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self._clean_temp_dirs()
        barrier(self.dist)
        ckpt: Optional[Path] = None
        if resume is True:
            ckpt = latest_checkpoint(self.output_dir)
        elif resume:
            ckpt = Path(resume)
        if ckpt is not None:
            self.load_checkpoint(ckpt)
        else:
            if list_checkpoints(self.output_dir):
                raise ResumeError(f"{self.output_dir} already holds checkpoints of another run: "
                                 "resume from them or clear the directory")
            if self.is_main:
                (self.output_dir / LOG_FILE).unlink(missing_ok=True)
                for p in self.output_dir.glob(f"{AVERAGE_PREFIX}*.safetensors"):  # another run's weights
                    p.unlink()
            # dropout noise: a function of the seed (and the process), whatever ran before
            torch.manual_seed(_mix(cfg.seed, 0xD809, self.dist.rank))
        self.wrapped.train()
        pbar = None
        if self.is_main and cfg.progress:
            from .progress import Progress
            pbar = Progress(cfg.progress_label, self.total_steps, initial=self.step, later_s=self.later_s)
        window = {"loss": 0.0, "n": 0, "tokens": 0, "time": 0.0, "grad_norm": 0.0, "lr": 0.0}
        start_time = time.perf_counter() - self.elapsed
        last_saved = self.step if ckpt is not None else -1
        try:
            while self.step < self.total_steps:
                groups = self._epoch_groups(self.epoch)
                epoch = self.epoch
                for gi in range(self.batch_in_epoch, len(groups)):
                    t0 = time.perf_counter()
                    loss, tokens, grad_norm, lr = self._train_step(groups[gi], epoch, gi)
                    window["lr"] = lr
                    dt = time.perf_counter() - t0
                    self.step += 1
                    self.tokens_seen += tokens
                    self.epoch, self.batch_in_epoch = (epoch + 1, 0) if gi + 1 == len(groups) else (epoch, gi + 1)
                    self.elapsed = time.perf_counter() - start_time
                    for k, v in (("loss", loss), ("n", 1), ("tokens", tokens), ("time", dt), ("grad_norm", grad_norm)):
                        window[k] += v
                    if pbar is not None:
                        pbar.update(1, tokens * self.dist.world_size, loss=loss)
                    if self.step % cfg.log_steps == 0 or self.step == self.total_steps:
                        self._log_window(window)
                    if self.step_callback is not None:
                        self.step_callback(self, {"step": self.step, "loss": loss, "tokens": tokens, "step_time_s": dt})
                    if self.epoch != epoch and self.eval_fn is not None:
                        self._evaluate(pbar)
                    if self.step in self.average_steps[:-1]:
                        self.save_weights(self._average_path(self.step))
                    if (cfg.save_steps and self.step % cfg.save_steps == 0) or self.step == self.total_steps:
                        self.save_checkpoint()
                        last_saved = self.step
                    if self.step >= self.total_steps:
                        break
        finally:
            if pbar is not None:
                pbar.close()
        if last_saved != self.step:
            self.save_checkpoint()
        if len(self.average_steps) > 1:
            self._average_weights()
        if self.is_main and cfg.plot:
            self.plot_loss()
        losses = [r["loss"] for r in self.history if "loss" in r]
        return {"steps": self.step, "epochs": self.step / self.steps_per_epoch, "total_steps": self.total_steps,
                "final_loss": losses[-1] if losses else None, "elapsed_s": round(self.elapsed, 2),
                "tokens_per_s": round(self.tokens_seen * self.dist.world_size / max(self.elapsed, 1e-9), 1),
                "checkpoint": str(self.output_dir / f"{CHECKPOINT_PREFIX}{self.step}")}

    def _log_window(self, window: dict[str, float]) -> None:
        loss_sum, n, tokens, t, gn = self._reduce([window["loss"], window["n"], window["tokens"], window["time"],
                                                   window["grad_norm"]])
        world = self.dist.world_size
        record = {
            "step": self.step,
            "epoch": round(self.step / self.steps_per_epoch, 4),
            "loss": loss_sum / n,
            "lr": window["lr"],  # used by the last step of the window (first parameter group)
            "grad_norm": gn / n,
            "tokens_per_s": round(tokens / max(t / world, 1e-9), 1),
            "step_time_s": round(t / n, 4),
            "elapsed_s": round(self.elapsed, 2),
        }
        self._log(record)
        for k in window:
            window[k] = 0.0 if k != "n" else 0

    def _evaluate(self, pbar) -> None:
        result = None
        if self.is_main:
            was = self.model.training
            self.model.eval()
            try:
                result = self.eval_fn(self.model)
            finally:
                self.model.train(was)
            if result is not None:
                self._log({"step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4),
                           "eval": dict(result)})
                msg = "  ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items())
                (pbar.write if pbar is not None else print)(f"step {self.step} eval: {msg}")
        barrier(self.dist)

    # ------------------------------------------------------------------ weight averaging
    def _average_path(self, step: int) -> Path:
        return self.output_dir / f"{AVERAGE_PREFIX}{step}.safetensors"

    def save_weights(self, path: Path) -> None:
        """The model's floating-point weights at this step (main process, atomically)."""
        from safetensors.torch import save_file
        if self.is_main:
            # cloned: tied weights (the word embeddings and the LM head) are stored under each name
            sd = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items() if v.is_floating_point()}
            tmp = path.with_name(TMP_PREFIX + path.name)
            save_file(sd, str(tmp))
            os.replace(tmp, path)
        barrier(self.dist)

    def _average_weights(self) -> None:
        """Replace the model's floating-point weights by their mean over `average_steps` (the
        earlier ones from their files, the last from the model)."""
        from safetensors.torch import load_file
        missing = [str(self._average_path(s)) for s in self.average_steps[:-1] if not self._average_path(s).is_file()]
        if missing:
            raise ResumeError(f"weight averaging needs {missing[0]}, which is missing: train again from an "
                              "earlier checkpoint or with average_last=1")
        saved = [load_file(str(self._average_path(s)), device=str(self.device)) for s in self.average_steps[:-1]]
        load_mean_weights(self.model, [*saved, self.model.state_dict()])

    # ------------------------------------------------------------------ checkpoints
    def _clean_temp_dirs(self) -> None:
        for p in self.output_dir.iterdir():
            if p.is_dir() and p.name.startswith((TMP_PREFIX, DELETE_PREFIX)):
                shutil.rmtree(p, ignore_errors=True)
            elif p.is_file() and p.name.startswith(TMP_PREFIX + AVERAGE_PREFIX):
                p.unlink(missing_ok=True)

    def _state(self) -> dict[str, Any]:
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
                "elapsed_s": self.elapsed, "tokens_seen": self.tokens_seen, "world_size": self.dist.world_size,
                "num_examples": len(self.dataset), "config": self.config.to_dict()}

    def save_checkpoint(self) -> Path:
        """Write ``OUTPUT/checkpoint-STEP`` atomically (temp dir + rename), keep the newest N."""
        rng = _rng_state(self._collator_generator())
        if self.dist.enabled:
            states: list[Any] = [None] * self.dist.world_size
            dist.all_gather_object(states, rng)
        else:
            states = [rng]
        final = self.output_dir / f"{CHECKPOINT_PREFIX}{self.step}"
        if self.is_main:
            tmp = self.output_dir / f"{TMP_PREFIX}{final.name}"
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
            self.model.save_pretrained(tmp)
            _torch_save(self.optimizer.state_dict(), tmp / "optimizer.pt")
            _torch_save(self.scheduler.state_dict(), tmp / "scheduler.pt")
            if self.scaler is not None:
                _torch_save(self.scaler.state_dict(), tmp / "scaler.pt")
            _torch_save({"world_size": self.dist.world_size, "ranks": states}, tmp / "rng_state.pt")
            if self.on_save is not None:
                self.on_save(tmp)
            write_json(tmp / STATE_FILE, self._state())
            _fsync_dir(tmp)
            if final.exists():
                _remove_dir(final)
            os.rename(tmp, final)
            _fsync_dir(self.output_dir)
            limit = self.config.save_total_limit
            if limit:
                for old in list_checkpoints(self.output_dir)[:-limit]:
                    _remove_dir(old)
            if self.config.plot:
                self.plot_loss()
        barrier(self.dist)
        return final

    def load_checkpoint(self, ckpt: str | os.PathLike) -> None:
        """Restore model, optimizer, scheduler, RNG states and the data position."""
        from safetensors.torch import load_file
        ckpt = Path(ckpt)
        self.check_resume(ckpt)
        state = json.loads((ckpt / STATE_FILE).read_text(encoding="utf-8"))
        sd = load_file(str(ckpt / "model.safetensors"), device=str(self.device))
        result = self.model.load_state_dict(sd, strict=False)
        own = {n for n, _ in self.model.named_parameters()}
        missing = [k for k in result.missing_keys if k in own]
        if missing or result.unexpected_keys:
            raise ResumeError(f"{ckpt}: model weights do not match the model (missing {missing[:3]}, "
                             f"unexpected {result.unexpected_keys[:3]})")
        load = dict(map_location=self.device, weights_only=True)
        self.optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", **load))
        self.scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", **load))
        if self.scaler is not None and (ckpt / "scaler.pt").is_file():
            self.scaler.load_state_dict(torch.load(ckpt / "scaler.pt", **load))
        rng = torch.load(ckpt / "rng_state.pt", map_location="cpu", weights_only=True)
        ranks = rng["ranks"]
        if len(ranks) != self.dist.world_size:
            warnings.warn(f"{ckpt}: saved by {len(ranks)} process(es), resumed with {self.dist.world_size}; "
                          "random states are reseeded per process, so the run is not bit-exact", stacklevel=2)
            torch.manual_seed(_mix(self.config.seed, state["step"], self.dist.rank))
        else:
            _set_rng_state(ranks[self.dist.rank], self._collator_generator())
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.elapsed, self.tokens_seen = float(state.get("elapsed_s", 0.0)), int(state.get("tokens_seen", 0))
        if self.is_main:
            self._trim_log(self.step)
            print(f"resuming from {ckpt} (step {self.step}/{self.total_steps})", file=sys.stderr)

    def check_resume(self, resume: bool | str | os.PathLike = True) -> Optional[Path]:
        """The checkpoint ``train(resume)`` would continue from (None: a fresh start), checked
        for completeness and matching settings (ResumeError) without changing anything."""
        ckpt = latest_checkpoint(self.output_dir) if resume is True else Path(resume) if resume else None
        if ckpt is None:
            return None
        missing_files = [f for f in CHECKPOINT_FILES if not (ckpt / f).is_file()]
        if missing_files:
            raise ResumeError(f"{ckpt}: not a complete checkpoint (missing {', '.join(missing_files)})")
        try:
            state = json.loads((ckpt / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ResumeError(f"{ckpt / STATE_FILE}: unreadable ({e})") from None
        self._check_compatible(ckpt, state)
        return ckpt

    def _check_compatible(self, ckpt: Path, state: Mapping[str, Any]) -> None:
        saved, now = state.get("config", {}), self.config.to_dict()
        diffs = [f"{k} (checkpoint {saved[k]!r}, now {now[k]!r})" for k in _TRAJECTORY_FIELDS
                 if k in saved and saved[k] != now[k]]
        if state.get("num_examples") not in (None, len(self.dataset)):
            diffs.append(f"number of training examples (checkpoint {state['num_examples']}, now {len(self.dataset)})")
        if diffs:
            raise ResumeError(f"cannot resume from {ckpt}: settings differ: {'; '.join(diffs)}")

    def _trim_log(self, step: int) -> None:
        """Drop log records written after the checkpoint (by the run that was interrupted)."""
        self.history = trim_jsonl(self.output_dir / LOG_FILE, step)

    # ------------------------------------------------------------------ plot
    def plot_loss(self) -> Optional[Path]:
        """``OUTPUT/loss.png``: training loss per logged step (matplotlib, Agg backend)."""
        points = [(r["step"], r["loss"]) for r in self.history if "loss" in r and math.isfinite(r["loss"])]
        if not points:
            return None
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure  # no pyplot: no global backend state
        fig = Figure(figsize=(6, 4), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="." if len(points) < 50 else None)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_title(self.output_dir.name)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = self.output_dir / PLOT_FILE
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
        return path
