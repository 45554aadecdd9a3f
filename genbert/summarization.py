"""Fine-tuning a genbert model for summarization / headline generation: the reusable pieces of
``scripts/train_summarization.py`` (recipe, data, model building, collators, evaluation).

The default recipe lives in :data:`DEFAULT_RECIPE`, the one place to tune it. Lengths count
special tokens: ``max_source_length`` is the whole ``[CLS] source [SEP]`` and
``max_target_length`` the target with its closing ``[SEP]`` (= ``max_new_tokens`` at generation),
which is what :class:`genbert.TextGenerator` means by them too.

Errors in the user's input raise :class:`UsageError` (or :class:`genbert.data.DataError`), both
one-line ``ValueError`` messages naming the flag or file.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from .config import DECODING_OF_OBJECTIVE, DecoderConfig, GenBertConfig
from .data.datasets import DataError, dataset_task, load_named, read_pairs
from .data.objectives import Seq2SeqCollator, SpecialIds
from .io import atomic_dir, write_json, write_text
from .model import GenBert
from .tokenization import Tokenizer

__all__ = [
    "DEFAULT_RECIPE",
    "SCHEMES",
    "OBJECTIVES",
    "DECODER_INITS",
    "UsageError",
    "SummarizationData",
    "BuiltModel",
    "resolve_recipe",
    "load_data",
    "build_model",
    "encode_pairs",
    "make_collator",
    "collator_objective",
    "generation_settings",
    "check_output_dir",
    "prepare_output_dir",
    "evaluate",
    "write_evaluation",
    "format_table",
]

# The default fine-tuning recipe: every value is a flag of scripts/train_summarization.py
# (flag = key with "-" for "_"). Sized to finish in about 15 minutes on 2 CPU cores.
DEFAULT_RECIPE: dict[str, Any] = {
    # data
    "dataset": "bbc-headlines",
    "limit_train": None,
    "limit_eval": None,
    "task": None,  # how evaluation scores: None = the named dataset's task, else summarization
    # model
    "init": "minilm",
    "scheme": "prefix",
    "objective": "pseudo-mask",
    "decoder_init": "bert",
    "decoder_layers": None,  # None: as many as the encoder
    "mask_prob": 0.7,  # masked-target: share of target tokens masked
    # before seq2seq training, MLM steps on the training sources (prefix/causal models): a fresh
    # MLM head (all-MiniLM-L6-v2 has none) learns to predict tokens first. 0 = off.
    "mlm_warmup_steps": 200,
    # --init scratch only
    "hidden_size": 256,
    "layers": 4,
    "heads": 4,
    "intermediate_size": 1024,
    "vocab_size": 8000,  # sentencepiece; lowered automatically when the corpus is small
    "max_position_embeddings": 512,
    # lengths (special tokens included)
    "max_source_length": 64,
    "max_target_length": 24,
    # optimisation
    "epochs": 1.0,
    "max_steps": 1000,
    "batch_size": 16,
    "grad_accum": 1,
    "lr": 2e-4,
    "new_param_lr_multiplier": 5.0,
    "weight_decay": 0.01,
    "warmup": 60,
    "max_grad_norm": 1.0,
    "label_smoothing": 0.1,
    "seed": 0,
    "save_steps": 250,
    "save_total_limit": 2,
    "log_steps": 10,
    # generation / evaluation
    "num_beams": 4,
    "no_repeat_ngram_size": 3,
    "length_penalty": 1.0,
    "eval_batch_size": 32,
}

SCHEMES = ("prefix", "causal", "encoder-decoder")
OBJECTIVES = ("next-token", "masked-target", "pseudo-mask")
DECODER_INITS = ("bert", "shared", "random")
INIT_NAMES = ("minilm", "scratch")
TOKENIZER_DIR = "tokenizer"  # OUTPUT/tokenizer: the sentencepiece model of a --init scratch run
RUN_CONFIG = "run_config.json"  # the resolved recipe, reused by --resume
# what a run writes into its output directory (removed by --overwrite; nothing else is touched)
RUN_ARTIFACTS = ("final", TOKENIZER_DIR, RUN_CONFIG, "log.jsonl", "loss.png", "metrics.json", "predictions.jsonl",
                 "mlm-warmup")


class UsageError(ValueError):
    """A bad flag value or combination; one line naming the flag."""


# --------------------------------------------------------------------------- recipe
def resolve_recipe(explicit: dict[str, Any], stored: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Flag values: explicit ones, else the stored run's (on --resume), else DEFAULT_RECIPE."""
    recipe = dict(DEFAULT_RECIPE)
    if stored:
        recipe.update({k: v for k, v in stored.items() if k in DEFAULT_RECIPE or k in ("train", "validation",
                                                                                        "source_field",
                                                                                        "target_field")})
    recipe.update({k: v for k, v in explicit.items() if v is not None})
    if explicit.get("epochs") is not None and explicit.get("max_steps") is None:
        recipe["max_steps"] = None  # --epochs alone sets the length of the run
    if explicit.get("train") is not None:  # files replace the named dataset (stored or default)
        recipe["dataset"] = explicit.get("dataset")
    elif explicit.get("dataset") is not None:
        recipe.pop("train", None)
        recipe.pop("validation", None)
    return recipe


