# Sourced by the scripts that build test-world binaries from Go modules (cluster-bins.sh, kueue-bins.sh):
# finds Go (GO=, else go on PATH, else /usr/local/go/bin/go; empty when none) and sets the build environment
# (no toolchain download, reproducible paths, static binaries).
if [[ -z "${GO:-}" ]]; then
  if command -v go >/dev/null 2>&1; then GO="$(command -v go)"
  elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
  else GO=""; fi
fi
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export GOFLAGS="${GOFLAGS:--trimpath}"
export CGO_ENABLED="${CGO_ENABLED:-0}"
