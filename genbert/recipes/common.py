"""What every recipe shares: typed recipes that are their own command-line flags, one-line usage
errors, the run directory and its stored recipe, building a model from ``--init``, and the small
report helpers (tables, the machine's description).

A recipe is a dataclass whose fields are declared with :func:`flag`: the field's name is the flag
(``max_steps`` -> ``--max-steps``), its type the argument type, its metadata the help text,
choices and range. :func:`build_parser` makes the argparse parser from it and
:func:`check_ranges` checks the ranges, so the defaults and the rules live in one place. Nothing here
imports torch at module level: ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shutil
import sys
import time
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NoReturn, Optional, Sequence

EXIT_USAGE = 2
RUN_CONFIG = "run_config.json"  # the resolved recipe, reused by --resume
TOKENIZER_DIR = "tokenizer"  # OUTPUT/tokenizer: the sentencepiece model of a --init scratch run
INIT_NAMES = ("minilm", "scratch")


class UsageError(ValueError):
    """A bad flag value or combination; one line naming the flag."""


# --------------------------------------------------------------------------- recipes as flags
def flag(default: Any, help: str, *, group: str = "options", choices: Optional[Sequence[Any]] = None,
         min: Optional[float] = None, max: Optional[float] = None, above: Optional[float] = None,
         below: Optional[float] = None, negatable: bool = False, show_default: bool = True) -> Any:
    """A recipe field that is also a command-line flag. ``min``/``max`` are inclusive bounds,
    ``above``/``below`` exclusive ones (checked by :func:`check_ranges` when the value is not None)."""
    meta = dict(help=help, group=group, choices=tuple(choices) if choices else None, min=min, max=max,
                above=above, below=below, negatable=negatable, show_default=show_default)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


# --------------------------------------------------------------------------- generation flags
# shared by `genbert generate` and benchmark.py; a flag not given keeps the model's stored setting
GENERATION_FLAGS = ("max_source_length", "num_beams", "max_new_tokens", "length_penalty", "no_repeat_ngram_size",
                    "no_repeat_word_ngram_size", "no_repeat_content_words", "steps", "order", "block_length",
                    "collapse_repeats", "copy_bias", "copy_subwords", "copy_numbers")
GENERATION_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "max_source_length": (lambda v: v >= 3, "must be >= 3 ([CLS], a token, [SEP])"),
    "num_beams": (lambda v: v >= 1, "must be >= 1"),
    "max_new_tokens": (lambda v: v >= 1, "must be >= 1"),
    "length_penalty": (math.isfinite, "must be a finite number"),
    "copy_bias": (math.isfinite, "must be a finite number"),
    "no_repeat_ngram_size": (lambda v: v >= 0, "must be >= 0"),
    "no_repeat_word_ngram_size": (lambda v: v >= 0, "must be >= 0"),
    "steps": (lambda v: v >= 1, "must be >= 1"),
    "block_length": (lambda v: v >= 1, "must be >= 1"),
}


def add_generation_arguments(g: Any) -> None:
    """The GENERATION_FLAGS on a parser or argument group (all default None: the stored setting)."""
    from ..config import DIFFUSION_ORDERS
    g.add_argument("--max-source-length", type=int,
                   help="input tokens kept, [CLS]/[SEP] included (default: the model's stored setting)")
    g.add_argument("--num-beams", type=int)
    g.add_argument("--max-new-tokens", type=int)
    g.add_argument("--length-penalty", type=float)
    g.add_argument("--no-repeat-ngram-size", type=int)
    g.add_argument("--no-repeat-word-ngram-size", type=int, help="never repeat a word n-gram of this size")
    g.add_argument("--no-repeat-content-words", action="store_const", const=True,
                   help="never repeat a content word within one output")
    g.add_argument("--steps", type=int, help="bidirectional (diffusion) models: denoising passes")
    g.add_argument("--order", choices=DIFFUSION_ORDERS, help="bidirectional models: which masked tokens are "
                                                             "committed first")
    g.add_argument("--block-length", type=int, help="bidirectional models: semi-autoregressive block length")
    g.add_argument("--collapse-repeats", action="store_const", const=True,
                   help="bidirectional models: keep a token repeated in a row once")
    g.add_argument("--copy-bias", type=float, help="added to the log-probability of every source token at "
                                                   "every step (a copy prior; 0 = off)")
    g.add_argument("--copy-subwords", action=argparse.BooleanOptionalAction,
                   help="a word of several word pieces must be a word of the source (names are copied, "
                        "not made up of pieces)")
    g.add_argument("--copy-numbers", action=argparse.BooleanOptionalAction,
                   help="a number must be a number of the source, whole (figures are copied, not made up)")


def check_generation_arguments(args: Any) -> dict[str, Any]:
    """Raise UsageError naming the first bad GENERATION_FLAGS value; the ones given, by name."""
    for name, (ok, what) in GENERATION_CHECKS.items():
        value = getattr(args, name)
        if value is not None and not ok(value):
            raise UsageError(f"{flag_name(name)} {value}: {what}")
    return {k: getattr(args, k) for k in GENERATION_FLAGS if getattr(args, k) is not None}


def _base_type(tp: Any) -> Any:
    """int for Optional[int], list for list[str], ..."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    origin = typing.get_origin(tp)
    if origin is typing.Union and len(args) == 1:
        return _base_type(args[0])
    return origin or tp


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (exit status 2) instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def new_parser(prog: str, doc: str) -> OneLineParser:
    """A parser whose description is the script's docstring, its line breaks kept."""
    return OneLineParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


