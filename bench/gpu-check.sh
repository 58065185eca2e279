#!/usr/bin/env bash
# The trainer's GPU checks, on a GPU machine that has its own preinstalled torch and transformers and
# reaches no package index (the stack the trainer must run on unchanged). Carry the few pure-Python
# wheels Kubetune needs beyond that stack in .whl/ (pydantic and its dependencies; see bench/RESULTS.md).
#
#   bench/gpu-check.sh            # OUT=folder for the logs (default /tmp/gpu-check)
#
# 1. versions and the GPU;
# 2. hack/test-trainer-stack.sh on this stack's torch/transformers (the lower end of the supported
#    range), CPU paths (the GPU hidden: two ranks cannot share one GPU);
# 3. the GPU tests (-m gpu): NCCL, bf16, activation checkpointing, checkpoint and export on the GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
site=/tmp/kubetune-site
PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/*.whl || exit 1
"$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$site" . || exit 1
export PYTHONPATH=$site PYTHONSAFEPATH=1 PYTHONUNBUFFERED=1
{
  "$PYTHON" -c 'import sys, torch, transformers; print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")'
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
} 2>&1 | tee "$OUT/versions.txt"
status=0
CUDA_VISIBLE_DEVICES= PYTHON=$PYTHON hack/test-trainer-stack.sh -m "not slow and not mlflow and not gpu" 2>&1 \
  | tee "$OUT/trainer-tests.txt" || status=1
"$PYTHON" -m pytest tests/trainer -q -p no:cacheprovider -m gpu -rA 2>&1 | tee "$OUT/gpu-tests.txt" || status=1
exit $status