def check_recipe(r: dict[str, Any]) -> None:
    """Range checks of the numeric flags; UsageError names the flag."""
    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise UsageError(f"--{key.replace('_', '-')}={r[key]}: {what}")
    for key in ("batch_size", "grad_accum", "max_source_length", "max_target_length", "num_beams", "eval_batch_size",
                "hidden_size", "layers", "heads", "intermediate_size", "log_steps", "save_total_limit"):
        need(r.get(key) is not None and int(r[key]) >= 1, key, "must be >= 1")
    for key in ("limit_train", "limit_eval", "max_steps", "decoder_layers"):
        need(r.get(key) is None or int(r[key]) >= 1, key, "must be >= 1")
    need(r["max_source_length"] >= 3, "max_source_length", "must be >= 3 ([CLS], a token, [SEP])")
    need(r["max_target_length"] >= 2, "max_target_length", "must be >= 2 (a token and [SEP])")
    need(r["epochs"] > 0, "epochs", "must be > 0")
    need(r["lr"] > 0, "lr", "must be > 0")
    need(r["warmup"] >= 0 and (r["warmup"] < 1 or float(r["warmup"]).is_integer()), "warmup",
         "must be a fraction in [0, 1) or a whole number of steps")
    need(0 <= r["label_smoothing"] < 1, "label_smoothing", "must be in [0, 1)")
    need(0 < r["mask_prob"] <= 1, "mask_prob", "must be in (0, 1]")
    need(r["save_steps"] >= 0, "save_steps", "must be >= 0 (0: only at the end)")
    need(r["max_grad_norm"] is None or r["max_grad_norm"] >= 0, "max_grad_norm", "must be >= 0 (0: no clipping)")
    need(r["new_param_lr_multiplier"] > 0, "new_param_lr_multiplier", "must be > 0")
    need(r["no_repeat_ngram_size"] >= 0, "no_repeat_ngram_size", "must be >= 0")
    need(r["vocab_size"] >= 16, "vocab_size", "must be >= 16")
    need(r["hidden_size"] % r["heads"] == 0, "hidden_size", f"must be divisible by --heads={r['heads']}")
    device = str(r.get("device") or "")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available on this machine")
    if r["scheme"] not in SCHEMES:
        raise UsageError(f"--scheme {r['scheme']!r}: choose one of {', '.join(SCHEMES)}")
    if r["objective"] not in OBJECTIVES:
        raise UsageError(f"--objective {r['objective']!r}: choose one of {', '.join(OBJECTIVES)}")
    if r["decoder_init"] not in DECODER_INITS:
        raise UsageError(f"--decoder-init {r['decoder_init']!r}: choose one of {', '.join(DECODER_INITS)}")


