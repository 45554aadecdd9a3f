"""`datasets` as the data layer: save_to_disk directories, parquet files and hub names as --dataset,
the built-in datasets as datasets.Dataset splits, one-line errors; tiny `genbert train` runs on them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hubcache import lay_out_cache, save_tiny_bert

ROOT = Path(__file__).resolve().parents[1]
WORDS = "the cat dog bird sat ran flew over under near a big small red blue green house tree river road".split()
TINY = ["--init", "scratch", "--hidden-size", "32", "--layers", "2", "--heads", "4", "--intermediate-size", "64",
        "--vocab-size", "60", "--max-position-embeddings", "64", "--batch-size", "8", "--max-source-length", "24",
        "--max-target-length", "8", "--no-progress", "--lr", "1e-3", "--mlm-warmup-steps", "2", "--max-steps", "3",
        "--save-steps", "0"]


def rows(n: int, seed: int = 0) -> list[dict]:
    import random
    rng = random.Random(seed)
    out = []
    for i in range(n):
        src = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 16))) + "."
        out.append({"article": src, "highlights": " ".join(src.split()[:3]), "n": i})
    return out


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    """A DatasetDict saved with save_to_disk (splits train / dev), the same as two parquet files,
    and a hub cache holding a tiny BERT."""
    from datasets import Dataset, DatasetDict
    d = tmp_path_factory.mktemp("data")
    dd = DatasetDict({"train": Dataset.from_list(rows(24)), "dev": Dataset.from_list(rows(6, seed=1))})
    dd.save_to_disk(str(d / "saved"))
    dd["train"].to_parquet(str(d / "train.parquet"))
    dd["dev"].to_parquet(str(d / "dev.parquet"))
    cache = tmp_path_factory.mktemp("hub")
    lay_out_cache(cache, "genbert-test/tiny-bert", save_tiny_bert(tmp_path_factory.mktemp("files")))
    return {"dir": d / "saved", "train": d / "train.parquet", "dev": d / "dev.parquet", "hub": cache,
            "datasets_cache": tmp_path_factory.mktemp("datasets-cache")}


def genbert(saved, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_CACHE": str(saved["hub"]),
           "HF_DATASETS_CACHE": str(saved["datasets_cache"]), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "genbert", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


# --------------------------------------------------------------------------- genbert train, end to end
def test_save_to_disk_dataset_dict_trains_end_to_end(saved, tmp_path):
    out = tmp_path / "run"
    r = genbert(saved, "train", "--dataset", str(saved["dir"]), "--source-field", "article", "--target-field",
                "highlights", "--validation-split", "dev", "--output-dir", str(out), *TINY, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "data: saved: 24 training pairs, 6 validation pairs" in r.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["num_examples"] == 6 and "rougeL" in metrics["scores"]
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in preds] == [f"dev:{i}" for i in range(6)]
    # nothing was written beside the user's data
    assert sorted(p.name for p in (saved["dir"] / "train").iterdir()) == ["data-00000-of-00001.arrow",
                                                                           "dataset_info.json", "state.json"]
    card = (out / "final" / "README.md").read_text()
    assert "library_name: genbert" in card and "rougeL" in card and '"dataset":' in card


def test_parquet_pair_trains_from_a_hub_id(saved, tmp_path):
    """--train/--validation parquet files, --init a hub id from the cache laid out in the test."""
    out = tmp_path / "run"
    tiny = ["genbert-test/tiny-bert" if a == "scratch" else a for a in TINY]
    r = genbert(saved, "train", "--train", str(saved["train"]), "--validation", str(saved["dev"]),
                "--source-field", "article", "--target-field", "highlights", "--output-dir", str(out), *tiny,
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "model: genbert-test/tiny-bert (" in r.stdout
    assert "data: train: 24 training pairs, 6 validation pairs" in r.stdout
    assert (out / "final" / "model.safetensors").is_file() and (out / "metrics.json").is_file()
    assert 'base_model: "genbert-test/tiny-bert"' in (out / "final" / "README.md").read_text()


@pytest.mark.parametrize("flags,message", [
    (["--source-field", "articel", "--target-field", "highlights"],
     "--source-field 'articel': {dir} has no such column (columns: article, highlights, n)"),
    (["--source-field", "article", "--target-field", "n"], "--target-field 'n': the column of {dir} holds int64"),
    (["--source-field", "article", "--target-field", "highlights", "--validation-split", "validation"],
     "--validation-split 'validation': {dir} has no such split (splits: train, dev)"),
])
def test_wrong_field_or_split_is_one_line(saved, tmp_path, flags, message):
    r = genbert(saved, "train", "--dataset", str(saved["dir"]), *flags, "--output-dir", str(tmp_path / "o"), *TINY,
                cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [f"genbert train: error: {message.format(dir=saved['dir'])}"] or (
        len(r.stderr.splitlines()) == 1 and r.stderr.startswith(
            f"genbert train: error: {message.format(dir=saved['dir'])}")), r.stderr
    assert not (tmp_path / "o").exists()


def test_parquet_wrong_field_and_missing_hub_dataset(saved, tmp_path):
    r = genbert(saved, "train", "--train", str(saved["train"]), "--validation", str(saved["dev"]),
                "--output-dir", str(tmp_path / "o"), *TINY, cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"genbert train: error: --source-field 'source': {saved['train']} has no such column "
                               "(columns: article, highlights, n)")
    r = genbert(saved, "train", "--dataset", "genbert-test/no-such-dataset", "--output-dir", str(tmp_path / "o"),
                *TINY, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.splitlines() == [
        "genbert train: error: --dataset genbert-test/no-such-dataset: not a local file or directory, and the "
        "datasets cache lacks it (HF_HUB_OFFLINE is set)"], r.stderr


# --------------------------------------------------------------------------- the library
def test_builtin_datasets_are_datasets_with_the_same_splits():
    from genbert.data.datasets import load_named
    from genbert.data.sources import load_split, pair_split
    d = load_split("aclsum", "validation")
    assert type(d).__name__ == "Dataset" and d.to_list() == load_named("aclsum", "validation")
    assert list(pair_split("aclsum", "test", limit=3)) == load_named("aclsum", "test")[:3]


def test_jsonl_files_keep_file_and_line_errors(tmp_path):
    from genbert.data.datasets import DataError
    from genbert.data.sources import pair_split
    f = tmp_path / "p.jsonl"
    f.write_text('{"source": "a", "target": "b"}\n{"source": "a"}\n')
    with pytest.raises(DataError, match=f"{f}:2: missing field 'target'"):
        pair_split(str(f))
    f.write_text('{"source": " a ", "target": "b"}\n{"source": "", "target": "c"}\n')
    pairs = pair_split(str(f), id_prefix="validation")
    assert list(pairs) == [{"id": "validation:0", "source": "a", "target": "b"}] and pairs.skipped == 1


def test_data_files_skip_empty_pairs_and_take_ids(tmp_path):
    from datasets import Dataset

    from genbert.data.sources import pair_split
    Dataset.from_list([{"id": "x1", "s": " one ", "t": "1"}, {"id": "x2", "s": "", "t": "2"},
                       {"id": "x3", "s": "three", "t": None}, {"id": "x4", "s": "four", "t": "4"}]
                      ).to_parquet(str(tmp_path / "d.parquet"))
    pairs = pair_split(str(tmp_path / "d.parquet"), source_field="s", target_field="t")
    assert len(pairs) == 2 and pairs.skipped == 2
    assert list(pairs) == [{"id": "x1", "source": "one", "target": "1"}, {"id": "x4", "source": "four", "target": "4"}]


def test_documents_from_a_dataset_stream_or_not(tmp_path):
    from datasets import Dataset

    from genbert.data.datasets import DataError
    from genbert.data.sources import iter_documents
    Dataset.from_list([{"text": "a b"}, {"text": " "}, {"text": "c"}]).to_parquet(str(tmp_path / "d.parquet"))
    for streaming in (False, True):
        assert list(iter_documents(str(tmp_path / "d.parquet"), streaming=streaming)) == ["a b", "c"]
        with pytest.raises(DataError, match="--text-field 'body': .* has no such column"):
            list(iter_documents(str(tmp_path / "d.parquet"), text_field="body", streaming=streaming))
