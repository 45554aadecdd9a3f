"""Hub ids wherever a model path is taken (offline, from a Hugging Face cache laid out here), and what
save_pretrained writes for the hub."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from hubcache import lay_out_cache, save_tiny_bert

ROOT = Path(__file__).resolve().parents[1]
REPO_ID = "genbert-test/tiny-bert"


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("hub")
    lay_out_cache(cache, REPO_ID, save_tiny_bert(tmp_path_factory.mktemp("files")))
    return cache


def offline_env(cache: Path) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_CACHE": str(cache),
            "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def test_resolves_only_model_files_from_the_cache(hub_cache):
    from genbert.hub import resolve_model_dir
    d = resolve_model_dir(REPO_ID, cache_dir=hub_cache)
    assert d.parent.name == "snapshots" and (d / "config.json").is_file()
    # a local directory is itself
    assert resolve_model_dir(d) == d


def test_hub_id_gives_the_logits_of_transformers(hub_cache):
    from transformers import BertForMaskedLM

    from genbert import GenBert
    ref = BertForMaskedLM.from_pretrained(REPO_ID, cache_dir=hub_cache).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NSP head: newly initialised
        ours = GenBert.from_pretrained(REPO_ID, cache_dir=hub_cache, local_files_only=True).eval()
    ids = torch.tensor([[2, 10, 11, 12, 13, 3, 0], [2, 14, 15, 3, 0, 0, 0]])
    am = (ids != 0).long()
    with torch.no_grad():
        expected = ref(input_ids=ids, attention_mask=am).logits
        got = ours(ids, attention_mask=am).logits
    # the same weights; the logits equal up to float rounding (the attention kernels differ)
    torch.testing.assert_close(got[am.bool()], expected[am.bool()], atol=1e-5, rtol=0)
    assert torch.equal(ours.embeddings.word.weight, ref.bert.embeddings.word_embeddings.weight)


def test_missing_id_is_one_line_naming_it_and_the_cache(hub_cache):
    from genbert import GenBert
    from genbert.hub import ModelNotFoundError
    with pytest.raises(ModelNotFoundError) as e:
        GenBert.from_pretrained("genbert-test/not-there", cache_dir=hub_cache)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("genbert-test/not-there: ")
    assert f"cache {hub_cache} lacks it" in msg and "HF_HUB_OFFLINE" in msg
    assert isinstance(e.value, FileNotFoundError)


def test_hub_id_in_a_real_process_through_hf_hub_cache(hub_cache, tmp_path):
    """As a user runs it: HF_HUB_CACHE and HF_HUB_OFFLINE in the environment, nothing passed."""
    code = ("from genbert import TextGenerator\n"
            f"g = TextGenerator.from_pretrained({REPO_ID!r})\n"
            "print(len(g.tokenizer), g.model.config.num_hidden_layers)\n")
    r = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env=offline_env(hub_cache), timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["99", "2"]


@pytest.mark.parametrize("argv", [["generate", "genbert-test/not-there", "in.txt"],
                                  ["train", "--init", "genbert-test/not-there", "--no-eval"],
                                  ["eval-mlm", "genbert-test/not-there", "--text", "in.txt"]])
def test_missing_id_on_the_command_line_is_one_line(hub_cache, tmp_path, argv):
    (tmp_path / "in.txt").write_text("the cat sat on the big red house .\n")
    r = subprocess.run([sys.executable, "-m", "genbert", *argv], capture_output=True, text=True, cwd=tmp_path,
                       env=offline_env(hub_cache), timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"genbert {argv[0]}: error: ") and "genbert-test/not-there" in lines[0]
    assert f"cache {hub_cache} lacks it" in lines[0]


def test_save_pretrained_is_what_the_hub_expects(tmp_path, hub_cache):
    from genbert import TextGenerator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen = TextGenerator.from_pretrained(REPO_ID, cache_dir=hub_cache, device="cpu")
    gen.settings = {"max_source_length": 16, "max_new_tokens": 4}
    gen.save_pretrained(tmp_path / "m", model_card={"recipe": {"lr": 0.001, "init": REPO_ID}, "base_model": REPO_ID,
                                                    "dataset": "cnn_dailymail:3.0.0", "hub_dataset": "cnn_dailymail", "scores": {"rougeL": 25.8},
                                                    "baselines": {"lead-10": {"rougeL": 20.5}}})
    names = {p.name for p in (tmp_path / "m").iterdir()}
    assert {"config.json", "model.safetensors", "vocab.txt", "generation.json", "README.md"} <= names
    card = (tmp_path / "m" / "README.md").read_text()
    meta = card.split("---\n")[1]
    assert "library_name: genbert" in meta and f'base_model: "{REPO_ID}"' in meta and '- "cnn_dailymail"' in meta
    assert '"lr": 0.001' in card and "| rougeL | 25.8 | 20.5 |" in card
    # and it loads back as a hub snapshot would
    again = TextGenerator.from_pretrained(tmp_path / "m", device="cpu")
    assert again.settings == gen.settings


def test_push_to_hub_uploads_the_saved_directory(tmp_path, monkeypatch):
    import huggingface_hub

    from genbert import GenBert, TextGenerator
    from genbert.tokenization import Tokenizer
    from conftest import minilm_dir, tiny_config
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, private=None, exist_ok=False):
            calls["create"] = (repo_id, private, exist_ok)

        def upload_folder(self, repo_id, folder_path, revision=None, commit_message=""):
            calls["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            return "https://huggingface.co/me/model/commit/1"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    tok = Tokenizer.from_dir(minilm_dir())
    model = GenBert(tiny_config(vocab_size=len(tok), max_position_embeddings=64, mask_scheme="prefix"))
    url = TextGenerator(model, tok, {"max_new_tokens": 4}, device="cpu").push_to_hub("me/model", token="t")
    assert url.endswith("/commit/1") and calls["create"] == ("me/model", None, True) and calls["token"] == "t"
    assert {"README.md", "config.json", "model.safetensors", "generation.json"} <= set(calls["files"])
