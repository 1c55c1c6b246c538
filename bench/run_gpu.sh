#!/usr/bin/env bash
# The GPU benchmark pass, results under $OUT (or bench/results); at most ~8 minutes (the steps'
# time limits add up to 460 s):
#   gpu.txt                 GPU model, driver, memory, torch version, step start times
#   checks.log              bench/gpu_checks.py: fp16 + GradScaler through AEES, fast mode
#                           (inductor) without recompiles when the arm changes
#   epoch.log / epoch-cuda.json         bench/epoch.py, thesis and fast protocol (3 rounds)
#   overhead.log / overhead-cuda.json   bench/overhead.py as before
#   sweep.log / sweep-cuda.json         bench/sweep_throughput.py, K = 1, 2, 4 runs per GPU
# Each step has its own time limit and writes what it measured so far (epoch and sweep JSONs are
# rewritten after every round / K), so one slow step cannot eat the others' time.
# Runs from the repo root without installing aees (PYTHONPATH=src); pulseopt comes from .whl/ if
# it is not installed (pip download --no-deps -d .whl pulseopt==0.3.0).
# MPS=1 starts a CUDA MPS daemon for the sweep step (and stops it after); default: whatever runs.
set -uo pipefail
OUT=${OUT:-bench/results}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TQDM_DISABLE=1
T0=$(date +%s)
stamp() { echo "[run_gpu] $1 at +$(( $(date +%s) - T0 )) s" | tee -a "$OUT/gpu.txt"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" \
  | tee -a "$OUT/gpu.txt"

stamp "checks"
timeout 80 python3 bench/gpu_checks.py >"$OUT/checks.log" 2>&1
cat "$OUT/checks.log"

stamp "epoch"
timeout 190 python3 bench/epoch.py --repeats 3 --epochs 3 --n-train 20000 --n-test 4000 \
  --out "$OUT/epoch-cuda.json" 2>&1 | grep -v '^\s*$' | tee "$OUT/epoch.log"

stamp "overhead"
timeout 90 python3 bench/overhead.py --rounds 4 --steps 40 --out "$OUT/overhead-cuda.json" 2>&1 \
  | tee "$OUT/overhead.log"

stamp "sweep"
started_mps=0
if [ "${MPS:-0}" = 1 ] && command -v nvidia-cuda-mps-control >/dev/null; then
  nvidia-cuda-mps-control -d && started_mps=1
fi
timeout 100 python3 bench/sweep_throughput.py --runs-per-gpu 1,2,4 --waves 1 \
  --out "$OUT/sweep-cuda.json" 2>&1 | tee "$OUT/sweep.log"
if [ "$started_mps" = 1 ]; then echo quit | nvidia-cuda-mps-control; fi
stamp "done"
