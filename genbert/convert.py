"""Checkpoint I/O: genbert directories and transformers BERT / bert2bert directories, both ways.

Pure functions over config dicts and state dicts (it never builds a model: `GenBert.from_pretrained`
and `save_pretrained` do, with these). transformers' BERT names map onto genbert's by a plain table
of regular expressions.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from .config import DecoderConfig, GenBertConfig
from .io import atomic_write, write_json

# transformers BERT (BertModel level, "bert." prefix stripped) -> genbert encoder-only names
_RULES = [
    (r"^embeddings\.word_embeddings\.", "embeddings.word."),
    (r"^embeddings\.position_embeddings\.", "embeddings.position."),
    (r"^embeddings\.token_type_embeddings\.", "embeddings.token_type."),
    (r"^embeddings\.LayerNorm\.", "embeddings.norm."),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.", r"encoder.layers.\1.attention.\2."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"encoder.layers.\1.attention.out."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"encoder.layers.\1.attention.norm."),
    (r"^encoder\.layer\.(\d+)\.crossattention\.self\.(query|key|value)\.", r"encoder.layers.\1.cross_attention.\2."),
    (r"^encoder\.layer\.(\d+)\.crossattention\.output\.dense\.", r"encoder.layers.\1.cross_attention.out."),
    (r"^encoder\.layer\.(\d+)\.crossattention\.output\.LayerNorm\.", r"encoder.layers.\1.cross_attention.norm."),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"encoder.layers.\1.ffn.up."),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"encoder.layers.\1.ffn.down."),
    (r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"encoder.layers.\1.ffn.norm."),
    (r"^pooler\.dense\.", "nsp_head.pooler."),
    (r"^cls\.predictions\.transform\.dense\.", "lm_head.dense."),
    (r"^cls\.predictions\.transform\.LayerNorm\.", "lm_head.norm."),
    (r"^cls\.predictions\.bias$", "lm_head.bias"),
    (r"^cls\.seq_relationship\.", "nsp_head.classifier."),
]
# a BERT used as decoder: its layers become decoder layers
_DECODER_RULES = [
    (r"^encoder\.layers\.(\d+)\.attention\.", r"layers.\1.self_attention."),
    (r"^encoder\.layers\.(\d+)\.", r"layers.\1."),
]
_SKIPPED = re.compile(r"(position_ids|cls\.predictions\.decoder\.(weight|bias))$")
_CONFIG_FIELDS = [f.name for f in dataclasses.fields(GenBertConfig)
                  if f.name not in ("mask_scheme", "decoder", "extra", "objective", "decoding", "diffusion_mask")]
# how a genbert model trains and decodes, kept in a transformers config.json under these names
_GENBERT_FIELDS = {"genbert_mask_scheme": "mask_scheme", "genbert_objective": "objective",
                   "genbert_decoding": "decoding", "genbert_diffusion_mask": "diffusion_mask"}


def _sub(rules: list[tuple[str, str]], key: str) -> Optional[str]:
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return None


def hf_to_genbert_key(key: str, part: str = "encoder") -> Optional[str]:
    """Name of a transformers BERT tensor (without the "bert." prefix) in genbert, or None."""
    key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
    new = _sub(_RULES, key)
    if new is None or part == "encoder":
        return new
    return "decoder." + (_sub(_DECODER_RULES, new) or new)


# ---------------------------------------------------------------------- reading files
def read_state_dict(path: Path) -> dict[str, Tensor]:
    """model.safetensors (possibly sharded) or pytorch_model.bin (weights only, never unpickled code)."""
    if (path / "model.safetensors").exists():
        return load_file(str(path / "model.safetensors"))
    index = path / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        sd: dict[str, Tensor] = {}
        for shard in shards:
            sd.update(load_file(str(path / shard)))
        return sd
    if (path / "pytorch_model.bin").exists():
        return torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{path}: no model.safetensors or pytorch_model.bin")


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The directory's config.json as a dict (FileNotFoundError / ValueError naming the file)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: no config.json (not a model directory)")
    try:
        d = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path / 'config.json'}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path / 'config.json'}: not a JSON object")
    return d


def _special_ids(path: Path, hf: dict[str, Any], vocab_size: int) -> dict[str, int]:
    """[CLS]/[SEP]/[MASK] ids: from the config, else the directory's vocab.txt, else BERT's."""
    ids = {}
    vocab = {}
    if (path / "vocab.txt").exists():
        with open(path / "vocab.txt", encoding="utf-8") as f:
            vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    for name, token, default in (("cls_token_id", "[CLS]", 101), ("sep_token_id", "[SEP]", 102),
                                 ("mask_token_id", "[MASK]", 103)):
        v = hf.get(name)
        if v is None:
            v = vocab.get(token, default)
        ids[name] = v if v < vocab_size else None
    return {k: v for k, v in ids.items() if v is not None}


def _config_from_hf(path: Path, hf: dict[str, Any]) -> dict[str, Any]:
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{path}: position_embedding_type {hf['position_embedding_type']!r} is not supported")
    kw = {k: hf[k] for k in _CONFIG_FIELDS if k in hf and hf[k] is not None}
    kw.update(_special_ids(path, hf, hf["vocab_size"]))
    kw.update({ours: hf[theirs] for theirs, ours in _GENBERT_FIELDS.items() if hf.get(theirs) is not None})
    kw.setdefault("mask_scheme", "causal" if hf.get("is_decoder") else "bidirectional")
    return kw


# ---------------------------------------------------------------------- loading
def load_checkpoint(path: str | os.PathLike, decoder: Optional[str] = None, decoder_layers: Optional[int] = None,
                    overrides: Optional[Mapping[str, Any]] = None) -> tuple[GenBertConfig, dict[str, Tensor]]:
    """(config, genbert-named state dict) of a genbert directory or a local transformers BERT /
    bert2bert directory. `decoder="bert"|"shared"|"random"` adds a decoder to an encoder checkpoint
    (BERT2BERT, BERTShare, BERT2Rnd); `overrides` set config fields, e.g. mask_scheme."""
    path = Path(path)
    hf = read_config(path)
    model_type = hf.get("model_type")
    sd = read_state_dict(path)
    overrides = dict(overrides or {})

    if model_type == "genbert":
        kw = GenBertConfig.from_dict(hf).to_dict()
        kw.pop("model_type", None)
        mapped = dict(sd)
        if decoder is not None and kw.get("decoder") is not None:
            raise ValueError(f"{path}: decoder= adds a decoder to an encoder checkpoint; this genbert model has one")
    elif model_type == "bert":
        kw = _config_from_hf(path, hf)
        mapped = {}
        for k, v in sd.items():
            new = hf_to_genbert_key(k[5:] if k.startswith("bert.") else k)
            if new is not None:
                mapped[new] = v
    elif model_type == "encoder-decoder":
        if decoder is not None:
            raise ValueError(f"{path}: decoder= needs an encoder-only checkpoint; this is an encoder-decoder")
        kw, mapped = _bert2bert(path, hf, sd)
    else:
        raise ValueError(f"{path / 'config.json'}: model_type {model_type!r} is not supported "
                         "(expected 'bert', 'encoder-decoder' or 'genbert')")
    if decoder is not None:
        kw["mask_scheme"] = "bidirectional"
        mapped = add_decoder(kw, mapped, decoder, decoder_layers)
    kw.update(overrides)
    return GenBertConfig.from_dict(kw), mapped


def _bert2bert(path: Path, hf: dict[str, Any], sd: dict[str, Tensor]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    enc, dec = hf["encoder"], hf["decoder"]
    if enc.get("model_type") != "bert" or dec.get("model_type") != "bert":
        raise ValueError(f"{path}: only BERT encoder-decoder (bert2bert) models are supported")
    for f in ("hidden_size", "num_attention_heads", "intermediate_size", "hidden_act", "vocab_size",
              "max_position_embeddings", "type_vocab_size", "layer_norm_eps"):
        if enc.get(f) != dec.get(f):
            raise ValueError(f"{path}: encoder and decoder differ in {f} ({enc.get(f)} vs {dec.get(f)})")
    kw = _config_from_hf(path, enc)
    kw["mask_scheme"] = "bidirectional"
    for f in ("pad_token_id", "eos_token_id", "decoder_start_token_id"):
        if hf.get(f) is not None:
            kw[f] = hf[f]
    if kw.get("decoder_start_token_id") is None:
        raise ValueError(f"{path}: config.json has no decoder_start_token_id")
    mapped = {}
    for k, v in sd.items():
        if k.startswith("encoder."):
            new = hf_to_genbert_key(k[len("encoder."):])
        elif k.startswith("decoder."):
            k = k[len("decoder."):]
            new = hf_to_genbert_key(k[5:] if k.startswith("bert.") else k, part="decoder")
        else:
            new = None
        if new is not None:
            mapped[new] = v
    shared = torch.equal(mapped["embeddings.word.weight"], mapped["decoder.embeddings.word.weight"])
    kw["decoder"] = DecoderConfig(num_hidden_layers=dec["num_hidden_layers"], init="bert",
                                  share_word_embeddings=shared)
    if shared:
        del mapped["decoder.embeddings.word.weight"]
    return kw, mapped


def add_decoder(kw: dict[str, Any], mapped: dict[str, Tensor], init: str,
                layers: Optional[int]) -> dict[str, Tensor]:
    """BERT2BERT / BERTShare / BERT2Rnd (Rothe et al. 2020) from an encoder checkpoint's tensors:
    sets `kw["decoder"]` and returns the state dict with the decoder tensors it provides."""
    n_enc = kw["num_hidden_layers"]
    layers = layers or n_enc
    if init == "shared":
        if layers != n_enc:
            raise ValueError("a shared (BERTShare) decoder has as many layers as the encoder")
        kw["decoder"] = DecoderConfig(num_hidden_layers=layers, init="shared", share_encoder_weights=True)
        return mapped
    if init == "random":
        kw["decoder"] = DecoderConfig(num_hidden_layers=layers, init="random")
        return mapped
    if init != "bert":
        raise ValueError(f"decoder must be 'bert', 'shared' or 'random', got {init!r}")
    if layers > n_enc:
        raise ValueError(f"a BERT-initialised decoder can have at most {n_enc} layers, got {layers}")
    kw["decoder"] = DecoderConfig(num_hidden_layers=layers, init="bert")
    out = dict(mapped)
    for k, v in mapped.items():
        m = re.match(r"encoder\.layers\.(\d+)\.(attention|ffn)\.(.*)", k)
        if m and int(m.group(1)) < layers:
            part = "self_attention" if m.group(2) == "attention" else "ffn"
            out[f"decoder.layers.{m.group(1)}.{part}.{m.group(3)}"] = v.clone()
        elif k.startswith(("embeddings.position", "embeddings.token_type", "embeddings.norm", "lm_head.")):
            out["decoder." + k] = v.clone()
    return out


@dataclass(frozen=True)
class LoadReport:
    """What loading a checkpoint into a model did: `new` = parameters the checkpoint did not hold
    (newly initialised), `ignored` = checkpoint tensors the model has no place for."""

    path: str
    new: tuple[str, ...]
    ignored: tuple[str, ...]
    quiet: tuple[str, ...] = ()  # new names not worth a warning (heads that play no part)

    def warn(self, stacklevel: int = 3) -> None:
        if self.ignored:
            warnings.warn(f"{self.path}: ignored tensors not in the model: {', '.join(self.ignored[:8])}"
                          + (" ..." if len(self.ignored) > 8 else ""), stacklevel=stacklevel)
        loud = [n for n in self.new if n not in self.quiet]
        if loud:
            warnings.warn(f"{self.path}: newly initialised (not in the checkpoint): {summarize_names(loud, 0)}",
                          stacklevel=stacklevel)


def summarize_names(names: Sequence[str], limit: int = 6) -> str:
    """Parameter names grouped by layer pattern ("encoder.layers.*.ffn.up"), at most `limit` groups (0: all)."""
    groups = sorted({re.sub(r"\.(weight|bias)$", "", re.sub(r"\.\d+\.", ".*.", n)) for n in names})
    if limit and len(groups) > limit:
        return ", ".join(groups[:limit]) + f", ... ({len(groups)} groups)"
    return ", ".join(groups)


# ---------------------------------------------------------------------- saving
def save_genbert(config: GenBertConfig, state: Mapping[str, Tensor], path: str | os.PathLike) -> None:
    """config.json + model.safetensors, each written atomically."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    atomic_write(path / "model.safetensors", lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    write_json(path / "config.json", config.to_dict())