def collator_objective(scheme: str, objective: str, explicit_objective: bool = False) -> str:
    """The Seq2SeqCollator objective (also stored as ``config.extra["objective"]``).

    prefix: the chosen objective; causal: "causal" (left-to-right next-token); encoder-decoder:
    "encoder-decoder" (teacher forcing). An explicitly chosen objective other than next-token
    is an error for the latter two."""
    if scheme == "prefix":
        return objective
    if explicit_objective and objective != "next-token":
        raise UsageError(f"--objective {objective} applies to --scheme prefix only; --scheme {scheme} "
                         "trains left-to-right next-token prediction")
    return "causal" if scheme == "causal" else "encoder-decoder"


# --------------------------------------------------------------------------- data
@dataclass
class SummarizationData:
    train: list[dict]
    validation: list[dict]
    skipped: dict[str, int] = field(default_factory=dict)  # file -> empty records skipped
    name: str = ""
    task: str = "summarization"  # "translation" for translation datasets (scored with BLEU/chrF)


def load_data(dataset: Optional[str] = None, train: Optional[str] = None, validation: Optional[str] = None,
              source_field: str = "source", target_field: str = "target", limit_train: Optional[int] = None,
              limit_eval: Optional[int] = None, need_validation: bool = True) -> SummarizationData:
    """Files (``--train``/``--validation``, JSONL/CSV/TSV) or a named dataset's train/validation splits."""
    if train is None and validation is not None:
        raise UsageError("--validation needs --train (or use --dataset)")
    if train is not None:
        recs, skipped = read_pairs(train, source_field, target_field)
        data = SummarizationData(recs, [], {str(train): skipped} if skipped else {}, Path(train).stem)
        if validation is not None:
            vrecs, vskipped = read_pairs(validation, source_field, target_field)
            data.validation = vrecs
            if vskipped:
                data.skipped[str(validation)] = vskipped
        elif need_validation:
            raise UsageError("--train needs --validation for evaluation (or pass --no-eval)")
        for i, r in enumerate(data.train):
            r.setdefault("id", f"train:{i}")
        for i, r in enumerate(data.validation):
            r.setdefault("id", f"validation:{i}")
    else:
        name = dataset or DEFAULT_RECIPE["dataset"]
        try:
            data = SummarizationData(load_named(name, "train", seed=0),
                                     load_named(name, "validation", seed=0) if need_validation else [], {}, name,
                                     dataset_task(name))
        except ModuleNotFoundError as e:
            raise UsageError(f"--dataset {name}: {e}") from None
        except ValueError as e:
            raise UsageError(f"--dataset: {e}") from None
    if limit_train is not None:
        data.train = data.train[:limit_train]
    if limit_eval is not None:
        data.validation = data.validation[:limit_eval]
    return data


