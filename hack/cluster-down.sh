#!/usr/bin/env bash
# Stop the local test control plane started by hack/cluster-up.sh: SIGTERM each
# component (kwok, scheduler, controller-manager, apiserver, etcd, in that
# order), SIGKILL after 15s, remove pid files, the kubeconfig and etcd data.
# Logs stay in .cluster/logs/. Only processes recorded in .cluster/run/*.pid
# that run a binary from .cluster/bin are signalled.
# Env: CLUSTER_DIR (default <repo>/.cluster), CLUSTER_KEEP_DATA=1 keeps .cluster/data.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_DIR="${CLUSTER_DIR:-$ROOT/.cluster}"
RUN="$CLUSTER_DIR/run"
BIN="$CLUSTER_DIR/bin"

log() { printf '[cluster-down] %s\n' "$*" >&2; }

# serialize with hack/cluster-up.sh (which calls us with the lock already held)
if [[ -z "${CLUSTER_LOCK_HELD:-}" && -d "$CLUSTER_DIR" ]]; then
  exec 8>"$CLUSTER_DIR/up.lock"
  flock 8
fi

ours() { # pid: is it alive and running one of our binaries?
  local pid=$1 exe
  kill -0 "$pid" 2>/dev/null || return 1
  exe="$(readlink -f "/proc/$pid/exe" 2>/dev/null || true)"
  [[ -z "$exe" ]] && return 0 # cannot tell (no /proc): trust the pid file
  [[ "$exe" == "$(readlink -f "$BIN")"/* ]]
}

stopped_any=0
for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
  pidfile="$RUN/$name.pid"
  [[ -f "$pidfile" ]] || continue
  pid="$(cat "$pidfile")"
  if [[ -n "$pid" ]] && ours "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name ($pid) did not stop after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    stopped_any=1
    log "stopped $name ($pid)"
  fi
  rm -f "$pidfile"
done

rm -f "$CLUSTER_DIR/kubeconfig" "$RUN/ports.env"
if [[ "${CLUSTER_KEEP_DATA:-0}" != 1 ]]; then
  rm -rf "$CLUSTER_DIR/data"
fi
((stopped_any)) || log "nothing was running"
exit 0
