"""Fixtures for Kubetune on Kueue: the operator fixtures (helpers.operator_fixtures) plus Kueue itself.

kueue            (session) Kueue's CRDs applied and its controller manager running out of cluster against the
                 test control plane (helpers.kueue_controller: built from Go modules, webhooks off, and why);
                 on teardown the controller stops and the CRDs and objects go (helpers.kueue_controller.remove_kueue),
                 so later tests see a cluster without Kueue
kueue_objects    (session) Kueue's API on the test kubeconfig: create/patch/delete its objects
cluster_queue    (function) make_queue(gpus, hold=False) -> "team": a ClusterQueue named after the test's
                 namespace with that GPU quota (CPU and memory plenty), preempting lower priorities within
                 it, and the LocalQueue "team" in the namespace; WorkloadPriorityClasses low (100), high (1000)
operator_config  (session) the operator tests' configuration allowing the priority classes low and high
"""

from __future__ import annotations

import pytest
import yaml
from kubernetes import client as k8s

from helpers.kueue_controller import (
    GROUP,
    NAMESPACE,
    VERSION,
    KueueController,
    crd_names,
    cluster_queue_body,
    ensure_kueue_bins,
    remove_kueue,
    wait_active,
)
from helpers.operator_fixtures import (  # noqa: F401 - pytest registers the fixtures it finds here
    kube_api,
    namespace,
    operator,
    pytest_runtest_makereport,
    runs,
)
from helpers.operator_fixtures import operator_config_data

QUEUE = "team"
PRIORITIES = {"low": 100, "high": 1000}


@pytest.fixture(scope="session")
def operator_config(tmp_path_factory):
    # These runs never reach MLflow: the example's unreachable address stays, and no MLflow server starts.
    config = operator_config_data("http://mlflow.invalid:5000")
    config["kueue"] = {"allowedPriorityClasses": sorted(PRIORITIES)}
    path = tmp_path_factory.mktemp("kueue-operator") / "operator.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def kueue(kubeconfig, kube_api, kubectl, tmp_path_factory):
    binary, crds = ensure_kueue_bins()
    remove_kueue(kube_api, crds)  # what an interrupted session may have left, terminating
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{name}" for name in crd_names(crds)])
    core = k8s.CoreV1Api(kube_api)
    _create(lambda: core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=NAMESPACE))))
    controller = KueueController(binary, kubeconfig, tmp_path_factory.mktemp("kueue"))
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()
        remove_kueue(kube_api, crds)


@pytest.fixture(scope="session")
def kueue_objects(kueue, kube_api):
    custom = k8s.CustomObjectsApi(kube_api)
    for name, value in PRIORITIES.items():
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkloadPriorityClass", "metadata": {"name": name}, "value": value}
        _create(lambda: custom.create_cluster_custom_object(GROUP, VERSION, "workloadpriorityclasses", body))
    flavor = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ResourceFlavor", "metadata": {"name": "kubetune-default"}}
    _create(lambda: custom.create_cluster_custom_object(GROUP, VERSION, "resourceflavors", flavor))
    return custom


def _create(call) -> None:
    try:
        call()
    except k8s.ApiException as error:
        if error.status != 409:
            raise


@pytest.fixture
def cluster_queue(kueue_objects, namespace):
    custom = kueue_objects

    def make(gpus: int, hold: bool = False) -> str:
        custom.create_cluster_custom_object(GROUP, VERSION, "clusterqueues", cluster_queue_body(namespace, gpus, hold))
        local = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "LocalQueue",
            "metadata": {"name": QUEUE},
            "spec": {"clusterQueue": namespace},
        }
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "localqueues", local)
        wait_active(custom, namespace, QUEUE)
        return QUEUE

    yield make
    try:
        custom.delete_cluster_custom_object(GROUP, VERSION, "clusterqueues", namespace)
    except k8s.ApiException as error:
        if error.status != 404:
            raise
