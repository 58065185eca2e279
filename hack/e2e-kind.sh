#!/usr/bin/env bash
# End to end on a real (kind) cluster, for users with Docker: build and load the
# images, install the chart, start an in-cluster MLflow, run the quickstart on
# CPU and wait for it to succeed.
#
#   hack/e2e-kind.sh            create the cluster "kubetune-e2e", run, keep it for a look around
#   hack/e2e-kind.sh --delete   delete that cluster afterwards
#
# Needs: docker (a running engine), kind, kubectl, helm. It has not run in
# Kubetune's CI, which has no Docker engine; what it shares with the tested path
# is the same code: the chart (charts/kubetune), the values in hack/kind/values.yaml
# (rendered by tests/chart/test_render.py), the images and their build script
# hack/build-images.sh (built with buildah and run by tests/images), and
# examples/quickstart.yaml (created on the test control plane by tests/examples).
#
# Env: CLUSTER (default kubetune-e2e), NAMESPACE (runs; default kubetune-e2e),
#      TIMEOUT (seconds to wait for the run; default 1800).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${CLUSTER:-kubetune-e2e}"
NAMESPACE="${NAMESPACE:-kubetune-e2e}"
TIMEOUT="${TIMEOUT:-1800}"
RELEASE=kubetune
OPERATOR_NAMESPACE=kubetune-system
CONTEXT="kind-$CLUSTER"

log() { printf '[e2e-kind] %s\n' "$*" >&2; }
die() { printf '[e2e-kind] ERROR: %s\n' "$*" >&2; exit 1; }
kc() { kubectl --context "$CONTEXT" "$@"; }

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
docker info >/dev/null 2>&1 || die "no Docker engine is running"

# ---------------------------------------------------------------- cluster
if kind get clusters | grep -qx "$CLUSTER"; then
  log "reusing kind cluster $CLUSTER"
else
  log "creating kind cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --wait 120s
fi

# ---------------------------------------------------------------- images (tags match hack/kind/values.yaml)
# The same build as `make images` and the image tests (proxies, CA bundle, base image), with Docker.
log "building the operator and trainer images"
ENGINE=docker "$ROOT/hack/build-images.sh" --target operator -t kubetune/operator:e2e --target trainer -t kubetune/trainer:e2e >&2
kind load docker-image --name "$CLUSTER" kubetune/operator:e2e kubetune/trainer:e2e

# ---------------------------------------------------------------- MLflow, chart
log "starting MLflow in namespace mlflow"
kc apply -f "$ROOT/hack/kind/mlflow.yaml"
kc -n mlflow rollout status deployment/mlflow --timeout=300s

log "installing the chart (release $RELEASE in $OPERATOR_NAMESPACE)"
helm --kube-context "$CONTEXT" upgrade --install "$RELEASE" "$ROOT/charts/kubetune" \
  --namespace "$OPERATOR_NAMESPACE" --create-namespace \
  --values "$ROOT/hack/kind/values.yaml" --wait --timeout 5m

# ---------------------------------------------------------------- quickstart data on a claim
kc create namespace "$NAMESPACE" --dry-run=client -o yaml | kc apply -f -
kc -n "$NAMESPACE" apply -f "$ROOT/hack/kind/storage.yaml"
kc -n "$NAMESPACE" wait --for=condition=Ready pod/kubetune-quickstart-loader --timeout=300s
log "copying the quickstart's tiny model and data to the claim kubetune-quickstart"
kc -n "$NAMESPACE" cp "$ROOT/examples/models" kubetune-quickstart-loader:/quickstart/models
kc -n "$NAMESPACE" cp "$ROOT/examples/data" kubetune-quickstart-loader:/quickstart/data
kc -n "$NAMESPACE" delete pod kubetune-quickstart-loader --wait=true

# ---------------------------------------------------------------- the quickstart run
# The same manifest as `kubetune run examples/quickstart.yaml --local`, with its
# relative paths pointing at the claim, registering into the namespace's own
# schema (the chart's default access rule: kubetune-e2e -> main.kubetune_e2e).
log "applying examples/quickstart.yaml"
sed -e 's#: \./models/#: pvc://kubetune-quickstart/models/#' \
    -e 's#: \./data/#: pvc://kubetune-quickstart/data/#' \
    -e "s#registerTo: main\.default\.#registerTo: main.${NAMESPACE//-/_}.#" \
    "$ROOT/examples/quickstart.yaml" | kc -n "$NAMESPACE" apply -f -

deadline=$((SECONDS + TIMEOUT))
phase=""
while ((SECONDS < deadline)); do
  phase="$(kc -n "$NAMESPACE" get ftr quickstart -o jsonpath='{.status.phase}' 2>/dev/null || true)"
  case "$phase" in
    Succeeded) break ;;
    Failed|Cancelled)
      kc -n "$NAMESPACE" get ftr quickstart -o yaml >&2
      die "the quickstart run ended $phase" ;;
  esac
  sleep 10
done
kc -n "$NAMESPACE" get ftr quickstart -o wide
[[ "$phase" == Succeeded ]] || die "the quickstart run did not succeed within ${TIMEOUT}s (phase: ${phase:-none})"
log "the quickstart succeeded: $(kc -n "$NAMESPACE" get ftr quickstart -o jsonpath='{.status.registeredModel.name} version {.status.registeredModel.version}')"

if [[ "${1:-}" == "--delete" ]]; then
  kind delete cluster --name "$CLUSTER"
fi
