"""Smoke tests of the test control plane: real apiserver/scheduler/controllers,
kwok-simulated GPU pools, the sim.kubetune.io pod lifecycle, and the CRD."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from helpers import cluster

pytestmark = pytest.mark.cluster

CRD_PATH = cluster.REPO_ROOT / "crds" / "kubetune.io_finetuneruns.yaml"
GPU = "nvidia.com/gpu"
GPU_TOLERATION = k8s.V1Toleration(key=GPU, operator="Exists", effect="NoSchedule")
IMAGE = "registry.invalid/kubetune/sim:latest"  # never pulled: kwok runs no containers


def wait_for(what: str, fn, timeout: float = 60, interval: float = 0.5):
    """Poll fn() until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def sim_pools(kube_api):
    if not cluster.has_simulated_pools(kube_api):
        pytest.skip(
            "the cluster has no kwok-simulated GPU pools (hack/kwok/nodes.yaml + "
            "hack/kwok/stages.yaml); see docs/testing-clusters.md"
        )


@pytest.fixture
def core(kube_api):
    return k8s.CoreV1Api(kube_api)


def pool_nodes(core, pool: str) -> set[str]:
    items = core.list_node(label_selector=f"{cluster.POOL_LABEL}={pool}").items
    return {n.metadata.name for n in items}


def sim_pod(name: str, *, pool: str, gpus: int = 0, annotations: dict | None = None) -> k8s.V1Pod:
    limits = {"cpu": "1", "memory": "1Gi"}
    if gpus:
        limits[GPU] = str(gpus)
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=name, annotations=annotations or {}),
        spec=k8s.V1PodSpec(
            restart_policy="Never",
            node_selector={cluster.POOL_LABEL: pool},
            tolerations=[GPU_TOLERATION] if gpus else None,
            containers=[
                k8s.V1Container(
                    name="main", image=IMAGE, resources=k8s.V1ResourceRequirements(limits=limits)
                )
            ],
        ),
    )


def test_indexed_gpu_job_runs_on_h100_and_completes(kube_api, core, namespace, sim_pools):
    batch = k8s.BatchV1Api(kube_api)
    job = k8s.V1Job(
        metadata=k8s.V1ObjectMeta(name="train"),
        spec=k8s.V1JobSpec(
            completions=2,
            parallelism=2,
            completion_mode="Indexed",
            backoff_limit=0,
            template=k8s.V1PodTemplateSpec(spec=sim_pod("x", pool="h100", gpus=8).spec),
        ),
    )
    batch.create_namespaced_job(namespace, job)
    h100 = pool_nodes(core, "h100")
    assert len(h100) == 2

    def running_pods():
        pods = core.list_namespaced_pod(namespace, label_selector="job-name=train").items
        if len(pods) == 2 and all(p.status.phase == "Running" for p in pods):
            return pods
        return None

    pods = wait_for("2 Running job pods", running_pods)
    nodes = [p.spec.node_name for p in pods]
    assert set(nodes) <= h100, nodes
    # 8 GPUs each: the real scheduler must put them on different nodes
    assert len(set(nodes)) == 2, nodes

    # without the exit-code annotation the pods keep running
    time.sleep(2)
    assert all(
        p.status.phase == "Running"
        for p in core.list_namespaced_pod(namespace, label_selector="job-name=train").items
    )
    assert not batch.read_namespaced_job_status("train", namespace).status.succeeded

    for p in pods:
        core.patch_namespaced_pod(
            p.metadata.name,
            namespace,
            {"metadata": {"annotations": {cluster.POD_EXIT_CODE_ANNOTATION: "0"}}},
        )

    def complete():
        st = batch.read_namespaced_job_status("train", namespace).status
        return any(c.type == "Complete" and c.status == "True" for c in st.conditions or []) and st

    status = wait_for("Job Complete", complete)
    assert status.succeeded == 2
    assert status.completed_indexes == "0,1"


def terminated(core, namespace, name):
    pod = core.read_namespaced_pod_status(name, namespace)
    if pod.status.phase in ("Succeeded", "Failed"):
        return pod
    return None