def encode_pairs(tokenizer: Tokenizer, records: Sequence[dict], max_source_length: int,
                 max_target_length: int) -> list[tuple[list[int], list[int]]]:
    """(source ids, target ids) without special tokens, cut so that ``[CLS] src [SEP]`` has at most
    ``max_source_length`` tokens and ``tgt [SEP]`` at most ``max_target_length``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = tokenizer.batch_encode([r["source"] for r in records], max_length=max_source_length - 2)
        tgt = tokenizer.batch_encode([r["target"] for r in records], max_length=max_target_length - 1)
    return [(s, t) for s, t in zip(src, tgt)]


def special_ids(tokenizer: Tokenizer) -> SpecialIds:
    core = {tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id}
    return SpecialIds(tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id,
                      tokenizer.mask_token_id, len(tokenizer),
                      extra_special=tuple(sorted(tokenizer.special_ids - core)))


def make_collator(tokenizer: Tokenizer, objective: str, max_source_length: int, max_target_length: int,
                  mask_prob: float = 0.7, seed: int = 0) -> Seq2SeqCollator:
    """A Seq2SeqCollator for a collator objective (see :func:`collator_objective`)."""
    kw = {"mask_prob": mask_prob} if objective == "masked-target" else {}
    return Seq2SeqCollator(special_ids(tokenizer), objective, max_source_length - 2, max_target_length - 1,
                           generator=torch.Generator().manual_seed(seed), **kw)


# --------------------------------------------------------------------------- model
@dataclass
class BuiltModel:
    model: GenBert
    tokenizer: Tokenizer
    new_params: set[str]  # newly initialised parameter names (get the LR multiplier)
    description: str
    notes: list[str] = field(default_factory=list)
    trained_tokenizer: bool = False  # a sentencepiece model trained here (save it with the run)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"--init {path}: cannot read config.json ({e})") from None


def _resolve_init(init: str) -> tuple[str, Optional[Path]]:
    """("scratch", None) or ("dir", path) for --init scratch / minilm / a directory."""
    if init == "scratch":
        return "scratch", None
    if init == "minilm":
        from .hub import minilm_path
        try:
            path = minilm_path()
        except FileNotFoundError as e:
            raise UsageError(f"--init minilm: {e}") from None
        return "dir", path
    path = Path(init)
    if not path.is_dir():
        raise UsageError(f"--init {init!r}: not a model directory, 'minilm' or 'scratch'")
    if not (path / "config.json").is_file():
        raise UsageError(f"--init {init}: no config.json (expected a transformers BERT or genbert directory)")
    return "dir", path


def _summarize_names(names: Sequence[str], limit: int = 6) -> str:
    groups = sorted({re.sub(r"\.(weight|bias)$", "", re.sub(r"\.\d+\.", ".*.", n)) for n in names})
    return ", ".join(groups[:limit]) + (f", ... ({len(groups)} groups)" if len(groups) > limit else "")


def _hf_loaded_names(path: Path, model: GenBert, decoder_init: Optional[str], decoder_layers: Optional[int]) -> set[str]:
    """genbert names of the tensors a transformers BERT checkpoint provides (after adding a decoder)."""
    from .convert import _add_decoder, hf_to_genbert_key, read_state_dict
    loaded = set()
    for k in read_state_dict(path):
        new = hf_to_genbert_key(k[5:] if k.startswith("bert.") else k)
        if new is not None:
            loaded.add(new)
    if decoder_init is not None:
        kw = {"num_hidden_layers": model.config.num_hidden_layers}
        loaded = set(_add_decoder(kw, {k: torch.empty(0) for k in loaded}, decoder_init, decoder_layers))
    return loaded


def build_model(init: str, scheme: str, objective: str, decoder_init: str = "bert",
                decoder_layers: Optional[int] = None, train_texts: Sequence[str] = (),
                tokenizer_dir: Optional[Path] = None, sizes: Optional[dict[str, int]] = None,
                vocab_size: int = 8000, max_position_embeddings: int = 512, lowercase: bool = True) -> BuiltModel:
    """The model and tokenizer for ``--init`` (directory | minilm | scratch) and ``--scheme``.

    ``objective`` is the collator objective (stored in ``config.extra``). For scratch, the
    sentencepiece tokenizer is loaded from ``tokenizer_dir`` if it holds one (resume), else
    trained on ``train_texts`` (lower-cased when ``lowercase``; keep case where scores see it, as BLEU does)."""
    kind, path = _resolve_init(init)
    mask_scheme = "bidirectional" if scheme == "encoder-decoder" else scheme
    want_decoder = scheme == "encoder-decoder"
    notes: list[str] = []
    trained = False
    if kind == "scratch":
        sizes = sizes or {}
        if tokenizer_dir is not None and Path(tokenizer_dir).is_dir():
            tokenizer = Tokenizer.from_dir(tokenizer_dir)
            notes.append(f"reusing the sentencepiece tokenizer in {tokenizer_dir}")
        else:
            if not train_texts:
                raise UsageError("--init scratch needs training text for its tokenizer")
            tmp = tempfile.mkdtemp(prefix="genbert-spm-")
            try:
                from .tokenization import train_sentencepiece
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    tokenizer = train_sentencepiece(list(train_texts), tmp, vocab_size, lowercase=lowercase)
                notes += [str(w.message) for w in caught]
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            trained = True
        dec = None
        if want_decoder:
            n = decoder_layers or sizes.get("layers", 4)
            shared = decoder_init == "shared"
            if decoder_init == "bert":
                notes.append("--decoder-init bert from scratch is a random decoder")
            dec = DecoderConfig(num_hidden_layers=sizes.get("layers", 4) if shared else n,
                                init="shared" if shared else "random", share_encoder_weights=shared)
        config = GenBertConfig(
            vocab_size=len(tokenizer), hidden_size=sizes.get("hidden_size", 256),
            num_hidden_layers=sizes.get("layers", 4), num_attention_heads=sizes.get("heads", 4),
            intermediate_size=sizes.get("intermediate_size", 1024), max_position_embeddings=max_position_embeddings,
            pad_token_id=tokenizer.pad_token_id, cls_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id, mask_token_id=tokenizer.mask_token_id,
            mask_scheme=mask_scheme, decoder=dec)
        model = GenBert(config)
        new: set[str] = set()  # everything is new: one learning rate
        desc = f"random weights ({model.num_parameters() / 1e6:.1f}M parameters), sentencepiece vocabulary {len(tokenizer)}"
    else:
        assert path is not None
        hf = _read_config(path)
        model_type = hf.get("model_type")
        try:
            tokenizer = Tokenizer.from_dir(path)
        except (ValueError, ImportError) as e:
            raise UsageError(f"--init {path}: {e}") from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model, new = _load_pretrained(path, hf, model_type, scheme, mask_scheme, decoder_init, decoder_layers)
            except (ValueError, FileNotFoundError, KeyError) as e:
                if isinstance(e, UsageError):
                    raise
                raise UsageError(f"--init {path}: {e}") from None
        desc = f"{path} ({model_type}, {model.num_parameters() / 1e6:.1f}M parameters)"
        if new:
            notes.append(f"newly initialised: {_summarize_names(sorted(new))}")
    c = model.config
    if (tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id) != (
            c.pad_token_id, c.cls_token_id, c.sep_token_id) or len(tokenizer) > c.vocab_size:
        raise UsageError(f"--init {init}: the tokenizer does not match the model (special ids or vocabulary size)")
    c.objective = "next-token" if objective in ("causal", "encoder-decoder") else objective
    c.decoding = DECODING_OF_OBJECTIVE.get(c.objective, "next-token")
    c.extra = {**c.extra, "task": "summarization", "scheme": scheme}
    return BuiltModel(model, tokenizer, new, desc, notes, trained)


def _load_pretrained(path: Path, hf: dict, model_type: Optional[str], scheme: str, mask_scheme: str,
                     decoder_init: str, decoder_layers: Optional[int]) -> tuple[GenBert, set[str]]:
    want_decoder = scheme == "encoder-decoder"
    if model_type == "bert":
        if want_decoder:
            model = GenBert.from_pretrained(path, decoder=decoder_init, decoder_layers=decoder_layers)
        else:
            model = GenBert.from_pretrained(path, mask_scheme=mask_scheme)
        loaded = _hf_loaded_names(path, model, decoder_init if want_decoder else None, decoder_layers)
    elif model_type == "encoder-decoder":
        if not want_decoder:
            raise UsageError(f"--init {path} is an encoder-decoder model: use --scheme encoder-decoder")
        model = GenBert.from_pretrained(path)
        loaded = {n for n, _ in model.named_parameters()}
    elif model_type == "genbert":
        has_decoder = hf.get("decoder") is not None
        if has_decoder and not want_decoder:
            raise UsageError(f"--init {path} is an encoder-decoder model: use --scheme encoder-decoder")
        if not want_decoder:
            model = GenBert.from_pretrained(path, mask_scheme=mask_scheme)
            loaded = {n for n, _ in model.named_parameters()}
        elif has_decoder:
            model = GenBert.from_pretrained(path)
            loaded = {n for n, _ in model.named_parameters()}
        else:  # a genbert encoder (e.g. pretrained by genbert): add a decoder like BERT2BERT
            from .convert import _add_decoder
            base = GenBert.from_pretrained(path)
            state = {n: p.detach() for n, p in base.named_parameters()}
            kw = base.config.to_dict()
            kw["mask_scheme"] = "bidirectional"
            mapped = _add_decoder(kw, state, decoder_init, decoder_layers)
            model = GenBert(GenBertConfig.from_dict(kw))
            model.load_state_dict(mapped, strict=False)
            loaded = set(mapped)
    else:
        raise UsageError(f"--init {path}: model_type {model_type!r} is not supported "
                         "(expected a transformers BERT, bert2bert or genbert directory)")
    new = {n for n, _ in model.named_parameters()} - loaded
    return model, new


def check_lengths(model: GenBert, objective: str, max_source_length: int, max_target_length: int) -> None:
    """The packed sequences must fit the model's position embeddings."""
    limit = model.config.max_position_embeddings
    if model.decoder is not None:
        need = max(max_source_length, max_target_length + 1)
    else:
        need = max_source_length + max_target_length * (2 if objective == "pseudo-mask" else 1) + 1
    if need > limit:
        raise UsageError(f"--max-source-length {max_source_length} with --max-target-length {max_target_length} "
                         f"needs {need} positions; the model has {limit}")


