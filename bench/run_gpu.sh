#!/usr/bin/env bash
# The GPU benchmark pass: bench/epoch.py then bench/overhead.py, results under $OUT (or bench/results).
# Runs from the repo root without installing aees (PYTHONPATH=src); pulseopt comes from .whl/ if
# it is not installed (pip download --no-deps -d .whl pulseopt==0.3.0).
set -uo pipefail
OUT=${OUT:-bench/results}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"
python3 bench/epoch.py --out "$OUT/epoch-cuda.json" 2>&1 | tee "$OUT/epoch.log"
python3 bench/overhead.py --rounds 4 --steps 40 --out "$OUT/overhead-cuda.json" 2>&1 \
  | tee "$OUT/overhead.log"
