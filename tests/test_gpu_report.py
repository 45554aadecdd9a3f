"""scripts/gpu_report.sh, prepared on CPU: without a GPU it says so and exits 0; its smoke mode
runs every step on CPU at a tiny size; a step whose package is absent is skipped with a line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_report.sh"
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="a bash script")


def _run(out: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), str(out)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHON": sys.executable, **env})


def test_without_a_gpu_it_says_so_and_exits_0(tmp_path):
    r = _run(tmp_path / "out", CUDA_VISIBLE_DEVICES="")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("gpu_report: no GPU present (torch.cuda.is_available() is False): "
                                "nothing to measure, exiting 0")
    assert not (tmp_path / "out").exists()


def test_smoke_run_on_cpu_writes_every_table(tmp_path):
    out = tmp_path / "out"
    r = _run(out, GPU_REPORT_SMOKE="1")
    assert r.returncode == 0, r.stdout + r.stderr
    summary = (out / "gpu_report_cpu.md").read_text()
    steps = ["CUDA tests", "decoding float32", "decoding bf16", "attention layouts", "MLM step bf16 tiny",
             "seq2seq step bf16 tiny"]
    for step in steps:
        assert f"| {step} | ok |" in summary, summary
    for name in ("generate_tiny_cpu", "generate_tiny_bf16_cpu", "attention_cpu", "mlm_step_tiny_bf16_cpu",
                 "seq2seq_step_tiny_bf16_cpu"):
        assert (out / f"{name}.md").is_file() and (out / f"{name}.json").is_file()
        assert f"{name}.md" in summary or name.startswith("generate")
    assert "## Headline figures" in summary and "MFU" in summary
    assert "skipped (" in (out / "logs" / "CUDA_tests.log").read_text() or "skipped" in r.stdout


def test_a_missing_package_is_skipped_with_a_line(tmp_path):
    shadow = tmp_path / "shadow" / "transformers"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('transformers hidden for this test')\n")
    out = tmp_path / "out"
    r = _run(out, GPU_REPORT_SMOKE="1", GPU_REPORT_BUDGET_S="5",
             PYTHONPATH=str(tmp_path / "shadow") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    assert r.returncode == 0, r.stderr
    assert "decoding float32: skipped, needs the absent package(s): transformers" in r.stdout
    assert "| decoding float32 | skipped: needs transformers |" in (out / "gpu_report_cpu.md").read_text()
