#!/usr/bin/env bash
# Start Kubetune's local test control plane (no containers, no root):
#   etcd, kube-apiserver (client-cert auth, RBAC, service-account issuer),
#   kube-controller-manager, kube-scheduler (all from .cluster/bin/kubebin)
#   and kwok simulating the node pools in hack/kwok/nodes.yaml with the pod
#   lifecycle in hack/kwok/stages.yaml.
# Everything listens on 127.0.0.1 on free ports. When ready, the admin
# kubeconfig is written to .cluster/kubeconfig.
#
# Layout: .cluster/bin (binaries), .cluster/pki (CA, certs, SA keys),
#         .cluster/run (pid files, ports.env, component kubeconfigs),
#         .cluster/logs (one log per component), .cluster/data (etcd, wiped on up).
#
# Idempotent: if the cluster is already up and healthy it only prints the
# kubeconfig path. Env: CLUSTER_DIR (default <repo>/.cluster),
# CLUSTER_SKIP_BUILD=1 (do not run hack/cluster-bins.sh), KUBECTL,
# CLUSTER_UP_TIMEOUT (seconds per wait, default 120).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_DIR="${CLUSTER_DIR:-$ROOT/.cluster}"
BIN="$CLUSTER_DIR/bin"
RUN="$CLUSTER_DIR/run"
LOGS="$CLUSTER_DIR/logs"
PKI="$CLUSTER_DIR/pki"
DATA="$CLUSTER_DIR/data"
KUBECONFIG_OUT="$CLUSTER_DIR/kubeconfig"
TIMEOUT="${CLUSTER_UP_TIMEOUT:-120}"
SA_ISSUER="https://kubernetes.default.svc.cluster.local"
SERVICE_CIDR="10.96.0.0/16"
SERVICE_IP="10.96.0.1"
POD_CIDR="10.244.0.0/16"

