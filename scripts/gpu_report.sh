#!/usr/bin/env bash
# One run on a lent CUDA GPU fills genbert's GPU tables (docs/benchmarks/*_cuda.md), in < 8 minutes:
#   1. the test suite's CUDA tests (pytest -m cuda: float32 parity with transformers on CUDA,
#      cached == uncached on CUDA, bf16 training smoke steps),
#   2. decoding against transformers on CUDA (greedy and beam 4; float32 with identical tokens,
#      then bf16)            -> generate_cuda.md, generate_bf16_cuda.md
#   3. attention under the prefix, pseudo-mask, diffusion and causal layouts: SDPA with boolean
#      masks vs FlexAttention block masks vs SDPA's causal flag  -> attention_cuda.md
#   4. the MLM and seq2seq training steps in bf16 with model FLOPs utilisation (MFU), at
#      all-MiniLM-L6 and bert-base sizes
#                            -> mlm_step_bf16_cuda.md, mlm_step_bert-base_bf16_cuda.md,
#                               seq2seq_step_bf16_cuda.md, seq2seq_step_bert-base_bf16_cuda.md
#   and a summary of what ran, failed or was skipped -> gpu_report_cuda.md (logs beside it).
#
# Needs torch (and transformers for the comparisons; pytest for the tests), no network and nothing
# of genbert installed: it runs from this checkout via PYTHONPATH with random weights. Whatever
# needs an absent package is skipped with a line saying so. Without a GPU it says so and exits 0.
#
#   scripts/gpu_report.sh [OUTPUT_DIR]          (default docs/benchmarks)
#   GPU_REPORT_SMOKE=1 scripts/gpu_report.sh OUT   the same steps on CPU at a tiny size (its test)
# Env: PYTHON (default python3), GPU_REPORT_BUDGET_S (default 450: later steps are skipped once spent).
set -u
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 1
OUT="${1:-docs/benchmarks}"
PY="${PYTHON:-python3}"
BUDGET="${GPU_REPORT_BUDGET_S:-450}"
SMOKE="${GPU_REPORT_SMOKE:-0}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
       TOKENIZERS_PARALLELISM=false TRANSFORMERS_VERBOSITY=error PYTHONUNBUFFERED=1
START=$(date +%s)
say() { echo "gpu_report: $*"; }
have() { "$PY" -c "import $1" >/dev/null 2>&1; }

if ! have torch; then
  say "skipped everything: torch is not installed"
  exit 0
fi
if [ "$SMOKE" = "1" ]; then
  DEV=cpu; TAG=cpu; SIZES="tiny"
  say "smoke run: every step on CPU at a tiny size (tests the script; the figures mean nothing)"
else
  if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    say "no GPU present (torch.cuda.is_available() is False): nothing to measure, exiting 0"
    exit 0
  fi
  DEV=cuda; TAG=cuda; SIZES="minilm bert-base"
