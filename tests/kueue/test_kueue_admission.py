"""A run in a Kueue queue on the real control plane with Kueue running: both of its Jobs wait suspended with
Kueue's labels until Kueue admits them, and the run says so (Validating, then Queued), then runs."""

import time

import pytest

from helpers.kueue_controller import GROUP, VERSION, hold
from helpers.operator_driver import example_run

pytestmark = [pytest.mark.cluster, pytest.mark.kueue, pytest.mark.slow]


def condition(status: dict, type_: str) -> dict:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def stays(runs, name: str, seconds: float, check) -> dict:
    """The run's status satisfies check for the whole time (Kueue, held, admits nothing)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = runs.status(name)
        assert check(status), status
        time.sleep(0.5)
    return status


def test_both_jobs_wait_for_kueue_then_the_run_runs(runs, cluster_queue, kueue_objects, namespace):
    queue = cluster_queue(gpus=16, hold=True)
    run = example_run("queued")
    run["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": queue, "kueue.x-k8s.io/priority-class": "high"}
    name = runs.apply(run)

    # Validation waits in the held queue, suspended, with Kueue's labels.
    runs.wait_for("the validation Job", lambda: [j for j in runs.jobs(name) if j.metadata.name == "queued-validate"], 30)
    status = stays(runs, name, 3, lambda s: s.get("phase") == "Validating" and not runs.pods("queued-validate"))
    assert condition(status, "InputsValidated")["reason"] == "WaitingForQueue"
    # with Kueue's reason, from the validation Job's Workload
    assert status["message"].startswith(f"validation Job queued-validate waits for Kueue to admit it (queue {queue}): ")
    assert f"ClusterQueue {namespace} is inactive" in status["message"], status["message"]
    [validation] = [j for j in runs.jobs(name) if j.metadata.name == "queued-validate"]
    assert validation.spec.suspend is True
    assert validation.metadata.labels["kueue.x-k8s.io/priority-class"] == "high"

    # Kueue admits it (unsuspends it): its pod runs and passes; then the training Job waits in the held queue.
    hold(kueue_objects, namespace, False)
    runs.wait_pods_running("queued-validate", 1, timeout=60)
    hold(kueue_objects, namespace, True)
    runs.finish_pods("queued-validate", 0)
    status = runs.wait_phase(name, "Queued", timeout=60)
    status = stays(runs, name, 3, lambda s: s.get("phase") == "Queued" and not runs.pods("queued-train-0"))
    assert condition(status, "Scheduled")["reason"] == "WaitingForQueue"
    assert f"Job queued-train-0 waits for Kueue to admit it (queue {queue}): " in status["message"]
    [training] = [j for j in runs.jobs(name) if j.metadata.name == "queued-train-0"]
    assert training.spec.suspend is True and training.metadata.labels["kueue.x-k8s.io/queue-name"] == queue

    # Admitted: all its pods run and so does the run; Kueue's Workload says which queue admitted it.
    hold(kueue_objects, namespace, False)
    runs.wait_pods_running("queued-train-0", 2, timeout=60)
    status = runs.wait_phase(name, "Running", timeout=60)
    assert condition(status, "Scheduled")["reason"] == "PodsRunning" and status.get("restarts", 0) == 0
    workloads = kueue_objects.list_namespaced_custom_object(GROUP, VERSION, namespace, "workloads")["items"]
    admitted = {w["spec"]["priorityClassRef"]["name"] if w["spec"].get("priorityClassRef") else None
                for w in workloads if (w.get("status") or {}).get("admission")}
    assert admitted == {"high"}, workloads
