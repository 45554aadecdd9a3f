"""Every ```python block of README.md runs as written: each on its own (fresh names), in order, in an
empty working directory, offline, with this checkout's genbert."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# each block is compiled with README.md's own line numbers, so a traceback points into the README
RUNNER = r"""
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
for i, m in enumerate(re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M), 1):
    line = text.count("\n", 0, m.start(1))
    exec(compile("\n" * line + m.group(1), sys.argv[1], "exec"), {"__name__": "__main__"})
    print(f"block {i} ran", flush=True)
"""


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)


def test_readme_has_python_examples():
    blocks = python_blocks()
    assert len(blocks) >= 2
    section = README.read_text(encoding="utf-8").split("## Use it from Python", 1)[1].split("\n## ", 1)[0]
    assert "```python" in section
    # text to text before tensors: the first example goes through the tokenizer
    assert "TextGenerator" in blocks[0] and "generate(" in blocks[0]


def test_readme_python_blocks_run(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run([sys.executable, "-c", RUNNER, str(README)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    ran = [line for line in r.stdout.splitlines() if re.fullmatch(r"block \d+ ran", line)]
    assert len(ran) == len(python_blocks())
    # what the examples save is what they say they save
    assert (tmp_path / "my-model" / "config.json").is_file()
    assert (tmp_path / "my-model-hf" / "config.json").is_file()
