"""Kueue for the `kueue` tests: built from Go modules (hack/kueue-bins.sh, like the control plane) and run out of
cluster against the test control plane with the test kubeconfig.

    ensure_kueue_bins() -> (binary, crd folder)   build if needed (skips the test without Go)
    KueueController(kubeconfig, folder)           .start() / .stop() the controller manager
    cluster_queue_body(name, gpus, hold)          a ClusterQueue for one test's namespace
    crd_names(folder) / remove_kueue(api, folder) Kueue's CRD names; delete them and every Kueue object
    wait_active(custom, namespace, queue)         wait until Kueue took up a LocalQueue
    hold(custom, cluster_queue, held)             stop or resume admission in a ClusterQueue

Webhooks are off: the manager serves them on a loopback port with a self-signed certificate the fixture makes,
but no webhook configuration points at it. Kubetune does not need them: the operator creates every queued Job
already suspended with the queue label, which is what Kueue's Job webhook would do; the other webhooks validate
and default Kueue's own objects, which the tests write complete. Kueue's internal certificate management is off
(it would inject a CA into conversion webhooks the CRDs of config/components/crd/bases do not have); Kueue then
reads its metrics server's certificate from a fixed path, METRICS_CERTS, which the fixture fills when it is
empty (this needs root; otherwise the tests are skipped saying so).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from helpers import cluster
from helpers.health import wait_healthy
from helpers.mlflow_server import free_port

GROUP, VERSION = "kueue.x-k8s.io", "v1beta2"
NAMESPACE = "kueue-system"  # the namespace Kueue calls its own (its configuration must name one)
METRICS_CERTS = Path("/etc/kueue/metrics/certs")  # fixed in Kueue's cmd/kueue/main.go
_BUILD_TIMEOUT_S = 45 * 60


def ensure_kueue_bins() -> tuple[Path, Path]:
    binary, crds = cluster.CLUSTER_DIR / "bin" / "kueue", cluster.CLUSTER_DIR / "kueue-crds"
    go = cluster._find_go()
    if go is None and not os.access(binary, os.X_OK):
        pytest.skip("the Kueue tests need Go to build Kueue (hack/kueue-bins.sh), or a built $CLUSTER_DIR/bin/kueue")
    env = dict(os.environ, CLUSTER_DIR=str(cluster.CLUSTER_DIR))
    if go:
        env["GO"] = go
        result = subprocess.run([str(cluster.REPO_ROOT / "hack" / "kueue-bins.sh")], env=env, capture_output=True,
                                text=True, timeout=_BUILD_TIMEOUT_S)
        if result.returncode != 0:
            pytest.fail(f"hack/kueue-bins.sh failed:\n{(result.stdout + result.stderr)[-6000:]}", pytrace=False)
    return binary, crds


def configuration(folder: Path) -> dict:
    """Kueue's configuration file: loopback ports of its own, no leader election, Jobs only."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{free_port()}"},
        "metrics": {"bindAddress": "0"},
        "webhook": {"host": "127.0.0.1", "port": free_port(), "certDir": str(folder / "certs")},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "integrations": {"frameworks": ["batch/job"]},
        "featureGates": {"VisibilityOnDemand": False},  # its aggregated API server would need a Service
    }