def test_exit_code_and_exit_after(core, namespace, sim_pools):
    core.create_namespaced_pod(
        namespace, sim_pod("fail-now", pool="cpu", annotations={cluster.POD_EXIT_CODE_ANNOTATION: "3"})
    )
    core.create_namespaced_pod(
        namespace,
        sim_pod(
            "fail-later",
            pool="a10g",
            gpus=1,
            annotations={
                cluster.POD_EXIT_CODE_ANNOTATION: "3",
                cluster.POD_EXIT_AFTER_ANNOTATION: "5",
            },
        ),
    )

    pod = wait_for("fail-now to finish", lambda: terminated(core, namespace, "fail-now"))
    assert pod.status.phase == "Failed"
    (cs,) = pod.status.container_statuses
    assert cs.state.terminated.exit_code == 3
    assert cs.state.terminated.reason == "Error"

    # the delayed one is Running (on an a10g node) until exit-after has passed
    pod = wait_for(
        "fail-later Running",
        lambda: (p := core.read_namespaced_pod_status("fail-later", namespace)).status.phase
        == "Running"
        and p,
    )
    assert pod.spec.node_name in pool_nodes(core, "a10g")
    running_since = time.monotonic()
    pod = wait_for("fail-later to finish", lambda: terminated(core, namespace, "fail-later"), timeout=30)
    assert time.monotonic() - running_since >= 3.5
    assert pod.status.phase == "Failed"
    (cs,) = pod.status.container_statuses
    assert cs.state.terminated.exit_code == 3
    elapsed = cs.state.terminated.finished_at - pod.status.start_time
    assert elapsed.total_seconds() >= 4, elapsed

    # exit code 0 -> Succeeded; a pod can be deleted while running (grace period honoured by kwok)
    core.create_namespaced_pod(
        namespace, sim_pod("ok", pool="cpu", annotations={cluster.POD_EXIT_CODE_ANNOTATION: "0"})
    )
    core.create_namespaced_pod(namespace, sim_pod("forever", pool="cpu"))
    pod = wait_for("ok to finish", lambda: terminated(core, namespace, "ok"))
    assert pod.status.phase == "Succeeded"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    wait_for(
        "forever Running",
        lambda: core.read_namespaced_pod_status("forever", namespace).status.phase == "Running",
    )
    core.delete_namespaced_pod("forever", namespace, grace_period_seconds=30)

    def gone():
        try:
            core.read_namespaced_pod("forever", namespace)
        except k8s.ApiException as e:
            return e.status == 404
        return False

    wait_for("forever to be deleted", gone, timeout=20)


def test_too_many_gpus_is_unschedulable(kube_api, core, namespace, sim_pools):
    core.create_namespaced_pod(namespace, sim_pod("greedy", pool="h100", gpus=9))

    def unschedulable():
        pod = core.read_namespaced_pod_status("greedy", namespace)
        for c in pod.status.conditions or []:
            if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
                return pod, c
        return None

    pod, cond = wait_for("PodScheduled=False/Unschedulable", unschedulable)
    assert pod.status.phase == "Pending"
    assert not pod.spec.node_name
    assert GPU in (cond.message or ""), cond.message

    # events.k8s.io works: the scheduler reports FailedScheduling there
    events = k8s.EventsV1Api(kube_api)

    def failed_scheduling():
        items = events.list_namespaced_event(namespace).items
        return [e for e in items if e.reason == "FailedScheduling" and e.regarding.name == "greedy"]

    wait_for("FailedScheduling event", failed_scheduling)


