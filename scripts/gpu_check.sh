#!/usr/bin/env bash
# The prepared device check (issue 21): on a machine with a CUDA GPU and its own torch + Lightning,
# from the repository root:  bash scripts/gpu_check.sh
# Measures train-stage throughput vs plain PyTorch (fp32 / bf16+channels_last, with and without
# torch.compile), smoke-runs every training task with trainer=gpu and the classifier with
# trainer=ddp devices=1, and writes the gpu_check section of docs/BENCHMARKS.md.
# Outputs (the benchmarks file, the log, scratch) go under $OUT when it is set, else docs/ and logs/.
# Extra arguments go to python -m cnnlab.bench.gpu_check (e.g. --device cpu --tiny).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"   # no install needed; `pip install --no-deps -e .` works too
python - <<'PY' || { echo "gpu_check: missing a dependency; pip install --no-deps -e . and the packages in requirements/ the device lacks" >&2; exit 2; }
import hydra, lightning, omegaconf, torch, torchvision  # noqa: F401
PY
OUT_DIR="${OUT:-$PWD/logs}"   # log and scratch (logs/ is git-ignored)
mkdir -p "$OUT_DIR"
BENCH="docs/BENCHMARKS.md"
if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT/docs"
  cp docs/BENCHMARKS.md "$OUT/docs/BENCHMARKS.md"
  BENCH="$OUT/docs/BENCHMARKS.md"
fi
export MLFLOW_TRACKING_URI="sqlite:///$OUT_DIR/gpu_check_mlflow.db"
python -m cnnlab.bench.gpu_check --output "$BENCH" --work "$OUT_DIR/gpu_check_work" "$@" 2>&1 | tee "$OUT_DIR/gpu_check.log"
rm -rf "$OUT_DIR/gpu_check_work"
echo "gpu_check: section written to $BENCH"