def self_signed_cert(folder: Path) -> None:
    """tls.crt and tls.key for 127.0.0.1 in folder (a loopback server nobody verifies)."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "tls.crt").exists() and (folder / "tls.key").exists():
        return
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(folder / "tls.key"), "-out", str(folder / "tls.crt")],
        check=True, capture_output=True,
    )


def ensure_metrics_certs() -> None:
    try:
        self_signed_cert(METRICS_CERTS)
    except OSError as error:
        pytest.skip(f"Kueue reads its metrics certificate from {METRICS_CERTS}, which cannot be written here ({error}); "
                    f"create tls.crt and tls.key there (any self-signed pair) or run the kueue tests as root")


class KueueController:
    def __init__(self, binary: Path, kubeconfig: str, folder: Path):
        self.binary, self.kubeconfig, self.folder = binary, kubeconfig, folder
        self.config = configuration(folder)
        self.process: subprocess.Popen | None = None
        self.log_path = folder / "kueue.log"

    def start(self, timeout: float = 120) -> None:
        ensure_metrics_certs()
        self_signed_cert(self.folder / "certs")
        config_path = self.folder / "kueue-config.yaml"
        config_path.write_text(yaml.safe_dump(self.config))
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(self.binary), f"--config={config_path}", "--zap-log-level=info"],
            env={**os.environ, "KUBECONFIG": self.kubeconfig}, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        ready = f"http://{self.config['health']['healthProbeBindAddress']}/readyz"
        try:
            wait_healthy(ready, lambda: self.process.poll() is not None, self.logs, timeout=timeout, what="kueue")
        except AssertionError:
            self.stop()  # the fixture never reaches its teardown
            raise

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def cluster_queue_body(name: str, gpus: int, hold: bool) -> dict:
    resources = [("cpu", "1000"), ("memory", "100Ti"), ("nvidia.com/gpu", str(gpus))]
    spec = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}},
        "resourceGroups": [
            {
                "coveredResources": [r for r, _ in resources],
                "flavors": [{"name": "kubetune-default", "resources": [{"name": r, "nominalQuota": q} for r, q in resources]}],
            }
        ],
        "preemption": {"withinClusterQueue": "LowerPriority"},
    }
    if hold:
        spec["stopPolicy"] = "Hold"
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterQueue", "metadata": {"name": name}, "spec": spec}


def wait_active(custom, namespace: str, queue: str, timeout: float = 30) -> None:
    """A LocalQueue is usable once Kueue saw it and its ClusterQueue (a held one counts as seen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        local = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "localqueues", queue)
        if any(c.get("type") == "Active" for c in (local.get("status") or {}).get("conditions") or []):
            return
        time.sleep(0.5)
    raise AssertionError(f"Kueue never reported on LocalQueue {namespace}/{queue}")


def hold(custom, name: str, held: bool) -> None:
    """Stop (Hold) or resume admission in a ClusterQueue."""
    policy = {"spec": {"stopPolicy": "Hold" if held else "None"}}
    custom.patch_cluster_custom_object(GROUP, VERSION, "clusterqueues", name, policy)


def crd_names(crds: Path) -> list[str]:
    """The CRDs' names from their files' (kueue.x-k8s.io_<plural>.yaml)."""
    return [f"{p.stem.split('_', 1)[1]}.{GROUP}" for p in sorted(crds.glob("*.yaml"))]


def remove_kueue(api, crds: Path, timeout: float = 60) -> None:
    """Delete Kueue's CRDs and every Kueue object. Its objects carry finalizers only its controller removes: with
    the controller stopped they would keep the CRDs terminating for ever, so they are cleared first."""
    from kubernetes import client as k8s

    extensions, custom = k8s.ApiextensionsV1Api(api), k8s.CustomObjectsApi(api)
    names = crd_names(crds)
    for name in names:
        plural = name.split(".", 1)[0]
        try:
            items = custom.list_cluster_custom_object(GROUP, VERSION, plural)["items"]
        except k8s.ApiException:
            continue  # not installed, or not served in this version
        for item in items:
            meta = item["metadata"]
            if not meta.get("finalizers"):
                continue
            patch = {"metadata": {"finalizers": None}}
            try:
                if meta.get("namespace"):
                    custom.patch_namespaced_custom_object(GROUP, VERSION, meta["namespace"], plural, meta["name"], patch)
                else:
                    custom.patch_cluster_custom_object(GROUP, VERSION, plural, meta["name"], patch)
            except k8s.ApiException as error:
                if error.status != 404:
                    raise
    for name in names:
        try:
            extensions.delete_custom_resource_definition(name)
        except k8s.ApiException as error:
            if error.status != 404:
                raise
    deadline = time.monotonic() + timeout
    while any(crd.metadata.name in names for crd in extensions.list_custom_resource_definition().items):
        if time.monotonic() > deadline:
            raise AssertionError("Kueue's CRDs are still there after their objects' finalizers were cleared")
        time.sleep(0.5)