fi
mkdir -p "$OUT/logs" || exit 1
SUMMARY="$OUT/gpu_report_$TAG.md"
ENV_LINE=$("$PY" -c "
import torch
dev = torch.cuda.get_device_name() if '$DEV' == 'cuda' else 'CPU'
print(f'{dev}; torch {torch.__version__}, CUDA {torch.version.cuda}', end='')
try:
    import transformers; print(f', transformers {transformers.__version__}', end='')
except ImportError:
    print(', no transformers', end='')
")
{
  echo "# GPU report ($TAG)"
  echo
  echo "Command: \`scripts/gpu_report.sh\`. Machine: $ENV_LINE. Started $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo "Random weights at all-MiniLM-L6 and bert-base sizes; each step's table is linked below, its log in logs/."
  echo
  echo "| step | status | seconds | output |"
  echo "|---|---|---|---|"
} > "$SUMMARY"

# run NAME LIMIT_S OUTPUT NEEDS... -- COMMAND...: run one step with a time limit, record its status
run() {
  local name="$1" limit="$2" output="$3"; shift 3
  local missing=""
  while [ "$1" != "--" ]; do have "$1" || missing="$missing $1"; shift; done
  shift
  local log="$OUT/logs/$(echo "$name" | tr ' /' '__').log"
  local elapsed=$(( $(date +%s) - START ))
  if [ -n "$missing" ]; then
    say "$name: skipped, needs the absent package(s):$missing"
    echo "| $name | skipped: needs$missing | – | – |" >> "$SUMMARY"; return
  fi
  if [ "$elapsed" -ge "$BUDGET" ]; then
    say "$name: skipped, the time budget (${BUDGET}s) is spent"
    echo "| $name | skipped: time budget spent | – | – |" >> "$SUMMARY"; return
  fi
  local left=$(( BUDGET - elapsed + 30 ))
  [ "$limit" -gt "$left" ] && limit="$left"
  say "$name (at most ${limit}s) ..."
  local t0=$(date +%s) rc=0
  timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1 || rc=$?
  local dt=$(( $(date +%s) - t0 )) status="ok"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then status="timed out after ${limit}s"
  elif [ "$rc" -ne 0 ]; then status="failed (exit $rc)"; fi
  say "$name: $status in ${dt}s ($(grep -v '^[[:space:]]*$' "$log" | tail -n 1 | cut -c1-150))"
  echo "| $name | $status | $dt | $output |" >> "$SUMMARY"
}

if [ "$SMOKE" = "1" ]; then
  GEN_ARGS="--size tiny --batch 2 --source-length 24 --new-tokens 4 --repeats 1 --threads 1 --no-int8 --no-ctranslate2"
  STEP_ARGS="--threads 1 --steps 1"
  MLM_SHAPE="--batch 2 --seq 16 --no-memory"; S2S_SHAPE="--batch 2 --source-length 12 --target-length 6"
  GEN_SFX="_tiny"; ATT_ARGS="--batch 2 --length 32 --heads 2 --head-dim 8 --repeats 1"
else
  GEN_SFX=""; ATT_ARGS=""
  GEN_ARGS="--repeats 3"
  STEP_ARGS="--steps 10"
  MLM_SHAPE=""; S2S_SHAPE=""
fi

# 1. CUDA tests (on CPU they all skip: the smoke run checks that they collect and skip cleanly)
run "CUDA tests" 180 "logs/CUDA_tests.log" pytest transformers -- \
  "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/test_cuda.py tests/test_model.py

# 2. decoding against transformers
run "decoding float32" 150 "generate${GEN_SFX}_$TAG.md" transformers -- \
  "$PY" scripts/bench_generate.py --device "$DEV" --dtype float32 $GEN_ARGS --output-dir "$OUT"
run "decoding bf16" 120 "generate${GEN_SFX}_bf16_$TAG.md" transformers -- \
  "$PY" scripts/bench_generate.py --device "$DEV" --dtype bfloat16 $GEN_ARGS --no-prefix --output-dir "$OUT"

# 3. attention under the prefix, pseudo-mask, diffusion and causal layouts: boolean SDPA vs FlexAttention block masks
run "attention layouts" 120 "attention_$TAG.md" -- \
  "$PY" scripts/bench_attention.py --device "$DEV" $ATT_ARGS --output-dir "$OUT"

# 4. training steps in bf16, with MFU
for size in $SIZES; do
  shape_mlm="$MLM_SHAPE"; shape_s2s="$S2S_SHAPE"; sfx=""
  if [ "$size" = "bert-base" ]; then shape_mlm="--batch 32 --seq 512"; shape_s2s="--batch 64 --source-length 256 --target-length 64"; fi
  [ "$size" != "minilm" ] && sfx="_$size"
  run "MLM step bf16 $size" 90 "mlm_step${sfx}_bf16_$TAG.md" transformers -- \
    "$PY" scripts/bench_mlm_step.py --device "$DEV" --dtype bfloat16 --size "$size" $shape_mlm $STEP_ARGS \
    --output-dir "$OUT"
  run "seq2seq step bf16 $size" 90 "seq2seq_step${sfx}_bf16_$TAG.md" transformers -- \
    "$PY" scripts/bench_seq2seq_step.py --device "$DEV" --dtype bfloat16 --size "$size" --fused $shape_s2s $STEP_ARGS \
    --output-dir "$OUT"
done

TOTAL=$(( $(date +%s) - START ))
{
  echo
  echo "Total: ${TOTAL}s. Goals: decoding 4x transformers (generate_*), bf16 training at 40%+ MFU at bert-base size (*_bert-base_bf16_*)."
  echo
  "$PY" - "$OUT" "$TAG" <<'PYEOF' 2>/dev/null || echo "(no headline figures: a step's JSON is missing)"
import glob, json, os, sys
out, tag = sys.argv[1], sys.argv[2]
lines = ["## Headline figures", ""]
for path in sorted(glob.glob(os.path.join(out, f"generate*_{tag}.json"))):
    r = json.load(open(path))
    for run in r["runs"]:
        if "speedup" in run:
            lines.append(f"- {os.path.basename(path)}: {run['model']} {run['strategy']}: {run['speedup']:.2f}x "
                         f"transformers (identical tokens: {run.get('identical_tokens', '-')})")
for path in sorted(glob.glob(os.path.join(out, f"*step*_{tag}.json"))):
    r = json.load(open(path))
    for who, u in r["utilisation"].items():
        mfu = f"MFU {100 * u['mfu']:.1f}%" if u.get("mfu") else "MFU: no data-sheet peak"
        lines.append(f"- {os.path.basename(path)}: {who}: {r['median_step_s'][who]:.4f} s/step, "
                     f"{u['tflops']:.1f} TFLOP/s, {mfu}")
print("\n".join(lines))
PYEOF
} >> "$SUMMARY"
say "done in ${TOTAL}s; summary in $SUMMARY"
exit 0