def _bert_hf_config(config: GenBertConfig, **extra: Any) -> dict[str, Any]:
    d = {k: getattr(config, k) for k in _CONFIG_FIELDS if k not in ("eos_token_id", "decoder_start_token_id")}
    d.update(model_type="bert", position_embedding_type="absolute", **extra)
    return d


def _hf_bert_state(own: Mapping[str, Tensor], genbert_prefix: str, part: str, hf_keys: list[str]) -> dict[str, Tensor]:
    out = {}
    for hf_key in hf_keys:
        src = hf_to_genbert_key(hf_key, part=part)
        out[genbert_prefix + hf_key] = own[src].detach().contiguous().cpu().clone()
    return out


def _hf_keys(config: GenBertConfig, n_layers: int, cross: bool, pooler: bool, nsp: bool) -> list[str]:
    keys = [f"embeddings.{n}.weight" for n in ("word_embeddings", "position_embeddings", "token_type_embeddings")]
    keys += ["embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"]
    subs = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
            "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"]
    if cross:
        subs += ["crossattention.self.query", "crossattention.self.key", "crossattention.self.value",
                 "crossattention.output.dense", "crossattention.output.LayerNorm"]
    for i in range(n_layers):
        keys += [f"encoder.layer.{i}.{s}.{w}" for s in subs for w in ("weight", "bias")]
    if pooler:
        keys += ["pooler.dense.weight", "pooler.dense.bias"]
    if nsp:
        keys += ["cls.seq_relationship.weight", "cls.seq_relationship.bias"]
    keys += ["cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
             "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias",
             "cls.predictions.bias"]
    return keys


