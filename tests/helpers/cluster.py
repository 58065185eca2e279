"""Kubernetes cluster for Kubetune's tests.

Small, shared API (used by tests/cluster, tests/operator and tests/chart conftests):

    ensure_cluster() -> str
        Return the path of a kubeconfig for a working cluster, starting the
        local control plane (hack/cluster-up.sh) if needed. Call it from a
        session-scoped fixture and pair it with release_cluster().
    release_cluster() -> None
        Undo one ensure_cluster(); when the last user releases, the local
        control plane is stopped, but only if this process started it.
    api_client(kubeconfig) -> kubernetes.client.ApiClient
        An API client configured from that kubeconfig.
    has_simulated_pools(client) -> bool
        Whether the cluster has Kubetune's simulated GPU pools (the kwok nodes of
        hack/kwok/nodes.yaml); tests relying on the sim.kubetune.io/* pod
        annotations should skip otherwise.

Which cluster (environment variables):
    KUBECONFIG                 use this existing cluster (kind, a real cluster, ...)
                               unless KUBETUNE_TEST_CLUSTER=local;
    KUBETUNE_TEST_CLUSTER      "local" forces the local control plane even if
                               KUBECONFIG is set;
    KUBETUNE_KEEP_CLUSTER=1    do not stop a local control plane this run started
                               (next runs reuse it; stop it with hack/cluster-down.sh);
    GO                         the go binary used to build missing binaries.

A local control plane that was already running (e.g. `make cluster-up`) is
reused and left running. If Go is missing and the binaries were never built,
ensure_cluster() calls pytest.skip() with instructions.

Simulated pod lifecycle on the kwok nodes (hack/kwok/stages.yaml):
    POD_EXIT_CODE_ANNOTATION  = "sim.kubetune.io/exit-code"   ("N": the pod ends
        with exit code N: 0 -> Succeeded, else Failed); without it pods stay Running.
    POD_EXIT_AFTER_ANNOTATION = "sim.kubetune.io/exit-after"  ("SECONDS" to wait
        first, counted from when the pod is Running and carries exit-code).
    POD_TERMINATION_MESSAGE_ANNOTATION = "sim.kubetune.io/termination-message"  (a failed
        pod's containers end with this termination message).
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import ssl
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest

__all__ = [
    "REPO_ROOT",
    "CLUSTER_DIR",
    "POD_EXIT_CODE_ANNOTATION",
    "POD_EXIT_AFTER_ANNOTATION",
    "POD_TERMINATION_MESSAGE_ANNOTATION",
    "POOL_LABEL",
    "ensure_cluster",
    "release_cluster",
    "api_client",
    "has_simulated_pools",
    "kubectl",
    "kubectl_binary",
    "prebound_volume",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER_DIR = Path(os.environ.get("CLUSTER_DIR", REPO_ROOT / ".cluster"))

POD_EXIT_CODE_ANNOTATION = "sim.kubetune.io/exit-code"
POD_EXIT_AFTER_ANNOTATION = "sim.kubetune.io/exit-after"
POD_TERMINATION_MESSAGE_ANNOTATION = "sim.kubetune.io/termination-message"
POOL_LABEL = "kubetune.io/pool"

# Building from a cold Go cache takes a while on small machines.
_BUILD_TIMEOUT_S = 45 * 60
_UP_TIMEOUT_S = 10 * 60

_lock = threading.Lock()
_users = 0
_kubeconfig: str | None = None
_started_here = False


def _use_existing() -> str | None:
    kubeconfig = os.environ.get("KUBECONFIG")
    if kubeconfig and os.environ.get("KUBETUNE_TEST_CLUSTER", "") != "local":
        return kubeconfig
    return None


def _find_go() -> str | None:
    go = os.environ.get("GO") or shutil.which("go")
    if not go and os.access("/usr/local/go/bin/go", os.X_OK):
        go = "/usr/local/go/bin/go"
    return go


def _bins_present() -> bool:
    b = CLUSTER_DIR / "bin"
    return all(os.access(b / n, os.X_OK) for n in ("kubebin", "kwok"))


def _run(script: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO_ROOT / "hack" / script)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def _local_up() -> bool:
    """True when a local control plane is already running and healthy."""
    pki, run = CLUSTER_DIR / "pki", CLUSTER_DIR / "run"
    try:
        pid = int((run / "kube-apiserver.pid").read_text().strip())
        os.kill(pid, 0)
        ports = dict(
            line.split("=", 1) for line in (run / "ports.env").read_text().split() if "=" in line
        )
        if not (CLUSTER_DIR / "kubeconfig").exists():
            return False
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        url = f"https://127.0.0.1:{ports['API_PORT']}/readyz"
        with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
            return resp.status == 200
    except (OSError, ValueError, KeyError, ssl.SSLError):
        return False


def _start_local() -> tuple[str, bool]:
    """Start (or reuse) the local control plane; return (kubeconfig, started_here)."""
    CLUSTER_DIR.mkdir(parents=True, exist_ok=True)
    # One starter at a time across processes (pytest-xdist workers, parallel runs).
    with open(CLUSTER_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _local_up():
            return str(CLUSTER_DIR / "kubeconfig"), False

        env = dict(os.environ, CLUSTER_DIR=str(CLUSTER_DIR))
        go = _find_go()
        if go:
            env["GO"] = go
            env["PATH"] = os.path.dirname(go) + os.pathsep + env.get("PATH", "")
            res = _run("cluster-bins.sh", env, _BUILD_TIMEOUT_S)
            if res.returncode != 0:
                pytest.fail(f"hack/cluster-bins.sh failed:\n{res.stdout[-6000:]}", pytrace=False)
        elif not _bins_present():
            pytest.skip(
                "no Kubernetes cluster for the cluster tests: the local control plane "
                "needs Go (install Go 1.26+, as pinned by hack/versions.env, so that "
                "hack/cluster-bins.sh can build it) or set KUBECONFIG to an existing "
                "cluster (see docs/testing-clusters.md)"
            )
        env["CLUSTER_SKIP_BUILD"] = "1"
        res = _run("cluster-up.sh", env, _UP_TIMEOUT_S)
        if res.returncode != 0:
            pytest.fail(f"hack/cluster-up.sh failed:\n{res.stdout[-8000:]}", pytrace=False)
        return str(CLUSTER_DIR / "kubeconfig"), True


def _stop_local() -> None:
    env = dict(os.environ, CLUSTER_DIR=str(CLUSTER_DIR))
    _run("cluster-down.sh", env, 120)


def ensure_cluster() -> str:
    """Return a kubeconfig path for the test cluster (see module docstring).

    Reference counted: every call must be matched by release_cluster().
    """
    global _users, _kubeconfig, _started_here
    with _lock:
        if _kubeconfig is None:
            existing = _use_existing()
            if existing:
                _kubeconfig, _started_here = existing, False
            else:
                _kubeconfig, _started_here = _start_local()
        _users += 1
        return _kubeconfig


def release_cluster() -> None:
    """Undo one ensure_cluster(); stops the local control plane after the last
    user if this process started it (and KUBETUNE_KEEP_CLUSTER is not 1)."""
    global _users, _kubeconfig, _started_here
    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users == 0:
            if _started_here and os.environ.get("KUBETUNE_KEEP_CLUSTER") != "1":
                _stop_local()
            _kubeconfig, _started_here = None, False


@atexit.register
def _stop_at_exit() -> None:  # safety net if a session fixture never tore down
    if _started_here and os.environ.get("KUBETUNE_KEEP_CLUSTER") != "1":
        _stop_local()


def api_client(kubeconfig: str):
    """A kubernetes.client.ApiClient for the given kubeconfig path."""
    from kubernetes import config

    return config.new_client_from_config(config_file=kubeconfig)


def has_simulated_pools(client) -> bool:
    """Whether the cluster has Kubetune's kwok-simulated GPU node pools."""
    from kubernetes import client as k8s

    nodes = k8s.CoreV1Api(client).list_node(label_selector=f"{POOL_LABEL}=h100").items
    return any(
        (n.metadata.annotations or {}).get("kwok.x-k8s.io/node") == "fake" for n in nodes
    )


