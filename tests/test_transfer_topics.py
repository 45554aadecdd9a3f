"""scripts/transfer_topics.py (genbert.recipes.transfer) on a tiny checkpoint: two held-out BBC topics,
a few steps each; the report holds what exists; a rerun resumes without retraining."""
import json
import subprocess
import sys
from pathlib import Path

from test_compare_schemes import _checkpoint

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "transfer_topics.py"


def _run(*args, cwd):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"}, timeout=600)


def test_transfer_topics_resume_and_report(tmp_path):
    ckpt = _checkpoint(tmp_path / "bert")
    out, work = tmp_path / "docs", tmp_path / "work"
    args = ["--init", ckpt, "--max-steps", 2, "--batch-size", 4, "--max-source-length", 16, "--max-target-length", 6,
            "--limit-eval", 4, "--mlm-warmup-steps", 2, "--output-dir", out, "--work-dir", work, "--no-progress",
            "--device", "cpu", "--resamples", 50]
    p = _run(*args, "--topics", "tech", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    result = out / "transfer" / "tech" / "summarization-prefix-pseudo-mask-seed0.json"
    rec = json.loads(result.read_text())
    assert rec["budget"]["dataset"] == "bbc-headlines-heldout-tech" and rec["num_test_examples"] == 4
    assert len(rec["test"]["predictions"]) == 4 and "repeated_content_words" in rec["test"]
    mtime = result.stat().st_mtime_ns
    p = _run(*args, "--topics", "sports", "tech", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "done before" in p.stdout and result.stat().st_mtime_ns == mtime  # tech is not trained again
    report = json.loads((out / "transfer.json").read_text())
    assert [r["topic"] for r in report["rows"]] == ["sports", "tech"]
    for r in report["rows"]:
        lo, hi = r["difference_ci"]
        assert lo <= r["difference"] <= hi and r["test_examples"] == 4
        assert abs(r["rougeL"] - r["lead10_rougeL"] - r["difference"]) < 1e-9
    assert report["pooled"]["test_examples"] == 8 and report["meets_bar"] is False
    md = (out / "transfer.md").read_text()
    assert "| sports | 4 |" in md and "| tech | 4 |" in md and "all topics pooled" in md
    assert "not run yet: business, entertainment, politics" in md
    assert (out / "transfer.png").stat().st_size > 1000
    assert "seen" not in report
    # --seen-model: the same articles scored by a model that trained on their topic (any model here)
    seen_model = work / "tech" / "prefix-pseudo-mask-seed0" / "final"
    p = _run(*args, "--topics", "sports", "tech", "--seen-model", seen_model, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    seen = json.loads((out / "transfer.json").read_text())["seen"]
    assert seen["model"] == str(seen_model)
    # of the first 4 articles of each topic, those in bbc-headlines validation/test: sports 2, tech 1
    assert [(r["topic"], r["articles"]) for r in seen["rows"]] == [("sports", 2), ("tech", 1)]
    tech = seen["rows"][1]  # one article: tech's own run scores it as it did in the report above
    rec = json.loads(result.read_text())
    assert tech["unseen_rougeL"] == rec["test"]["per_example"][2]
    assert tech["lead10_rougeL"] == rec["baseline_per_example"]["test"][2]
    d = tech["seen_minus_unseen"]
    assert abs(d["difference"] - (tech["seen_rougeL"] - tech["unseen_rougeL"])) < 1e-9
    assert "## The same articles, with and without their topic in training" in (out / "transfer.md").read_text()
    p = _run(*args, "--topics", "tech", "--seen-model", tmp_path / "nothing", cwd=tmp_path)
    assert p.returncode == 2 and "--seen-model" in p.stderr and "Traceback" not in p.stderr
    # --decoding stored: no search, the model's stored decoding; never mixed with searched results
    p = _run(*args, "--topics", "tech", "--decoding", "stored", cwd=tmp_path)
    assert p.returncode == 2 and str(result) in p.stderr and "--decoding" in p.stderr and "Traceback" not in p.stderr
    p = _run(*args, "--topics", "tech", "--decoding", "stored", "--results-dir", tmp_path / "stored", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "done before" not in p.stdout and "reusing the finished training run" in p.stdout
    rec = json.loads((tmp_path / "stored" / "tech" / result.name).read_text())
    assert rec["decoding_choice"] == "stored" and len(rec["search"]) == 1
    from genbert.data.datasets import load_named
    from genbert.textgen import TextGenerator
    gen = TextGenerator.from_pretrained(seen_model)
    assert rec["decoding"]["num_beams"] == gen.settings["num_beams"]
    sources = [r["source"] for r in load_named("bbc-headlines-heldout-tech", "test")[:4]]
    assert rec["test"]["predictions"] == gen.generate(sources)  # exactly what the model writes by default
    report = json.loads((out / "transfer.json").read_text())
    assert report["decoding_choice"] == "stored" and [r["topic"] for r in report["rows"]] == ["tech"]
    assert "the decoding the trained model stores" in (out / "transfer.md").read_text()
    # bad input: one line, status 2
    p = _run("--topics", "weather", cwd=tmp_path)
    assert p.returncode == 2 and "--topics" in p.stderr and "Traceback" not in p.stderr
