#!/usr/bin/env bash
# Installs Azurite, Azure Storage's emulator (an npm package), for the abfs:// tests into .cache/azurite/ at the
# versions locked in hack/azurite/package-lock.json, and prints the path of its azurite-blob command.
# Azurite 3.35.0 is the newest release whose package accepts Node 20. Re-installs only when the lock changes.
# tests/helpers/object_stores.py runs this on first use, so `make test` on a fresh clone needs nothing more.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/.cache/azurite"
command -v npm >/dev/null || { echo "npm is not installed: Azurite (the abfs:// tests' emulator) needs Node.js 20+ and npm" >&2; exit 3; }
want=$(cat "$ROOT/hack/azurite/package.json" "$ROOT/hack/azurite/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ ! -f "$DIR/.installed" ] || [ "$(cat "$DIR/.installed")" != "$want" ]; then
  rm -rf "$DIR"
  mkdir -p "$DIR"
  cp "$ROOT/hack/azurite/package.json" "$ROOT/hack/azurite/package-lock.json" "$DIR/"
  npm ci --prefix "$DIR" --no-audit --no-fund --loglevel=error >&2
  echo "$want" > "$DIR/.installed"
fi
echo "$DIR/node_modules/.bin/azurite-blob"
