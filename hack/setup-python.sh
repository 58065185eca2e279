#!/usr/bin/env bash
# Creates .venv and installs kubetune with every extra (dev, and bench for the benchmarks) at the versions pinned in
# constraints.txt, then checks the set is consistent (pip only warns on conflicts).
# Re-runs only when pyproject.toml, setup.py or constraints.txt change.
set -euo pipefail
cd "$(dirname "$0")/.."
# The repo root holds a folder named operator/: keep Python from putting the working directory on sys.path.
export PYTHONSAFEPATH=1
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "kubetune needs Python 3.11+ (set PYTHON=...)" >&2; exit 1; }
stamp=.venv/.kubetune-installed
want=$(cat pyproject.toml setup.py constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade "pip>=24"
# pip's cache (~/.cache/pip) keeps the large torch download between runs.
.venv/bin/python -m pip install -c constraints.txt -e ".[dev,bench]"
.venv/bin/python -m pip check
echo "$want" > "$stamp"
