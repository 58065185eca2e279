"""The operator follows a run's Jobs and pods as they change, not at its resync timer.

The operator here resyncs every 600 s: its timer runs once when a run appears and not
again during a test, so every step below is the work of the Job and pod watch handlers.
"""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from helpers.mlflow_server import logged_export
from helpers.operator_fixtures import with_resync
from helpers.operator_driver import example_run
from kubetune.api.progress import TrainerReport
from kubetune.operator.runner import FINALIZER

pytestmark = pytest.mark.cluster

PROMPTLY = 10  # seconds; the timer would take 600


@pytest.fixture(scope="module")
def operator_config(operator_config, tmp_path_factory) -> Path:
    """The tests' operator config with a resync timer far too slow to be what moves the runs."""
    return with_resync(operator_config, 600, tmp_path_factory.mktemp("slow-resync"))


def finished_report(mlflow_uri: str, tmp_path: Path, tags: dict[str, str]) -> TrainerReport:
    """The trainer's last report, with an MLflow run holding the exported model."""
    run_id, export = logged_export(mlflow_uri, tmp_path, tags)
    return TrainerReport.model_validate(
        {
            "updatedAt": datetime.now(UTC).isoformat(),
            "stage": "TRAIN_FINISHED",
            "step": 56,
            "totalSteps": 56,
            "mlflowRunId": run_id,
            "exportUri": export,
        }
    )


def unschedulable(runs, name: str):
    status = runs.status(name)
    scheduled = next((c for c in status.get("conditions", []) if c["type"] == "Scheduled"), {})
    return status if scheduled.get("reason") == "Unschedulable" else None


def job_complete(runs, job: str) -> bool:
    conditions = runs.batch.read_namespaced_job(job, runs.namespace).status.conditions or []
    return any(c.type == "Complete" and c.status == "True" for c in conditions)


def test_run_follows_its_pods_and_its_job_at_once(runs, mlflow_uri, tmp_path):
    first = runs.apply(example_run("first", validateInputs=False))
    runs.wait_phase(first, "Running")
    name = runs.apply(example_run("follow", validateInputs=False))  # the same two h100 nodes: it waits
    runs.wait_for("follow unschedulable", lambda: unschedulable(runs, name), 30)
    runs.custom.patch_namespaced_custom_object(
        "kubetune.io", "v1alpha1", runs.namespace, "finetuneruns", first, {"spec": {"suspend": True}}
    )
    # Nothing touches `follow` itself now: only its pods, once the scheduler places them, can tell it.
    runs.wait_pods_running("follow-train-0", 2, timeout=30)
    runs.wait_phase(name, "Running", timeout=PROMPTLY)

    runs.report(name, finished_report(mlflow_uri, tmp_path, runs.tags(name)))
    runs.wait_for("the report folded", lambda: runs.status(name).get("progress", {}).get("step") == 56, PROMPTLY)
    assert runs.status(name)["phase"] == "Running"  # the report alone finishes nothing: the Job must complete
    runs.finish_pods("follow-train-0", 0)
    runs.wait_for("the Job complete", lambda: job_complete(runs, "follow-train-0"), 30)
    # Running -> Registering -> Succeeded: the Job's (and its pods') events.
    status = runs.wait_phase(name, "Succeeded", timeout=PROMPTLY)
    assert status["registeredModel"]["name"] == "main.finetunes.follow"

    # kopf only watches the children: no finalizer, no annotation, no patch of its own on them.
    children = runs.jobs(name) + runs.pods("follow-train-0")
    assert children
    for child in children:
        assert FINALIZER not in (child.metadata.finalizers or [])
        assert not any("kopf" in f for f in child.metadata.finalizers or []), child.metadata.finalizers
        assert not any("kopf" in key for key in child.metadata.annotations or {}), child.metadata.annotations


def test_failed_and_deleted_jobs_are_noticed_at_once(runs):
    name = runs.apply(example_run("bumpy", validateInputs=False, compute={"pool": "a10g", "gpus": 1}))
    runs.wait_pods_running("bumpy-train-0", 1)
    runs.wait_phase(name, "Running", timeout=PROMPTLY)

    runs.finish_pods("bumpy-train-0", 137)  # Job Failed -> the next attempt
    runs.wait_for("the restart", lambda: runs.status(name).get("restarts") == 1, PROMPTLY)
    runs.wait_pods_running("bumpy-train-1", 1, timeout=30)
    runs.wait_phase(name, "Running", timeout=PROMPTLY)

    # A Job that Kueue holds (suspended, and this cluster has no Kueue) has no pods: when it is
    # deleted, only its own DELETED event can tell the run.
    waiting = example_run("waiting", validateInputs=False, compute={"pool": "a10g", "gpus": 1})
    waiting["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": "nowhere"}
    name = runs.apply(waiting)
    # (the run waits for Kueue to admit the Job, or warns that this cluster has none: KueueNotInstalled)
    runs.wait_for("the Job held by Kueue", lambda: "Kueue" in runs.status(name).get("message", ""), 30)
    [job] = runs.jobs(name)
    assert job.spec.suspend and runs.pods(job.metadata.name) == []
    runs.batch.delete_namespaced_job(job.metadata.name, runs.namespace, propagation_policy="Background")

    def recreated():
        return [j for j in runs.jobs(name) if j.metadata.uid != job.metadata.uid]

    [again] = runs.wait_for("the deleted Job replaced", recreated, PROMPTLY)
    # A lost Job is a counted restart with a Warning, never a silent re-creation under the same attempt.
    assert again.metadata.name == "waiting-train-1" and again.spec.suspend
    assert runs.status(name)["restarts"] == 1
    assert "JobLost" in [e.reason for e in runs.events(name) if e.type == "Warning"]