# --------------------------------------------------------------------------- output directory
def check_output_dir(path: Path, resume: bool, overwrite: bool) -> None:
    """An existing non-empty directory is refused unless --resume or --overwrite."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"--output-dir {path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not (resume or overwrite):
        raise UsageError(f"--output-dir {path} already exists and is not empty: pass --resume to continue "
                         "that run or --overwrite to replace it")


def prepare_output_dir(path: Path, overwrite: bool) -> None:
    """Create the directory; with --overwrite remove a previous run's files (only those)."""
    from .training import CHECKPOINT_PREFIX, DELETE_PREFIX, TMP_PREFIX
    path.mkdir(parents=True, exist_ok=True)
    if not overwrite:
        return
    for p in path.iterdir():
        ours = p.name in RUN_ARTIFACTS or p.name.startswith((CHECKPOINT_PREFIX, TMP_PREFIX, DELETE_PREFIX))
        if ours:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def default_output_dir(recipe: dict[str, Any]) -> Path:
    name = recipe.get("dataset") or Path(recipe.get("train") or "summarization").stem
    return Path("runs") / name


def timestamped(path: Path) -> Path:
    return path.with_name(f"{path.name}-{time.strftime('%Y%m%d-%H%M%S')}")


def resolve_output_dir(output_dir: Optional[Path], recipe: dict[str, Any], no_arguments: bool = False) -> Path:
    """--output-dir, else runs/DATASET. A script run with no arguments at all never fails on an
    existing run: it picks a fresh timestamped directory beside it instead."""
    out = Path(output_dir) if output_dir is not None else default_output_dir(recipe)
    if no_arguments and out.is_dir() and any(out.iterdir()):
        out = timestamped(out)
    return out


