"""Fixtures for the SDK and CLI against a real API server (no operator: tests write status themselves).

kubeconfig  (session) the test cluster's kubeconfig (helpers.cluster.ensure_cluster)
kube_api    (session) kubernetes.client.ApiClient for it
crd         (session) the generated FineTuneRun CRD, applied and Established
namespace   (function) a fresh namespace, deleted after the test
fm          (function) kubetune.foundation_model configured for that kubeconfig and namespace
write_status(function) write a run's status through the status subresource, as the operator would
"""

from __future__ import annotations

import time
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
def crd(kube_api):
    from kubernetes import client as k8s

    from kubetune.api.crd import build_crd

    body = build_crd()
    name = body["metadata"]["name"]
    api = k8s.ApiextensionsV1Api(kube_api)
    try:
        api.create_custom_resource_definition(body)
    except k8s.ApiException as error:
        if error.status != 409:
            raise
        current = api.read_custom_resource_definition(name)
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        api.replace_custom_resource_definition(name, body)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        conditions = api.read_custom_resource_definition(name).status.conditions or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            time.sleep(1)  # discovery of a just-established CRD lags a moment behind
            return name
        time.sleep(0.3)
    raise AssertionError(f"CRD {name} not Established after 30s")


@pytest.fixture
def namespace(kube_api, request):
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(kube_api)
    base = request.node.name.lower().replace("_", "-")
    name = "kt-sdk-" + "".join(c for c in base if c.isalnum() or c == "-")[:36].strip("-")
    name = f"{name}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels={"kubetune.io/test": "true"})))
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name, propagation_policy="Background")
        except k8s.ApiException as error:
            if error.status != 404:
                raise


@pytest.fixture
def fm(kubeconfig, namespace, crd):
    from kubetune import foundation_model

    foundation_model.configure(namespace=namespace, kubeconfig=kubeconfig)
    try:
        yield foundation_model
    finally:
        foundation_model.configure()


@pytest.fixture
def write_status(kube_api, namespace):
    """write_status(name, {...}) merges into the run's status via the status subresource."""
    from kubernetes import client as k8s

    from kubetune.api import GROUP, PLURAL, VERSION

    api = k8s.CustomObjectsApi(kube_api)

    def write(name: str, status: dict) -> dict:
        return api.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, {"status": status})

    return write
