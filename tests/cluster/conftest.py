"""Fixtures for tests that need a Kubernetes API server.

kubeconfig  (session) path of the test cluster's kubeconfig (helpers.cluster.ensure_cluster)
kube_api    (session) kubernetes.client.ApiClient for it
namespace   (function) a fresh namespace, deleted after the test
"""

from __future__ import annotations

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


@pytest.fixture
def namespace(kube_api, request):
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(kube_api)
    base = request.node.name.lower().replace("_", "-")
    name = "kt-" + "".join(c for c in base if c.isalnum() or c == "-")[:40].strip("-")
    name = f"{name}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(
        k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels={"kubetune.io/test": "true"}))
    )
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name, propagation_policy="Background")
        except k8s.ApiException as e:
            if e.status != 404:
                raise