class _OnOff(argparse.Action):
    """``--x`` sets True, ``--no-x`` False. (argparse's BooleanOptionalAction reads any name that starts
    with ``--no-`` as the off switch, so it turned ``--no-repeat-content-words`` off.)"""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, option_string == self.option_strings[0])


def add_recipe_arguments(parser: argparse.ArgumentParser, cls: type, exclude: Iterable[str] = ()) -> None:
    """One flag per :func:`flag` field of the dataclass ``cls``, in argument groups. Every flag
    defaults to None, so that explicit > stored run (``--resume``) > the recipe's default."""
    hints = typing.get_type_hints(cls)
    groups: dict[str, Any] = {}
    skip = set(exclude)
    for f in fields(cls):
        m = f.metadata
        if "help" not in m or f.name in skip:
            continue
        if m["group"] not in groups:
            groups[m["group"]] = parser.add_argument_group(m["group"])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        text = m["help"]
        if m["show_default"] and default not in (None, False, [], ()):
            text += f" (default {default})"
        tp = _base_type(hints[f.name])
        kw: dict[str, Any] = {"default": None, "help": text}
        names = [flag_name(f.name)]
        if tp is bool and m["negatable"]:
            names.append("--no-" + names[0][2:])
            kw.update(action=_OnOff, nargs=0)
        elif tp is bool:
            kw["action"] = "store_true"
        elif tp is list:
            kw.update(nargs="+", action="extend", metavar=f.name.split("_")[0].upper())
        else:
            kw["type"] = tp
        if m["choices"]:
            kw["choices"] = m["choices"]
        groups[m["group"]].add_argument(*names, **kw)


def check_ranges(recipe: Any) -> None:
    """The ``min``/``max``/``above``/``below`` rules of every field, and every number finite (NaN
    passes no bound and fails none); UsageError names the flag."""
    for f in fields(recipe):
        v, m = getattr(recipe, f.name), f.metadata
        if v is None or "help" not in m or isinstance(v, (bool, str, list)):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            raise UsageError(f"{flag_name(f.name)}={v}: must be a finite number")
        for bound, ok, what in (("min", lambda b: v >= b, ">="), ("max", lambda b: v <= b, "<="),
                                ("above", lambda b: v > b, ">"), ("below", lambda b: v < b, "<")):
            b = m.get(bound)
            if b is not None and not ok(b):
                raise UsageError(f"{flag_name(f.name)}={v}: must be {what} {b:g}")


