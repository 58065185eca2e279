"""The fault matrix on the real control plane: the operator killed at every phase, the API server restarted,
status writes refused (5xx) or conflicting (409), a node deleted, and 50 runs at once.

After each fault the run is driven to the end and checked the same way: no duplicate Jobs, at most one model
version, a truthful status (the phase it is in, conditions that match, every once-only event once).
Run them as a group with `make test-faults` (they are part of `make test` too).
"""

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from helpers import cluster
from helpers.mlflow_server import logged_export
from helpers.operator_driver import example_run
from kubetune.api.progress import TrainerReport

pytestmark = [pytest.mark.cluster, pytest.mark.faults]

REPO = Path(__file__).resolve().parents[2]
ONCE_ONLY = ("CREATED", "STARTED", "TRAIN_FINISHED", "COMPLETED")  # and DATA_VALIDATED, where reached


def finished_report(mlflow_uri: str, folder: Path, tags: dict[str, str]) -> TrainerReport:
    run_id, export = logged_export(mlflow_uri, folder, tags)
    return TrainerReport.model_validate({
        "updatedAt": datetime.now(UTC).isoformat(), "stage": "TRAIN_FINISHED", "step": 56, "totalSteps": 56,
        "mlflowRunId": run_id, "exportUri": export,
    })


def finish_validation(runs, name: str) -> None:
    runs.wait_pods_running(f"{name}-validate", 1)
    runs.finish_pods(f"{name}-validate", 0)


def finish_training(runs, name: str, mlflow_uri: str, folder: Path, attempt: int = 0) -> None:
    runs.wait_pods_running(f"{name}-train-{attempt}", 2)
    runs.report(name, finished_report(mlflow_uri, folder, runs.tags(name)))
    runs.finish_pods(f"{name}-train-{attempt}", 0)


def assert_truthful_end(runs, name: str, mlflow_uri: str, jobs: list[str]) -> dict:
    status = runs.wait_phase(name, "Succeeded", timeout=90)
    assert sorted(j.metadata.name for j in runs.jobs(name)) == sorted(jobs)
    model = status["registeredModel"]["name"]
    versions = mlflow.MlflowClient(mlflow_uri).search_model_versions(f"name = '{model}'")
    assert [v.version for v in versions] == [status["registeredModel"]["version"]]  # no second version
    types = [e["type"] for e in status["events"]]
    assert all(types.count(t) == 1 for t in ONCE_ONLY), types
    assert types.count("DATA_VALIDATED") <= 1, types
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions["Succeeded"] == ("True", "RunSucceeded") and conditions["Ready"][0] == "True"
    assert conditions["Scheduled"][0] == "False" or conditions["Scheduled"][1] == "PodsRunning"
    assert "Failed" not in conditions or conditions["Failed"][0] == "False"
    return status


def blocking_pods(runs) -> list[str]:
    """Pods holding every GPU of the h100 pool, so a run there waits in Queued."""
    names = []
    for node in ("kubetune-h100-0", "kubetune-h100-1"):
        pod = {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"hog-{node}"},
            "spec": {
                "nodeName": node,
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "containers": [{"name": "hog", "image": "hog", "resources": {"limits": {"nvidia.com/gpu": "8"}}}],
            },
        }
        runs.core.create_namespaced_pod(runs.namespace, pod)
        names.append(pod["metadata"]["name"])
    return names