def test_rbac_and_service_account_tokens(kube_api, core, namespace):
    core.create_namespaced_service_account(
        namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="probe"))
    )
    token = core.create_namespaced_service_account_token(
        "probe", namespace, k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[]))
    ).status.token

    cfg = k8s.Configuration()
    src = kube_api.configuration
    cfg.host, cfg.ssl_ca_cert, cfg.verify_ssl = src.host, src.ssl_ca_cert, src.verify_ssl
    cfg.api_key = {"authorization": token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    with k8s.ApiClient(cfg) as sa_client:
        sa_core = k8s.CoreV1Api(sa_client)
        with pytest.raises(k8s.ApiException) as err:
            sa_core.list_namespaced_pod(namespace)
        assert err.value.status == 403

        rbac = k8s.RbacAuthorizationV1Api(kube_api)
        rbac.create_namespaced_role(
            namespace,
            k8s.V1Role(
                metadata=k8s.V1ObjectMeta(name="pod-reader"),
                rules=[k8s.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list"])],
            ),
        )
        rbac.create_namespaced_role_binding(
            namespace,
            k8s.V1RoleBinding(
                metadata=k8s.V1ObjectMeta(name="probe-pod-reader"),
                role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="pod-reader"),
                subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name="probe", namespace=namespace)],
            ),
        )

        def allowed():
            try:
                sa_core.list_namespaced_pod(namespace)
                return True
            except k8s.ApiException as e:
                if e.status != 403:
                    raise
                return False

        wait_for("RoleBinding to take effect", allowed, timeout=20)


def test_aggregated_discovery(kube_api):
    # kubernetes client 37 (openapi-generator 7): serialize the request, then call it.
    method, url, headers, body, post_params = kube_api.param_serialize(
        "GET",
        "/apis",
        header_params={"Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"},
        auth_settings=["BearerToken"],
    )
    resp = kube_api.call_api(method, url, header_params=headers, body=body, post_params=post_params)
    assert resp.status == 200
    body = json.loads(resp.read())
    assert body["kind"] == "APIGroupDiscoveryList"
    groups = {g["metadata"]["name"] for g in body["items"]}
    assert {"apps", "batch", "events.k8s.io", "rbac.authorization.k8s.io"} <= groups


def _apply_crd(kube_api, crd: dict) -> None:
    ext = k8s.ApiextensionsV1Api(kube_api)
    name = crd["metadata"]["name"]
    try:
        ext.create_custom_resource_definition(crd)
    except k8s.ApiException as e:
        if e.status != 409:
            raise
        current = ext.read_custom_resource_definition(name)
        crd = dict(crd, metadata=dict(crd["metadata"], resourceVersion=current.metadata.resource_version))
        ext.replace_custom_resource_definition(name, crd)

    def established():
        st = ext.read_custom_resource_definition_status(name).status
        return any(c.type == "Established" and c.status == "True" for c in st.conditions or [])

    wait_for(f"CRD {name} Established", established, timeout=30)


def test_finetunerun_crd_validation(kube_api, namespace):
    if not CRD_PATH.exists():
        pytest.skip(f"{CRD_PATH.relative_to(cluster.REPO_ROOT)} does not exist yet (generated CRD)")
    docs = [d for d in yaml.safe_load_all(Path(CRD_PATH).read_text()) if d]
    (crd,) = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    assert crd["spec"]["group"] == "kubetune.io"
    assert any(v["name"] == "v1alpha1" and v.get("served") for v in crd["spec"]["versions"])
    _apply_crd(kube_api, crd)

    custom = k8s.CustomObjectsApi(kube_api)
    plural = crd["spec"]["names"]["plural"]
    spec = {
        "model": "meta-llama/Llama-3.2-1B-Instruct",
        "trainDataPath": "/data/train.jsonl",
        "registerTo": "main.default",
    }

    def run(name, spec):
        body = {
            "apiVersion": "kubetune.io/v1alpha1",
            "kind": "FineTuneRun",
            "metadata": {"name": name},
            "spec": spec,
        }
        return custom.create_namespaced_custom_object("kubetune.io", "v1alpha1", namespace, plural, body)

    # the discovery of a just-established CRD can lag a moment behind
    created = wait_for("FineTuneRun create", lambda: _try_create(run, "valid", spec), timeout=30)
    assert created["spec"]["model"] == spec["model"]

    invalid = {k: v for k, v in spec.items() if k != "registerTo"}
    with pytest.raises(k8s.ApiException) as err:
        run("no-register-to", invalid)
    assert err.value.status == 422, err.value.body
    assert "registerTo" in err.value.body


def _try_create(run, name, spec):
    try:
        return run(name, spec)
    except k8s.ApiException as e:
        if e.status == 404:
            return None
        raise
