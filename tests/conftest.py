"""Fixtures shared by every layer that talks to a Kubernetes API server (cluster, sdk, examples, chart, operator).

kubeconfig     (session) the test cluster's kubeconfig (helpers.cluster.ensure_cluster: the local control
               plane, or the cluster KUBECONFIG points at)
kube_api       (session) a kubernetes ApiClient for it
kubectl        (session) kubectl(*args, input=None) -> stdout, with the test kubeconfig
crd_installed  (session) the committed FineTuneRun CRD (crds/) applied and Established
helm           (session) the helm binary ($HELM, else .cluster/bin/helm); skips with instructions when missing
namespace      (function) a fresh namespace named after the test, deleted after it
mlflow_uri     (session, helpers.mlflow_server) the one real MLflow tracking server of the session
Layer conftests extend these (e.g. the operator's namespace adds a checkpoint volume).
"""

from __future__ import annotations

import time
import uuid

import pytest

from helpers import cluster

# One MLflow server for the whole session, whichever layers run (the fixture `mlflow_uri`).
pytest_plugins = ["helpers.mlflow_server"]

CRD_NAME = "finetuneruns.kubetune.io"


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
    def run(*args: str, input: str | None = None) -> str:
        return cluster.kubectl(kubeconfig, *args, input=input)

    return run


@pytest.fixture(scope="session")
def crd_installed(kubectl) -> str:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(cluster.REPO_ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD_NAME}")
    time.sleep(1)  # discovery of a just-established CRD lags a moment behind
    return CRD_NAME


@pytest.fixture(scope="session")
def helm():
    from helpers.helm import helm_binary

    path = helm_binary()
    if path is None:
        pytest.skip(
            "helm is missing: run `make cluster-bins` (builds .cluster/bin/helm at the version pinned in "
            "hack/versions.env) or point HELM= at a helm 3 binary"
        )
    return path


@pytest.fixture
def namespace(kube_api, request):
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(kube_api)
    base = "".join(c for c in request.node.name.lower().replace("_", "-") if c.isalnum() or c == "-")
    name = f"kt-{base[:40].strip('-')}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels={"kubetune.io/test": "true"})))
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name, propagation_policy="Background")
        except k8s.ApiException as error:
            if error.status != 404:
                raise
