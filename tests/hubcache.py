"""A Hugging Face hub cache laid out by hand, as huggingface_hub writes it (blobs, snapshot links,
refs/main), holding a tiny BERT with a WordPiece vocabulary: hub ids resolve offline from it."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

WORDS = ("the cat dog bird sat ran flew over under near a big small red blue green house tree river road "
         "on in at is was and to of it he she they we you").split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_vocab(size: int = 99) -> list[str]:
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = list(dict.fromkeys(SPECIAL + list(WORDS) + [".", ","] + letters + [f"##{c}" for c in letters]))
    vocab += [f"[unused{i}]" for i in range(size - len(vocab))]
    assert len(vocab) == size
    return vocab


def save_tiny_bert(directory: Path, seed: int = 0) -> Path:
    """A BertForMaskedLM (the conftest TINY sizes, special ids of the vocabulary) and its tokenizer."""
    import torch
    from transformers import BertForMaskedLM

    from conftest import hf_bert_config
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = BertForMaskedLM(hf_bert_config(pad_token_id=0)).eval()
    model.save_pretrained(directory)
    (directory / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n", encoding="utf-8")
    (directory / "tokenizer_config.json").write_text('{"do_lower_case": true, "tokenizer_class": "BertTokenizer"}')
    (directory / "README.md").write_text("not part of what genbert downloads\n")
    return directory


def lay_out_cache(cache: Path, repo_id: str, files: Path, revision: str = "0" * 39 + "1") -> Path:
    """``cache/models--ORG--NAME`` with the files of ``files`` as blobs, linked from
    ``snapshots/REVISION``, and ``refs/main`` naming the revision; returns the snapshot."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for f in sorted(files.iterdir()):
        data = f.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / f.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot
