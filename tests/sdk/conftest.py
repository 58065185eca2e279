"""Fixtures for the SDK and CLI against a real API server (no operator: tests write status themselves).

kubeconfig, kube_api, crd_installed, namespace come from tests/conftest.py.
fm          (function) kubetune.foundation_model configured for that kubeconfig and namespace
write_status(function) write a run's status through the status subresource, as the operator would
"""

from __future__ import annotations

import pytest


@pytest.fixture
def fm(kubeconfig, namespace, crd_installed):
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