def explicit_values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The recipe fields the user set on the command line (argparse left the others None)."""
    return {f.name: getattr(args, f.name) for f in fields(cls)
            if getattr(args, f.name, None) is not None}


def recipe_from(cls: type, *layers: Optional[Mapping[str, Any]]) -> Any:
    """``cls`` with each layer's known fields applied in turn (later layers win)."""
    names = {f.name for f in fields(cls)}
    values: dict[str, Any] = {}
    for layer in layers:
        values.update({k: v for k, v in (layer or {}).items() if k in names})
    return cls(**values)


def recipe_dict(recipe: Any) -> dict[str, Any]:
    return dataclasses.asdict(recipe)


# --------------------------------------------------------------------------- shared recipe fields
@dataclass
class ModelFields:
    """Where the weights come from, and the sizes of a model built from scratch."""

    init: str = flag("minilm", "transformers BERT or genbert directory, Hugging Face model id (bert-base-uncased, "
                               "org/name: from the hub cache), 'minilm' or 'scratch'", group="model")
    dropout: Optional[float] = flag(None, "hidden and attention dropout (default: the checkpoint's, 0.1)",
                                    group="model", min=0, below=1)
    hidden_size: int = flag(256, "--init scratch: hidden size", group="model", min=1)
    layers: int = flag(4, "--init scratch: layers", group="model", min=1)
    heads: int = flag(4, "--init scratch: attention heads", group="model", min=1)
    intermediate_size: int = flag(1024, "--init scratch: feed-forward size", group="model", min=1)
    vocab_size: int = flag(8000, "--init scratch: sentencepiece vocabulary (lowered for small corpora)",
                           group="model", min=16)
    max_position_embeddings: int = flag(512, "--init scratch: positions", group="model", min=1)

    def check_model(self) -> None:
        if self.hidden_size % self.heads:
            raise UsageError(f"--hidden-size={self.hidden_size}: must be divisible by --heads={self.heads}")


@dataclass
class TrainingFields:
    """Optimisation and checkpoints: what becomes the Trainer's TrainConfig."""

    epochs: float = flag(1.0, "epochs, when --max-steps is not given", group="training", above=0)
    max_steps: Optional[int] = flag(None, "optimizer steps (overrides --epochs; --epochs alone unsets it)",
                                    group="training", min=1)
    batch_size: int = flag(16, "global batch per forward pass (split across processes)", group="training", min=1)
    grad_accum: int = flag(1, "forward passes per optimizer step", group="training", min=1)
    lr: float = flag(1e-4, "peak learning rate", group="training", above=0)
    new_param_lr_multiplier: float = flag(10.0, "LR factor for newly initialised weights", group="training",
                                          above=0)
    weight_decay: float = flag(0.01, "AdamW weight decay", group="training", min=0)
    warmup: float = flag(0.06, "LR warm-up: a fraction (<1) of the steps, or a number of steps", group="training",
                         min=0)
    max_grad_norm: Optional[float] = flag(1.0, "gradient clipping, 0 = off", group="training", min=0)
    seed: int = flag(0, "seed of every random choice (new weights, data order, masking, dropout)",
                     group="training")
    save_steps: int = flag(100, "checkpoint every N steps, 0 = only at the end", group="training", min=0)
    save_total_limit: int = flag(2, "checkpoints kept", group="training", min=1)
    log_steps: int = flag(10, "log every N steps", group="training", min=1)
    average_last: int = flag(1, "final weights: the mean of the weights after the last N steps that are multiples "
                             "of --average-every back from the end (1 = the last weights)", group="training", min=1)
    average_every: int = flag(100, "steps between the weights --average-last averages", group="training", min=1)
    bf16: Optional[bool] = flag(None, "bf16 autocast (default: where the device computes bf16 natively, a CUDA "
                                      "GPU or a CPU with AVX512-BF16 or AMX; --no-bf16: float32)", group="training",
                                negatable=True, show_default=False)
    fp16: bool = flag(False, "fp16 autocast (CUDA only)", group="training")
    gradient_checkpointing: bool = flag(False, "recompute activations in the backward pass (less memory)",
                                        group="training")

    def check_training(self) -> None:
        if self.warmup >= 1 and not float(self.warmup).is_integer():
            raise UsageError(f"--warmup={self.warmup}: must be a fraction in [0, 1) or a whole number of steps")
        if self.bf16 and self.fp16:
            raise UsageError("--bf16 and --fp16 are alternatives: pass one")

    def train_config(self, new_params: frozenset = frozenset(), device: Optional[str] = None,
                     progress: bool = True, **changes: Any):
        """The Trainer's settings: the one place a recipe becomes a TrainConfig."""
        from ..training import TrainConfig
        cfg = TrainConfig(lr=self.lr, weight_decay=self.weight_decay, warmup=self.warmup, epochs=self.epochs,
                          max_steps=self.max_steps, batch_size=self.batch_size, grad_accum=self.grad_accum,
                          max_grad_norm=self.max_grad_norm, label_smoothing=getattr(self, "label_smoothing", 0.0),
                          seed=self.seed, save_steps=self.save_steps, save_total_limit=self.save_total_limit,
                          log_steps=self.log_steps, average_last=self.average_last,
                          average_every=self.average_every, bf16=False if self.fp16 else self.bf16, fp16=self.fp16,
                          gradient_checkpointing=self.gradient_checkpointing,
                          new_param_lr_multiplier=self.new_param_lr_multiplier, new_params=new_params,
                          device=device, progress=progress)
        cfg = dataclasses.replace(cfg, **changes)
        try:
            cfg.validate()
        except ValueError as e:
            raise UsageError(str(e)) from None
        return cfg