def save_transformers(config: GenBertConfig, own: Mapping[str, Tensor], path: str | os.PathLike) -> None:
    """Write a directory that transformers loads with identical logits: BertForPreTraining layout
    (BertForMaskedLM / BertLMHeadModel load it too) or, with a decoder, EncoderDecoderModel.
    `own`: every genbert parameter by name, shared tensors under each of their names. How the model
    trains and decodes (mask scheme, objective, decoding) is kept as `genbert_*` config entries."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    c = config
    ids = dict(cls_token_id=c.cls_token_id, sep_token_id=c.sep_token_id, mask_token_id=c.mask_token_id)
    genbert = {theirs: getattr(c, ours) for theirs, ours in _GENBERT_FIELDS.items()}
    if c.decoder is None:
        keys = _hf_keys(c, c.num_hidden_layers, cross=False, pooler=True, nsp=True)
        enc_keys = [k for k in keys if not k.startswith("cls.")]
        state = _hf_bert_state(own, "bert.", "encoder", enc_keys)
        state.update(_hf_bert_state(own, "", "encoder", [k for k in keys if k.startswith("cls.")]))
        causal = c.mask_scheme == "causal"
        hf_config = _bert_hf_config(c, architectures=["BertLMHeadModel" if causal else "BertForPreTraining"],
                                    is_decoder=causal, **genbert, **ids)
    else:
        enc_keys = [k for k in _hf_keys(c, c.num_hidden_layers, False, True, False) if not k.startswith("cls.")]
        dec_keys = _hf_keys(c, c.decoder.num_hidden_layers, cross=True, pooler=False, nsp=False)
        state = _hf_bert_state(own, "encoder.", "encoder", enc_keys)
        state.update(_hf_bert_state(own, "decoder.bert.", "decoder", [k for k in dec_keys if not k.startswith("cls.")]))
        state.update(_hf_bert_state(own, "decoder.", "decoder", [k for k in dec_keys if k.startswith("cls.")]))
        dec_cfg = _bert_hf_config(c, num_hidden_layers=c.decoder.num_hidden_layers, is_decoder=True,
                                  add_cross_attention=True, architectures=["BertLMHeadModel"], **ids)
        hf_config = {
            "model_type": "encoder-decoder", "is_encoder_decoder": True, "architectures": ["EncoderDecoderModel"],
            "encoder": _bert_hf_config(c, **ids), "decoder": dec_cfg,
            "decoder_start_token_id": c.decoder_start_token_id, "pad_token_id": c.pad_token_id,
            "eos_token_id": c.generation_eos_token_id, "tie_word_embeddings": False,
        }
    atomic_write(path / "model.safetensors", lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    write_json(path / "config.json", hf_config)
