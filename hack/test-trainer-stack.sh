#!/usr/bin/env bash
# The trainer tests that depend on the torch/transformers stack (tokenization with real chat templates,
# packing, every model family, FSDP training, checkpoints, the GPU paths), runnable on any stack: they need
# no MLflow server, `datasets` or `deltalake`. Used for the lower end of the supported range:
#   make test-transformers-floor     transformers and huggingface_hub at the floor, over the pinned set
#   bench/gpu-check.sh               a GPU machine's preinstalled torch and transformers
# Extra arguments go to pytest (e.g. -m "not gpu").
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export PYTHONSAFEPATH=1
exec "$PYTHON" -m pytest tests/trainer -q -p no:cacheprovider -m "not slow and not mlflow" \
  --ignore=tests/trainer/test_registry.py --ignore=tests/trainer/test_local_mode.py \
  --ignore=tests/trainer/test_data_sources.py --ignore=tests/trainer/test_data_validate_cli.py \
  --ignore=tests/trainer/test_data_examples.py --ignore=tests/trainer/test_data_tiny_models.py \
  "$@"
