#!/usr/bin/env bash
# Re-resolves the dependency ranges of pyproject.toml into constraints.txt in a scratch venv.
set -euo pipefail
cd "$(dirname "$0")/.."
# The repo root holds a folder named operator/: keep Python from putting the working directory on sys.path.
export PYTHONSAFEPATH=1
tmp=$(mktemp -d)
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q -e ".[dev,bench]" "$@"
"$tmp/venv/bin/pip" check
{ sed -n '1,2p' constraints.txt; "$tmp/venv/bin/pip" freeze --exclude-editable; } > "$tmp/constraints.txt"
mv "$tmp/constraints.txt" constraints.txt
rm -rf "$tmp"