exec 9>&2 # log/die always reach the caller's stderr, even inside redirected waits
log() { printf '[cluster-up] %s\n' "$*" >&9; }
die() {
  printf '[cluster-up] ERROR: %s\n' "$*" >&9
  for f in "$LOGS"/*.log; do
    [[ -f "$f" ]] || continue
    printf -- '----- last lines of %s -----\n' "$f" >&9
    tail -n 15 "$f" >&9 || true
  done
  "$ROOT/hack/cluster-down.sh" >&9 2>&9 || true
  exit 1
}

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# One cluster-up/cluster-down at a time per CLUSTER_DIR (fd 8; the started
# components do not inherit it).
mkdir -p "$CLUSTER_DIR"
if [[ -z "${CLUSTER_LOCK_HELD:-}" ]]; then
  exec 8>"$CLUSTER_DIR/up.lock"
  flock 8
  export CLUSTER_LOCK_HELD=1
fi

# ---------------------------------------------------------------- already up?
if [[ -f "$KUBECONFIG_OUT" && -f "$RUN/ports.env" ]] && pid_alive "$RUN/kube-apiserver.pid"; then
  # shellcheck source=/dev/null
  source "$RUN/ports.env"
  if curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
      "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1; then
    log "already up: KUBECONFIG=$KUBECONFIG_OUT"
    echo "$KUBECONFIG_OUT"
    exit 0
  fi
fi
# stale pieces of an earlier run
"$ROOT/hack/cluster-down.sh" >/dev/null 2>&1 || true

# ---------------------------------------------------------------- binaries
if [[ "${CLUSTER_SKIP_BUILD:-0}" != 1 ]]; then
  CLUSTER_DIR="$CLUSTER_DIR" "$ROOT/hack/cluster-bins.sh"
fi
for b in kubebin kwok; do
  [[ -x "$BIN/$b" ]] || die "missing $BIN/$b (run hack/cluster-bins.sh)"
done
KUBECTL="${KUBECTL:-}"
if [[ -z "$KUBECTL" ]]; then
  if [[ -x "$BIN/kubectl" ]]; then KUBECTL="$BIN/kubectl"
  elif command -v kubectl >/dev/null 2>&1; then KUBECTL="$(command -v kubectl)"
  else die "kubectl not found (neither $BIN/kubectl nor on PATH)"; fi
fi
command -v openssl >/dev/null 2>&1 || die "openssl is required to make the cluster's certificates"
command -v curl >/dev/null 2>&1 || die "curl is required"

mkdir -p "$RUN" "$LOGS" "$PKI"
rm -rf "$DATA" "$KUBECONFIG_OUT"
mkdir -p "$DATA"
rm -f "$LOGS"/*.log

# ---------------------------------------------------------------- ports
declare -A TAKEN=()
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 30000))
    [[ -n "${TAKEN[$p]:-}" ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      TAKEN[$p]=1
      echo "$p"
      return 0
    fi
  done
  die "no free port found"
}
ETCD_PORT=$(free_port); ETCD_PEER_PORT=$(free_port); API_PORT=$(free_port)
KCM_PORT=$(free_port); SCHED_PORT=$(free_port); KWOK_PORT=$(free_port)
cat >"$RUN/ports.env" <<EOF
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
API_PORT=$API_PORT
KCM_PORT=$KCM_PORT
SCHED_PORT=$SCHED_PORT
KWOK_PORT=$KWOK_PORT
EOF

# ---------------------------------------------------------------- PKI (kept between runs)
mkcert() { # name CN O [extra SAN config]
  local name=$1 cn=$2 org=$3 san=${4:-} ext="$PKI/$1.ext"
  [[ -f "$PKI/$name.crt" && -f "$PKI/$name.key" ]] && return 0
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [[ -n "$san" ]]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$san"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$ext"
  local subj="/CN=$cn"
  [[ -n "$org" ]] && subj="/O=$org/CN=$cn"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -subj "$subj" \
    -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}
if [[ ! -f "$PKI/ca.crt" || ! -f "$PKI/ca.key" ]]; then
  log "creating PKI in $PKI"
  rm -f "$PKI"/*
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -days 3650 -sha256 \
    -subj "/CN=kubetune-test-ca" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" -out "$PKI/ca.crt" 2>/dev/null
fi
mkcert kube-apiserver kube-apiserver "" \
  "IP:127.0.0.1,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
mkcert loopback-serving localhost "" "IP:127.0.0.1,DNS:localhost"
mkcert front-proxy-client front-proxy-client ""
mkcert admin kubetune-admin system:masters
mkcert kube-controller-manager system:kube-controller-manager ""
mkcert kube-scheduler system:kube-scheduler ""
mkcert kwok kwok-controller system:masters
if [[ ! -f "$PKI/sa.key" ]]; then
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
fi
chmod 600 "$PKI"/*.key

write_kubeconfig() { # out user
  local out=$1 user=$2
  cat >"$out.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kubetune-local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$PKI/$user.crt")
    client-key-data: $(base64 -w0 <"$PKI/$user.key")
contexts:
- name: kubetune-local
  context:
    cluster: kubetune-local
    user: $user
    namespace: default
current-context: kubetune-local
EOF
  chmod 600 "$out.tmp"
  mv "$out.tmp" "$out"
}
for u in admin kube-controller-manager kube-scheduler kwok; do
  write_kubeconfig "$RUN/$u.kubeconfig" "$u"
done

# ---------------------------------------------------------------- process helpers
start() { # name cmd...
  local name=$1; shift
  # setsid: own session, so the test runner's signals/terminal do not reach it
  # (fds 8 and 9 closed: the lock and the caller's stderr must not outlive us)
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null 8>&- 9>&- &
  echo $! >"$RUN/$name.pid"
}
wait_for() { # what cmd...
  local what=$1; shift
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${TIMEOUT}s waiting for $what"
    sleep 0.5
  done
}
alive_and() { # pidname cmd... : fail fast (exit 2) when the process died
  local name=$1; shift
  pid_alive "$RUN/$name.pid" || die "$name exited (see $LOGS/$name.log)"
  "$@"
}
https_ok() { # port path
  curl -fsS --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$1$2"
}
kc() { "$KUBECTL" --kubeconfig "$RUN/admin.kubeconfig" "$@"; }

# ---------------------------------------------------------------- etcd
log "starting etcd on 127.0.0.1:$ETCD_PORT"
start etcd "$BIN/kubebin" etcd \
  --name=kubetune --data-dir="$DATA/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="kubetune=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync=true --log-level=warn
wait_for etcd alive_and etcd curl -fsS --max-time 3 "http://127.0.0.1:$ETCD_PORT/health"

# ---------------------------------------------------------------- kube-apiserver
log "starting kube-apiserver on https://127.0.0.1:$API_PORT"
# --endpoint-reconciler-type=none: a loopback advertise address is not a valid
# Endpoints IP, so the "kubernetes" Service gets no endpoints (nothing needs them).
start kube-apiserver "$BIN/kubebin" kube-apiserver \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
  --tls-cert-file="$PKI/kube-apiserver.crt" --tls-private-key-file="$PKI/kube-apiserver.key" \
  --client-ca-file="$PKI/ca.crt" \
  --requestheader-client-ca-file="$PKI/ca.crt" \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User \
  --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
  --proxy-client-key-file="$PKI/front-proxy-client.key" \
  --authorization-mode=Node,RBAC \
  --service-account-issuer="$SA_ISSUER" --api-audiences="$SA_ISSUER" \
  --service-account-key-file="$PKI/sa.pub" \
  --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --allow-privileged=true \
  --endpoint-reconciler-type=none \
  --profiling=false \
  --v=1
wait_for "kube-apiserver /readyz" alive_and kube-apiserver https_ok "$API_PORT" /readyz

# ---------------------------------------------------------------- controller-manager, scheduler
log "starting kube-controller-manager and kube-scheduler"
start kube-controller-manager "$BIN/kubebin" kube-controller-manager \
  --kubeconfig="$RUN/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig="$RUN/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig="$RUN/kube-controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
  --tls-cert-file="$PKI/loopback-serving.crt" --tls-private-key-file="$PKI/loopback-serving.key" \
  --leader-elect=false \
  --controllers='*' \
  --use-service-account-credentials=true \
  --service-account-private-key-file="$PKI/sa.key" \
  --root-ca-file="$PKI/ca.crt" \
  --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --cluster-name=kubetune \
  --profiling=false \
  --v=1
start kube-scheduler "$BIN/kubebin" kube-scheduler \
  --kubeconfig="$RUN/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig="$RUN/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig="$RUN/kube-scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" \
  --tls-cert-file="$PKI/loopback-serving.crt" --tls-private-key-file="$PKI/loopback-serving.key" \
  --leader-elect=false \
  --profiling=false \
  --v=1

# ---------------------------------------------------------------- kwok
log "starting kwok"
start kwok "$BIN/kwok" \
  --kubeconfig="$RUN/kwok.kubeconfig" \
  --config="$ROOT/hack/kwok/stages.yaml" \
  --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --node-lease-duration-seconds=40 \
  --cidr="$POD_CIDR" \
  --node-ip=10.0.0.1 \
  --server-address="127.0.0.1:$KWOK_PORT"

wait_for kube-controller-manager alive_and kube-controller-manager https_ok "$KCM_PORT" /healthz
wait_for kube-scheduler alive_and kube-scheduler https_ok "$SCHED_PORT" /healthz
wait_for kwok alive_and kwok curl -fsS --max-time 3 "http://127.0.0.1:$KWOK_PORT/healthz"

# ---------------------------------------------------------------- nodes
log "creating simulated node pools (hack/kwok/nodes.yaml)"
wait_for "node creation" kc apply -f "$ROOT/hack/kwok/nodes.yaml"
nodes_ready() {
  local want got
  want=$(grep -c '^kind: Node$' "$ROOT/hack/kwok/nodes.yaml")
  got=$(kc get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$')
  [[ "$got" -ge "$want" ]]
}
wait_for "nodes Ready" alive_and kwok nodes_ready
wait_for "ServiceAccount default/default" alive_and kube-controller-manager kc -n default get serviceaccount default
wait_for "ConfigMap default/kube-root-ca.crt" kc -n default get configmap kube-root-ca.crt

cp "$RUN/admin.kubeconfig" "$KUBECONFIG_OUT.tmp"
mv "$KUBECONFIG_OUT.tmp" "$KUBECONFIG_OUT"
log "ready: KUBECONFIG=$KUBECONFIG_OUT (apiserver https://127.0.0.1:$API_PORT)"
echo "$KUBECONFIG_OUT"
