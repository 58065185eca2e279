"""Fixtures for the example-manifest tests.

kubeconfig     (session) the test cluster (helpers.cluster)
kube_api       (session) a kubernetes ApiClient for it
crd_installed  (session) the FineTuneRun CRD from crds/ applied and Established
namespace      (function) a fresh namespace, deleted after the test
kubectl        (session) kubectl(*args) -> stdout, with the test kubeconfig
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

from helpers import cluster


@pytest.fixture(scope="session")
def kubeconfig():
    path = cluster.ensure_cluster()
    try:
        yield path
    finally:
        cluster.release_cluster()


@pytest.fixture(scope="session")
def kube_api(kubeconfig):
    client = cluster.api_client(kubeconfig)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def kubectl(kubeconfig):
    local = cluster.CLUSTER_DIR / "bin" / "kubectl"
    binary = os.environ.get("KUBECTL") or (str(local) if os.access(local, os.X_OK) else shutil.which("kubectl"))
    if not binary:
        pytest.skip("kubectl is missing: install it or set KUBECTL=")

    def run(*args: str, input: str | None = None) -> str:
        result = subprocess.run(
            [binary, "--kubeconfig", kubeconfig, *args], input=input, capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    return run


@pytest.fixture(scope="session")
def crd_installed(kubectl):
    crds = cluster.REPO_ROOT / "crds"
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/finetuneruns.kubetune.io")


@pytest.fixture
def namespace(kube_api, request):
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(kube_api)
    name = f"kt-examples-{uuid.uuid4().hex[:6]}"
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels={"kubetune.io/test": "true"})))
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")