# --------------------------------------------------------------------------- generation / evaluation
def generation_settings(recipe: dict[str, Any], objective: str) -> dict[str, Any]:
    """What TextGenerator stores in generation.json for this run."""
    return {
        "max_source_length": recipe["max_source_length"],
        "max_target_length": recipe["max_target_length"],
        "num_beams": recipe["num_beams"],
        "max_new_tokens": recipe["max_target_length"],
        "no_repeat_ngram_size": recipe["no_repeat_ngram_size"],
        "length_penalty": recipe["length_penalty"],
        "scheme": recipe["scheme"],
        "objective": "next-token" if objective in ("causal", "encoder-decoder") else objective,
    }


def evaluate(generator, records: Sequence[dict], batch_size: int = 32, progress: bool = False,
             task: str = "summarization") -> tuple[list[str], dict[str, Any], dict[str, dict[str, Any]]]:
    """Generate for ``records``; returns (predictions, scores, baselines): ROUGE and the lead
    baselines for summarization, BLEU/chrF and the copy-the-source baseline for translation."""
    from .metrics import baselines, score
    sources = [r["source"] for r in records]
    refs = [r["target"] for r in records]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "N inputs were truncated": expected for long articles
        preds = generator.generate(sources, batch_size=batch_size, progress=progress)
    return preds, score(task, preds, refs), baselines(task, sources, refs)