# --------------------------------------------------------------------------- running a script
@dataclass
class RunOptions:
    """How a training run is carried out (never stored with the recipe)."""

    output_dir: Optional[Path] = None
    resume: bool = False
    overwrite: bool = False
    device: Optional[str] = None
    no_progress: bool = False
    report_to: str = "none"  # genbert.reporting.REPORT_TO


def add_run_arguments(parser: argparse.ArgumentParser, output_help: str) -> None:
    """The RunOptions flags."""
    g = parser.add_argument_group("run")
    g.add_argument("--output-dir", type=Path, help=output_help)
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in --output-dir from its newest "
                      "checkpoint (its stored recipe fills in the flags not given)")
    mode.add_argument("--overwrite", action="store_true",
                      help="replace the run in --output-dir (only the files a run writes are removed)")
    g.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--report-to", default="none", choices=("none", "tensorboard"),
                   help="also log the training scalars (loss, lr, grad norm, tokens/s, eval scores) for this tracker: "
                        "tensorboard writes OUTPUT/tensorboard (default none; log.jsonl and loss.png are always written)")


def run_options(args: argparse.Namespace) -> RunOptions:
    """The run flags, checked: UsageError when --report-to's package is missing."""
    from ..reporting import missing_package
    why = missing_package(args.report_to)
    if why:
        raise UsageError(f"--report-to {args.report_to}: {why}")
    return RunOptions(args.output_dir, args.resume, args.overwrite, args.device, args.no_progress, args.report_to)


def tracker(opts: RunOptions, output_dir: Path, resumed_from: Optional[Path] = None):
    """The ``--report-to`` logger of a run (None for none), writing OUTPUT/tensorboard; a resumed
    run's logger discards what the interrupted run logged after its checkpoint."""
    if opts.report_to == "none":
        return None
    from ..reporting import TENSORBOARD_DIR, report_logger
    purge = int(resumed_from.name.rsplit("-", 1)[-1]) + 1 if resumed_from is not None else None
    return report_logger(opts.report_to, Path(output_dir) / TENSORBOARD_DIR, purge_step=purge)


def say(msg: str = "") -> None:
    print(msg, flush=True)


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def main_entry(prog: str, run: Callable[[], int]) -> int:
    """Run a script's body: bad input (UsageError, DataError, ResumeError) ends it with one line
    on stderr and exit status 2, said once under torchrun; Ctrl-C with 130."""
    from ..data.datasets import DataError
    try:
        return run()
    except (UsageError, DataError) as e:
        return _fail(prog, e)
    except ValueError as e:
        if type(e).__name__ == "ResumeError":
            return _fail(prog, e)
        raise
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; continue with --resume", file=sys.stderr)
        return 130
    finally:
        if "torch.distributed" in sys.modules:
            import torch.distributed as dist
            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()