# Registering: tests/operator/test_fault_registry.py (MLflow down holds the run there while the operator dies).
@pytest.mark.parametrize("phase", ["Pending", "Validating", "Queued", "Running"])
def test_operator_killed_at_every_phase(runs, operator, mlflow_uri, tmp_path, phase):
    """SIGKILL the operator while the run is in `phase`, let the cluster move on without it, start it again."""
    name = f"killed-{phase.lower()}"
    if phase == "Pending":
        operator.kill()  # the run is created while no operator runs
        runs.apply(example_run(name))
        time.sleep(2)
        operator.start()
    else:
        runs.apply(example_run(name))
    if phase in ("Validating", "Queued"):
        hogs = blocking_pods(runs) if phase == "Queued" else []
        runs.wait_phase(name, "Validating")
        if phase == "Validating":
            operator.kill()
        finish_validation(runs, name)
        if phase == "Queued":
            runs.wait_for("Unschedulable", lambda: runs.status(name).get("phase") == "Queued"
                          and "cannot be scheduled" in runs.status(name).get("message", ""), 60)
            operator.kill()
            for hog in hogs:
                runs.core.delete_namespaced_pod(hog, runs.namespace, grace_period_seconds=0)
        operator.start()
    else:
        finish_validation(runs, name)
    if phase == "Running":
        runs.wait_phase(name, "Running")
        operator.kill()
        finish_training(runs, name, mlflow_uri, tmp_path)
        operator.start()
    else:
        finish_training(runs, name, mlflow_uri, tmp_path)
    assert_truthful_end(runs, name, mlflow_uri, [f"{name}-validate", f"{name}-train-0"])


def test_api_server_restarted_mid_run(runs, mlflow_uri, tmp_path):
    if not cluster.local_control_plane():
        pytest.skip("restarts the local control plane's API server")
    name = runs.apply(example_run("apiserver", validateInputs=False))
    before = runs.wait_phase(name, "Running")
    cluster.restart_api_server()
    runs.api.rest_client.pool_manager.clear()  # this client's pooled connections died with the server
    assert runs.status(name)["events"] == before["events"], before["events"]  # etcd kept everything
    runs.report(name, TrainerReport.model_validate({
        "updatedAt": datetime.now(UTC).isoformat(), "stage": "TRAINING", "step": 20, "totalSteps": 56}))
    runs.wait_for("the report after the restart", lambda: runs.status(name).get("progress", {}).get("step") == 20, 60)
    finish_training(runs, name, mlflow_uri, tmp_path)
    assert_truthful_end(runs, name, mlflow_uri, ["apiserver-train-0"])