def write_evaluation(output_dir: Path, records: Sequence[dict], predictions: Sequence[str],
                     scores: dict[str, Any], baselines: dict[str, Any], settings: dict[str, Any]) -> None:
    """``metrics.json`` ({"scores", "baselines", "settings"}, like scripts/benchmark.py) and
    ``predictions.jsonl`` ({"id", "prediction", "reference"} per line)."""
    lines = "".join(json.dumps({"id": r.get("id", i), "prediction": p, "reference": r["target"]},
                               ensure_ascii=False) + "\n" for i, (r, p) in enumerate(zip(records, predictions)))
    write_text(Path(output_dir) / "predictions.jsonl", lines)
    write_json(Path(output_dir) / "metrics.json", {"scores": scores, "baselines": baselines, "settings": settings})


def format_table(scores: dict[str, Any], baselines: dict[str, dict[str, Any]], label: str = "model") -> str:
    """Aligned text table: one row per metric, a column for the model and each baseline."""
    columns = [(label, scores)] + list(baselines.items())
    metrics = [k for k, v in scores.items() if isinstance(v, (int, float))]
    header = ["metric"] + [name for name, _ in columns]
    rows = [[m] + [f"{col.get(m, float('nan')):.2f}" for _, col in columns] for m in metrics]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return "\n".join("  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])
                     for row in [header] + rows)


def read_run_config(output_dir: Path) -> Optional[dict[str, Any]]:
    p = Path(output_dir) / RUN_CONFIG
    if not p.is_file():
        return None
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"{p}: cannot read the stored run settings ({e})") from None
    return d if isinstance(d, dict) else None


def save_final(generator, path: Path) -> None:
    """TextGenerator.save_pretrained into a temp dir renamed into place (a crash never leaves
    a half-written ``final``)."""
    atomic_dir(path, generator.save_pretrained)


__all__ += ["DataError", "resolve_output_dir", "check_recipe", "check_lengths", "special_ids", "default_output_dir", "timestamped",
            "read_run_config", "save_final", "RUN_CONFIG", "TOKENIZER_DIR"]


# --------------------------------------------------------------------------- MLM warm-up
def mlm_warmup(model: GenBert, tokenizer: Tokenizer, texts: Sequence[str], steps: int, new_params: set[str],
               output_dir: Path, seed: int, device: Optional[str], progress: bool,
               batch_size: int = 16, max_length: int = 128, lr: float = 1e-4) -> dict[str, Any]:
    """MLM on `texts` (the training sources) for `steps` steps, in place, before seq2seq training.

    Chunks of `max_length` tokens, 15% masked 80/10/10, a bidirectional (explicit) mask whatever
    the model's scheme, new parameters (the MLM head) at 10x the learning rate. Deterministic for
    a seed, so an interrupted run that redoes it gets the same weights. Returns the Trainer summary.
    """
    from .data.objectives import MLMCollator
    from .pretraining import chunk_documents
    from .training import TrainConfig, Trainer

    chunks = chunk_documents(tokenizer, texts, max_length)
    collate = MLMCollator(SpecialIds.from_tokenizer(tokenizer), max_length, 0.15,
                          generator=torch.Generator().manual_seed(seed), explicit_mask=True)
    config = TrainConfig(lr=lr, warmup=0.06, max_steps=steps, batch_size=batch_size, seed=seed, save_steps=0,
                         save_total_limit=1, log_steps=10, new_param_lr_multiplier=10.0,
                         new_params=frozenset(new_params), device=device, progress=progress)
    if output_dir.exists():
        shutil.rmtree(output_dir)
    trainer = Trainer(model, chunks, collate, config, output_dir, lengths=[len(c) + 2 for c in chunks])
    summary = trainer.train()
    for ckpt in output_dir.glob("checkpoint-*"):  # the seq2seq checkpoints hold these weights anyway
        shutil.rmtree(ckpt)
    return summary