def _fail(prog: str, e: Exception) -> int:
    if is_main_process():
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def check_device(device: Optional[str]) -> None:
    if device and device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: CUDA is not available on this machine")


# --------------------------------------------------------------------------- run directory
def check_output_dir(path: Path, resume: bool, overwrite: bool) -> None:
    """An existing non-empty directory is refused unless --resume or --overwrite."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"--output-dir {path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not (resume or overwrite):
        raise UsageError(f"--output-dir {path} already exists and is not empty: pass --resume to continue "
                         "that run or --overwrite to replace it")


def prepare_output_dir(path: Path, overwrite: bool, artifacts: Sequence[str]) -> None:
    """Create the directory; with --overwrite remove a previous run's files (only ``artifacts``,
    checkpoints and temporary directories)."""
    from ..training import CHECKPOINT_PREFIX, DELETE_PREFIX, TMP_PREFIX
    path.mkdir(parents=True, exist_ok=True)
    if not overwrite:
        return
    for p in path.iterdir():
        if p.name in artifacts or p.name.startswith((CHECKPOINT_PREFIX, TMP_PREFIX, DELETE_PREFIX)):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def read_run_config(output_dir: Path) -> Optional[dict[str, Any]]:
    """The recipe a run in ``output_dir`` stored (None when there is none)."""
    p = Path(output_dir) / RUN_CONFIG
    if not p.is_file():
        return None
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"{p}: cannot read the stored run settings ({e})") from None
    return d if isinstance(d, dict) else None


def write_run_config(output_dir: Path, recipe: Any,
                     resolve: Callable[[dict[str, Any]], dict[str, Any]] = lambda d: d) -> None:
    """The recipe, for --resume; ``resolve`` fills in the defaults that a later version may change."""
    from ..io import write_json
    write_json(Path(output_dir) / RUN_CONFIG, resolve(recipe_dict(recipe)))


def timestamped(path: Path) -> Path:
    return path.with_name(f"{path.name}-{time.strftime('%Y%m%d-%H%M%S')}")


# --------------------------------------------------------------------------- the model
@dataclass
class BuiltModel:
    model: Any  # GenBert
    tokenizer: Any  # genbert.tokenization.Tokenizer
    new_params: frozenset  # newly initialised parameter names (the MLM warm-up / LR multiplier train them)
    description: str
    notes: list[str] = field(default_factory=list)
    trained_tokenizer: bool = False  # a sentencepiece model trained here (save it with the run)


@dataclass
class ModelSpec:
    """What :func:`build_model` builds: ``init`` (directory | minilm | scratch), the ``scheme``
    (config.SCHEMES), the objective (sets ``config.objective`` and ``config.decoding``), and for
    ``--init scratch`` the sizes and the vocabulary."""

    init: str = "minilm"
    scheme: str = "prefix"
    objective: Optional[str] = None
    decoder_init: str = "bert"
    decoder_layers: Optional[int] = None
    seed: int = 0
    dropout: Optional[float] = None  # hidden and attention dropout; None: the checkpoint's
    hidden_size: int = 256
    layers: int = 4
    heads: int = 4
    intermediate_size: int = 1024
    vocab_size: int = 8000
    max_position_embeddings: int = 512
    lowercase: bool = True  # a trained sentencepiece vocabulary lower-cases (keep case where scores see it)
    task: str = "summarization"
    random_weights: bool = False  # keep the checkpoint's config and tokenizer, draw every weight anew
    diffusion_mask: str = "source-block"  # the bidirectional scheme's attention (config.DIFFUSION_MASKS)
    copy_attention: bool = False  # a pointer-generator copy head (prefix and bidirectional schemes)


def resolve_init(init: str, flag: str = "--init") -> Optional[Path]:
    """The model directory of ``--init`` (None for scratch): a directory, 'minilm', or a Hugging
    Face model id resolved through the hub cache; UsageError names ``flag`` (none when empty)."""
    at = f"{flag} " if flag else ""
    if init == "scratch":
        return None
    if init == "minilm":
        from ..hub import minilm_path
        try:
            return minilm_path()
        except FileNotFoundError as e:
            raise UsageError(f"{at}minilm: {e}") from None
    path = Path(init)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError(f"{at}{init}: no config.json (expected a transformers BERT or genbert directory)")
        return path
    from ..hub import is_hub_id, resolve_model_dir
    if path.exists() or not is_hub_id(init):
        raise UsageError(f"{at}{init!r}: not a model directory, a Hugging Face model id, 'minilm' or 'scratch'")
    try:
        return resolve_model_dir(init)
    except FileNotFoundError as e:
        raise UsageError(f"{at}{e}") from None


def init_has_decoder(path: Optional[Path]) -> bool:
    if path is None:
        return False
    from ..convert import read_config
    try:
        hf = read_config(path)
    except (OSError, ValueError) as e:
        raise UsageError(f"--init {path}: {e}") from None
    return hf.get("model_type") == "encoder-decoder" or (hf.get("model_type") == "genbert"
                                                         and hf.get("decoder") is not None)


def build_model(spec: ModelSpec, train_texts: Sequence[str] = (), tokenizer_dir: Optional[Path] = None) -> BuiltModel:
    """The model and tokenizer of ``spec``: every new weight drawn from ``spec.seed`` alone (a
    local generator state: the global one is left as it was), the config right from the start.
    For scratch, the sentencepiece tokenizer is loaded from ``tokenizer_dir`` if it holds one
    (resume), else trained on ``train_texts``."""
    import warnings

    import torch

    from ..config import DECODING_OF_OBJECTIVE, DecoderConfig, GenBertConfig, mask_scheme_of
    from ..model import GenBert
    from ..tokenization import Tokenizer

    path = resolve_init(spec.init)
    want_decoder = spec.scheme == "encoder-decoder"
    has_decoder = path is not None and init_has_decoder(path)
    if has_decoder and not want_decoder:
        raise UsageError(f"--init {path} is an encoder-decoder model: use --scheme encoder-decoder")
    fields_ = {"mask_scheme": mask_scheme_of(spec.scheme), "objective": spec.objective,
               "decoding": DECODING_OF_OBJECTIVE.get(spec.objective or "", "next-token"),
               "diffusion_mask": spec.diffusion_mask, "copy_attention": spec.copy_attention}
    if spec.dropout is not None:
        fields_.update(hidden_dropout_prob=spec.dropout, attention_probs_dropout_prob=spec.dropout)
    notes: list[str] = []
    trained = False
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        if path is None:
            tokenizer, trained = _scratch_tokenizer(spec, train_texts, tokenizer_dir, notes)
            dec = None
            if want_decoder:
                shared = spec.decoder_init == "shared"
                if spec.decoder_init == "bert":
                    notes.append("--decoder-init bert from scratch is a random decoder")
                dec = DecoderConfig(num_hidden_layers=spec.layers if shared else (spec.decoder_layers or spec.layers),
                                    init="shared" if shared else "random", share_encoder_weights=shared)
            config = GenBertConfig(
                vocab_size=len(tokenizer), hidden_size=spec.hidden_size, num_hidden_layers=spec.layers,
                num_attention_heads=spec.heads, intermediate_size=spec.intermediate_size,
                max_position_embeddings=spec.max_position_embeddings, pad_token_id=tokenizer.pad_token_id,
                cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id,
                mask_token_id=tokenizer.mask_token_id, decoder=dec, **fields_)
            model = GenBert(config)
            new: frozenset = frozenset()  # everything is new: one learning rate
            desc = (f"random weights ({model.num_parameters() / 1e6:.1f}M parameters), "
                    f"sentencepiece vocabulary {len(tokenizer)}")
        else:
            try:
                tokenizer = Tokenizer.from_dir(path)
            except (ValueError, ImportError) as e:
                raise UsageError(f"--init {path}: {e}") from None
            decoder = spec.decoder_init if want_decoder and not has_decoder else None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the report is said below, as a note
                try:
                    model = GenBert.from_pretrained(path, decoder=decoder, decoder_layers=spec.decoder_layers
                                                    if decoder else None, **fields_)
                except (ValueError, FileNotFoundError, KeyError) as e:
                    raise UsageError(f"--init {path}: {e}") from None
            new = frozenset(model.load_report.new)
            if spec.random_weights:
                model, new = GenBert(model.config), frozenset()
            shown = path if spec.init in INIT_NAMES or Path(spec.init).is_dir() else spec.init  # a hub id
            desc = (f"{'random weights in the shape of ' if spec.random_weights else ''}{shown} "
                    f"({model.num_parameters() / 1e6:.1f}M parameters)")
            if new:
                from ..convert import summarize_names
                notes.append(f"newly initialised: {summarize_names(sorted(new))}")
    c = model.config
    if (tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id) != (
            c.pad_token_id, c.cls_token_id, c.sep_token_id) or len(tokenizer) > c.vocab_size:
        raise UsageError(f"--init {spec.init}: the tokenizer does not match the model (special ids or vocabulary size)")
    c.extra = {**c.extra, "task": spec.task, "scheme": spec.scheme}
    return BuiltModel(model, tokenizer, new, desc, notes, trained)


def _scratch_tokenizer(spec: ModelSpec, texts: Sequence[str], tokenizer_dir: Optional[Path],
                       notes: list[str]) -> tuple[Any, bool]:
    import tempfile
    import warnings

    from ..tokenization import Tokenizer, train_sentencepiece
    if tokenizer_dir is not None and Path(tokenizer_dir).is_dir():
        notes.append(f"reusing the sentencepiece tokenizer in {tokenizer_dir}")
        return Tokenizer.from_dir(tokenizer_dir), False
    if not texts:
        raise UsageError("--init scratch needs training text for its tokenizer")
    tmp = tempfile.mkdtemp(prefix="genbert-spm-")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tokenizer = train_sentencepiece(list(texts), tmp, spec.vocab_size, lowercase=spec.lowercase)
        notes += [str(w.message) for w in caught]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tokenizer, True


MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # what --init minilm is


def card_fields(init: str, dataset: Optional[str] = None, task: Optional[str] = None,
                recipe: Any = None) -> dict[str, Any]:
    """What a model card says about a run (genbert.hub.model_card keywords): where it started,
    the data, the task and the recipe; hub ids go into the card's metadata too."""
    from ..data.sources import hub_dataset_name
    from ..hub import is_hub_id
    base = MINILM_HUB_ID if init == "minilm" else init if init != "scratch" and not Path(init).exists() \
        and is_hub_id(init) else None
    return {"init": init, "base_model": base, "dataset": dataset, "hub_dataset": hub_dataset_name(dataset),
            "task": task, "recipe": recipe_dict(recipe) if recipe is not None else None}


# --------------------------------------------------------------------------- reports
def format_table(scores: Mapping[str, Any], baselines: Mapping[str, Mapping[str, Any]], label: str = "model") -> str:
    """Aligned text table: one row per numeric metric, a column for the model and each baseline."""
    columns = [(label, scores)] + list(baselines.items())
    metrics = [k for k, v in scores.items() if isinstance(v, (int, float))]
    header = ["metric"] + [name for name, _ in columns]
    rows = [[m] + [f"{col.get(m, float('nan')):.2f}" for _, col in columns] for m in metrics]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return "\n".join("  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])
                     for row in [header] + rows)


def machine_description() -> str:
    """OS, CPU model, usable cores, torch version and the GPU (or the torch thread count)."""
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    desc = f"{platform.system()} {platform.machine()}, {cpu}, {n} CPU core(s) available, torch {torch.__version__}"
    if torch.cuda.is_available():
        desc += f", GPU {torch.cuda.get_device_name(0)}"
    else:
        desc += f", no GPU ({torch.get_num_threads()} torch threads)"
    return desc