def kubectl_binary() -> str:
    """$KUBECTL, else the kubectl built with the control plane, else the one on PATH."""
    local = CLUSTER_DIR / "bin" / "kubectl"
    binary = os.environ.get("KUBECTL") or (str(local) if os.access(local, os.X_OK) else shutil.which("kubectl"))
    if not binary:
        pytest.skip("kubectl is missing: run `make cluster-bins` (builds .cluster/bin/kubectl) or set KUBECTL=")
    return binary


def kubectl(kubeconfig: str, *args: str, input: str | None = None, timeout: float = 120) -> str:
    """Run kubectl against the test cluster; a failure fails the test with kubectl's message."""
    result = subprocess.run(
        [kubectl_binary(), "--kubeconfig", kubeconfig, *args], input=input, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def prebound_volume(namespace: str, claim: str) -> dict:
    """The test cluster has no volume provisioner: a PersistentVolume pre-bound to `claim` in `namespace`."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{namespace}-{claim}", "labels": {"kubetune.io/test": "true"}},
        "spec": {
            "capacity": {"storage": "1Ti"},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": f"/tmp/kubetune-test/{namespace}"},
            "claimRef": {"namespace": namespace, "name": claim},
        },
    }


def local_control_plane() -> bool:
    """Whether the tests run on the local control plane (which they can restart), not an existing cluster."""
    return _kubeconfig is not None and Path(_kubeconfig) == CLUSTER_DIR / "kubeconfig"


def restart_api_server(down_s: float = 3.0, timeout: float = 60.0) -> None:
    """Stop the local kube-apiserver (SIGTERM, SIGKILL after 10 s), keep it down `down_s`, start it again with
    the same command line, and wait until it is ready: every client's connections and watches break."""
    import time

    run = CLUSTER_DIR / "run"
    pid = int((run / "kube-apiserver.pid").read_text().strip())
    command = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    cwd = os.readlink(f"/proc/{pid}/cwd")
    os.kill(pid, 15)
    graceful = time.monotonic() + 10  # it drains open watches for up to a minute: do not wait for that
    while Path(f"/proc/{pid}").exists() and time.monotonic() < graceful:
        time.sleep(0.1)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, 9)
    time.sleep(down_s)
    deadline = time.monotonic() + timeout
    with open(CLUSTER_DIR / "logs" / "kube-apiserver.log", "ab") as log:
        process = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    (run / "kube-apiserver.pid").write_text(f"{process.pid}\n")
    log_path = CLUSTER_DIR / "logs" / "kube-apiserver.log"
    while not _local_up():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"kube-apiserver did not come back (exit {process.poll()}):\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)
    time.sleep(2)
    if process.poll() is not None or not _local_up():
        raise AssertionError(f"kube-apiserver exited after it came back:\n{log_path.read_text()[-3000:]}")
