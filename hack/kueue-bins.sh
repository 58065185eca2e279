#!/usr/bin/env bash
# Build (and cache) Kueue's controller manager for the `kueue` tests into $CLUSTER_DIR/bin/kueue,
# and copy its CRDs (config/components/crd/bases of the same module) to $CLUSTER_DIR/kueue-crds/.
# Built from the Go module proxy at KUEUE_VERSION (hack/versions.env), like hack/cluster-bins.sh builds
# the control plane; a stamp file skips the build when nothing changed.
#
#   hack/kueue-bins.sh           build if needed
#   hack/kueue-bins.sh --force   rebuild even if the stamp matches
#
# The tests run this binary out of cluster against the test control plane, webhooks off
# (tests/helpers/kueue_controller.py explains why that is enough for Kubetune's Jobs).
# Env: GO (go binary; default: go on PATH, else /usr/local/go/bin/go), CLUSTER_DIR (default <repo>/.cluster).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=versions.env
source "$ROOT/hack/versions.env"
CLUSTER_DIR="${CLUSTER_DIR:-$ROOT/.cluster}"
BIN="$CLUSTER_DIR/bin"
CRDS="$CLUSTER_DIR/kueue-crds"

# shellcheck source=go-env.sh
source "$ROOT/hack/go-env.sh"

log() { printf '[kueue-bins] %s\n' "$*" >&2; }
die() { printf '[kueue-bins] ERROR: %s\n' "$*" >&2; exit 1; }

build() {
  local force="${1:-0}" stamp="$BIN/.kueue-stamp" want="KUEUE_VERSION=$KUEUE_VERSION"
  mkdir -p "$BIN"
  # one build at a time (parallel test runs); the second one then finds the stamp
  exec 8>"$BIN/.kueue-lock"
  flock 8
  if [[ "$force" != 1 && -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$BIN/kueue" && -d "$CRDS" ]]; then
    log "up to date in $BIN (Kueue $KUEUE_VERSION)"
    return 0
  fi
  [[ -n "$GO" ]] || die "Go is not installed; install it or point GO= at it (the kueue tests need it)"
  rm -f "$stamp"
  local t0=$SECONDS dir
  log "building kueue $KUEUE_VERSION ..."
  (cd "$BIN" && GOBIN="$BIN" "$GO" install -ldflags="-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION" \
    "sigs.k8s.io/kueue/cmd/kueue@$KUEUE_VERSION")
  dir="$(cd "$BIN" && "$GO" mod download -json "sigs.k8s.io/kueue@$KUEUE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$dir/config/components/crd/bases" ]] || die "no CRDs in the module sigs.k8s.io/kueue@$KUEUE_VERSION"
  rm -rf "$CRDS" && mkdir -p "$CRDS"
  cp "$dir"/config/components/crd/bases/*.yaml "$CRDS/"
  chmod u+w "$CRDS"/*.yaml
  echo "$want" >"$stamp"
  log "done in $((SECONDS - t0))s: $BIN/kueue, CRDs in $CRDS"
}

case "${1:-}" in
  --force) build 1 ;;
  "") build 0 ;;
  *) die "unknown argument: $1" ;;
esac
