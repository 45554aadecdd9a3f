"""The installed `genbert` command (subcommands over the recipe layer), --report-to tensorboard, and
pretraining from a `datasets` source with streaming=True (the training sequences kept on disk)."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORDS = "the cat dog bird sat ran flew over under near a big small red blue green house tree river road".split()
PRETRAIN_TINY = ["--init", "scratch", "--hidden-size", "32", "--layers", "2", "--heads", "4", "--intermediate-size",
                 "64", "--vocab-size", "60", "--max-position-embeddings", "64", "--max-length", "32", "--batch-size",
                 "8", "--heldout-fraction", "0.1", "--no-progress", "--lr", "1e-3", "--log-steps", "1",
                 "--max-steps", "3", "--save-steps", "0", "--max-eval-sequences", "16"]
SUBCOMMANDS = ("train", "pretrain", "generate", "benchmark", "compare", "eval-mlm")


def genbert(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "genbert", *args], capture_output=True, text=True, cwd=cwd,
                          env=full, timeout=timeout)


def make_docs(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))).capitalize() + "."
                     for _ in range(rng.randint(3, 7))) for _ in range(n)]


# --------------------------------------------------------------------------- the command
def test_genbert_help_lists_every_subcommand_fast():
    t = time.perf_counter()
    r = genbert("--help")
    took = time.perf_counter() - t
    assert r.returncode == 0 and r.stdout.startswith("usage: genbert COMMAND")
    for name in SUBCOMMANDS:
        assert f"\n  {name} " in r.stdout, name
    assert took < 5  # no torch, no recipe imported (measured about 0.15 s)
    r = genbert("nope")
    assert r.returncode == 2 and r.stderr.splitlines() == [
        "genbert: error: unknown command 'nope'; choose one of " + ", ".join(SUBCOMMANDS) + " (see --help)"]


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help(name):
    r = genbert(name, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: genbert {name} ")
    if name in ("train", "pretrain"):
        assert "--report-to" in r.stdout and "--dataset" in r.stdout


def test_pyproject_installs_the_command():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'genbert = "genbert.cli:main"' in text and 'genbert-generate = "genbert.cli:generate_main"' in text
    assert '"datasets' in text and '"huggingface_hub' in text and 'tensorboard = ["tensorboard"]' in text


def test_a_bad_flag_is_one_line_under_the_subcommand_name(tmp_path):
    r = genbert("train", "--max-steps", "0", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.splitlines() == ["genbert train: error: --max-steps=0: must be >= 1"]


# --------------------------------------------------------------------------- tensorboard
def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_report_to_tensorboard_writes_the_training_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    text = tmp_path / "docs.txt"
    text.write_text("\n\n".join(make_docs(30)) + "\n")
    out = tmp_path / "run"
    r = genbert("pretrain", "--text", str(text), "--output-dir", str(out), "--report-to", "tensorboard",
                *PRETRAIN_TINY, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    got = scalars(out / "tensorboard")
    logged = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    # the loss TensorBoard shows is the loss of log.jsonl, step by step
    assert [s for s, _ in got["train/loss"]] == [rec["step"] for rec in logged if "loss" in rec] == [1, 2, 3]
    for (_, value), rec in zip(got["train/loss"], [rec for rec in logged if "loss" in rec]):
        assert value == pytest.approx(rec["loss"], rel=1e-6)
    assert {"train/lr", "train/grad_norm", "train/tokens_per_s", "heldout/masked_token_accuracy"} <= set(got)
    assert [s for s, _ in got["heldout/masked_token_accuracy"]] == [0, 3]  # before and after
    assert (out / "log.jsonl").is_file() and (out / "loss.png").is_file()  # as always


def test_report_to_none_writes_no_event_file(tmp_path):
    text = tmp_path / "docs.txt"
    text.write_text("\n\n".join(make_docs(30)) + "\n")
    out = tmp_path / "run"
    r = genbert("pretrain", "--text", str(text), "--output-dir", str(out), *PRETRAIN_TINY, "--heldout-fraction", "0",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not (out / "tensorboard").exists()


# --------------------------------------------------------------------------- streaming pretraining
@pytest.fixture(scope="module")
def parquet_docs(tmp_path_factory) -> Path:
    from datasets import Dataset
    f = tmp_path_factory.mktemp("docs") / "docs.parquet"
    docs = make_docs(40)
    Dataset.from_list([{"body": d, "n": i} for i, d in enumerate(docs + docs[:5])]).to_parquet(str(f))  # 5 duplicates
    return f


def test_streaming_gives_the_sequences_of_the_in_memory_path(parquet_docs, tmp_path, tokenizer):
    """The same de-duplication, held-out split and chunks, in the same order; the chunks on disk."""
    from genbert.data import documents as D
    docs = D.load_documents(datasets=[str(parquet_docs)], text_field="body")
    split = D.split_heldout(docs.texts, 0.1)
    expected = D.chunk_documents(tokenizer, split.train, 32)

    stats, heldout = D.StreamStats(), []
    stream = D.document_stream(datasets=[str(parquet_docs)], text_field="body", stats=stats)
    chunks = D.write_chunks(tokenizer, D.stream_heldout(stream, 0.1, heldout, 100, stats), 32, tmp_path / "c",
                            batch=7)
    assert type(chunks).__name__ == "TokenChunks" and not isinstance(chunks, list)
    assert list(chunks) == expected and chunks.lengths() == [len(c) for c in expected]
    assert D.heldout_order(heldout) == split.heldout and stats.duplicates == docs.duplicates == 5
    assert (tmp_path / "c" / "ids.int32").stat().st_size == 4 * sum(map(len, expected))
    chunks.remove()
    assert not (tmp_path / "c").exists()


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    import warnings

    from genbert.tokenization import train_sentencepiece
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train_sentencepiece(make_docs(30), tmp_path_factory.mktemp("spm"), 60)


def test_streaming_pretraining_end_to_end(parquet_docs, tmp_path):
    out = tmp_path / "run"
    r = genbert("pretrain", "--dataset", str(parquet_docs), "--text-field", "body", "--streaming", "--output-dir",
                str(out), *PRETRAIN_TINY, cwd=tmp_path, env={"HF_DATASETS_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "data: documents streamed (" in r.stdout and "5 duplicates dropped" in r.stdout
    assert "training sequences on disk in" in r.stdout
    record = json.loads((out / "mlm_eval.json").read_text())
    assert record["train_steps"] == 3 and record["after"]["masked_token_accuracy"] >= 0
    assert not (out / "stream-chunks" / "rank0").exists()  # removed when the run is done
    assert (out / "final" / "README.md").is_file()
    # the same run without streaming holds out the same documents
    out2 = tmp_path / "run2"
    r = genbert("pretrain", "--dataset", str(parquet_docs), "--text-field", "body", "--output-dir", str(out2),
                *PRETRAIN_TINY, cwd=tmp_path, env={"HF_DATASETS_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((out2 / "mlm_eval.json").read_text())["heldout"] == record["heldout"]


def test_streaming_errors_are_one_line(parquet_docs, tmp_path):
    r = genbert("pretrain", "--dataset", str(parquet_docs), "--streaming", "--output-dir", str(tmp_path / "o"),
                *PRETRAIN_TINY, cwd=tmp_path, env={"HF_DATASETS_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"genbert pretrain: error: --text-field 'text': {parquet_docs} has no such column "
                               "(columns: body, n)")
    r = genbert("pretrain", "--dataset", str(parquet_docs), "--streaming", "--objective", "mlm+nsp",
                "--output-dir", str(tmp_path / "o"), *PRETRAIN_TINY, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("genbert pretrain: error: --streaming: --objective mlm+nsp")