def failing_status_webhook(namespace: str) -> dict:
    """A validating webhook on FineTuneRun status writes in `namespace` whose server does not exist: the API
    server answers every such write 500 (failurePolicy Fail), a real server-side failure."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": f"fail-status-{namespace}"},
        "webhooks": [{
            "name": "fail-status.kubetune.io",
            "clientConfig": {"url": "https://127.0.0.1:1/validate"},
            "rules": [{"apiGroups": ["kubetune.io"], "apiVersions": ["*"], "operations": ["UPDATE"],
                       "resources": ["finetuneruns/status"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"], "timeoutSeconds": 1,
        }],
    }


def test_status_writes_answered_500_then_accepted(runs, operator, mlflow_uri, tmp_path):
    admission = k8s.AdmissionregistrationV1Api(runs.api)
    name = runs.apply(example_run("refused"))
    runs.wait_phase(name, "Validating")
    webhook = admission.create_validating_webhook_configuration(failing_status_webhook(runs.namespace))
    try:
        with pytest.raises(ApiException) as refused:  # the fault is real: the API server refuses status writes
            runs.custom.patch_namespaced_custom_object_status(
                "kubetune.io", "v1alpha1", runs.namespace, "finetuneruns", name, {"status": {"message": "x"}})
        assert refused.value.status == 500
        finish_validation(runs, name)
        runs.wait_for("the training Job", lambda: [j for j in runs.jobs(name) if j.metadata.name == f"{name}-train-0"], 30)
        time.sleep(3)  # several refused writes and retries
        assert runs.status(name)["phase"] == "Validating"  # nothing written while refused
    finally:
        admission.delete_validating_webhook_configuration(webhook.metadata.name)
    runs.wait_phase(name, "Running", timeout=60)
    assert "500" in operator.logs() or "Internal" in operator.logs()
    finish_training(runs, name, mlflow_uri, tmp_path)
    status = assert_truthful_end(runs, name, mlflow_uri, [f"{name}-validate", f"{name}-train-0"])
    reasons = [e.reason for e in runs.events(name)]
    # Each transition once; JobCreated may be skipped: the pods ran before a status write got through.
    assert all(reasons.count(r) == 1 for r in ("ValidationPassed", "PodsRunning", "ModelRegistered")), reasons
    assert status["restarts"] == 0


def test_status_writes_that_conflict_are_decided_again(runs, operator, mlflow_uri, tmp_path):
    """Something else keeps changing the run (a GitOps tool adding labels): each change bumps its
    resourceVersion, so a status write decided from the read before is refused 409 and decided again."""
    name = runs.apply(example_run("contested"))
    runs.wait_phase(name, "Validating")
    stop = threading.Event()

    def relabel():
        count = 0
        while not stop.is_set():
            count += 1
            try:
                runs.custom.patch_namespaced_custom_object(
                    "kubetune.io", "v1alpha1", runs.namespace, "finetuneruns", name, {"metadata": {"labels": {"tick": str(count)}}})
            except ApiException:
                pass
            time.sleep(0.05)

    writer = threading.Thread(target=relabel, daemon=True)
    writer.start()
    try:
        # Relabelled the whole way: the operator writes status rarely (it skips reconciles that change nothing),
        # so only a contest that lasts the whole run makes sure some write meets a newer resourceVersion.
        finish_validation(runs, name)
        runs.wait_phase(name, "Running", timeout=60)
        finish_training(runs, name, mlflow_uri, tmp_path)
        assert_truthful_end(runs, name, mlflow_uri, [f"{name}-validate", f"{name}-train-0"])
    finally:
        stop.set()
        writer.join()
    reasons = [e.reason for e in runs.events(name)]
    assert all(reasons.count(r) == 1 for r in ("ValidationPassed", "PodsRunning", "ModelRegistered")), sorted(reasons)
    assert "409" in operator.logs() or "Conflict" in operator.logs()  # the fault happened


def restore_node(runs, node: str) -> None:
    documents = [d for d in yaml.safe_load_all((REPO / "hack/kwok/nodes.yaml").read_text()) if d]
    runs.kubectl("apply", "-f", "-", input=yaml.safe_dump(next(d for d in documents if d["metadata"]["name"] == node)))


def test_a_deleted_node_is_a_preemption(runs, mlflow_uri, tmp_path):
    """Its pod is deleted by the pod garbage collector (a DisruptionTarget): the attempt resumes uncharged, waits
    while the pool lacks a node, and runs once the node is back."""
    name = runs.apply(example_run("lost-node", validateInputs=False, maxRestarts=0))
    runs.wait_pods_running("lost-node-train-0", 2)
    try:
        runs.core.delete_node("kubetune-h100-1")
        runs.wait_for("the preemption", lambda: runs.status(name).get("preemptions") == 1, 120)
        runs.wait_for("Unschedulable", lambda: "cannot be scheduled" in runs.status(name).get("message", ""), 60)
    finally:
        restore_node(runs, "kubetune-h100-1")
    runs.wait_phase(name, "Running", timeout=90)
    finish_training(runs, name, mlflow_uri, tmp_path, attempt=1)
    status = assert_truthful_end(runs, name, mlflow_uri, ["lost-node-train-0", "lost-node-train-1"])
    assert (status.get("restarts", 0), status["preemptions"]) == (0, 1)


def test_fifty_runs_at_once(runs):
    names = [f"many-{i:02d}" for i in range(50)]
    cpu = {"pool": "cpu", "gpus": 0}
    for name in names:
        runs.apply(example_run(name, validateInputs=False, compute=cpu))

    def every_run_has_its_job():
        jobs = {j.metadata.name for j in runs.batch.list_namespaced_job(runs.namespace).items}
        return jobs if jobs >= {f"{n}-train-0" for n in names} else None

    jobs = runs.wait_for("a training Job for every run", every_run_has_its_job, 180)
    assert len(jobs) == 50  # and no duplicates

    def settled():
        statuses = [runs.status(n) for n in names]
        return statuses if all(s.get("phase") in ("Queued", "Running") for s in statuses) else None

    for status in runs.wait_for("every run Queued or Running", settled, 120):
        scheduled = next(c for c in status["conditions"] if c["type"] == "Scheduled")
        assert (status["phase"] == "Running") == (scheduled["status"] == "True"), status
