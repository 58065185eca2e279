"""An ended training attempt on the real control plane: a preempted one resumes at once and uncharged, a
failed one after its backoff.

The operator here resyncs every 600 s, so the next attempt's Job can only come from the reconcile the
failure itself triggers (a preemption) or from the wake-up when the backoff ends (a failure).
"""

from datetime import datetime
from pathlib import Path

import pytest
from kubernetes import client as k8s

from helpers.operator_driver import example_run
from helpers.operator_fixtures import with_resync
from kubetune.api.failures import EndedAs, termination_message

pytestmark = pytest.mark.cluster

BACKOFF = 4  # seconds before the attempt after a first failure


@pytest.fixture(scope="module")
def operator_config(operator_config, tmp_path_factory) -> Path:
    return with_resync(
        operator_config, 600, tmp_path_factory.mktemp("backoff"), restartBackoff={"initialSeconds": BACKOFF, "maxSeconds": 60}
    )


def condition(status: dict, type_: str) -> dict:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def seconds_between(earlier: str, later: datetime) -> float:
    return (later - datetime.fromisoformat(earlier.replace("Z", "+00:00"))).total_seconds()


def next_job_delay(runs, name: str, ended: dict, job: str) -> float:
    """Seconds from the status recording the ended attempt (its Scheduled condition) to the next Job's creation."""
    def created():
        return next((j for j in runs.jobs(name) if j.metadata.name == job), None)

    return seconds_between(ended["lastTransitionTime"], runs.wait_for(job, created, 30).metadata.creation_timestamp)


def test_a_failed_attempt_starts_again_when_its_backoff_ends(runs):
    name = runs.apply(example_run("flaky", validateInputs=False))
    runs.wait_pods_running("flaky-train-0", 2)
    runs.finish_pods("flaky-train-0", 1, only=0, message="RuntimeError: NCCL watchdog timeout")
    status = runs.wait_for("the restart", lambda: (s := runs.status(name)).get("restarts") == 1 and s, 30)
    restarting = condition(status, "Scheduled")
    assert restarting["reason"] == "RestartingFromCheckpoint" and f"in {BACKOFF} s" in status["message"]
    delay = next_job_delay(runs, name, restarting, "flaky-train-1")
    assert BACKOFF - 1 <= delay <= BACKOFF + 5, delay  # timestamps have whole seconds
    assert runs.status(name).get("preemptions", 0) == 0


def test_a_preempted_attempt_resumes_at_once_without_charging_the_budget(runs):
    name = runs.apply(example_run("spot", validateInputs=False, maxRestarts=0))
    runs.wait_pods_running("spot-train-0", 2)
    # Both trainers stopped on SIGTERM after writing a checkpoint, as kubetune.trainer.preemption does.
    runs.finish_pods("spot-train-0", 1, message=termination_message(EndedAs.PREEMPTED, "stopped on SIGTERM after step 7"))
    preempted = runs.wait_for("the Preempted Event", lambda: [e for e in runs.events(name) if e.reason == "Preempted"], 30)
    assert preempted[0].type == "Warning" and "after step 7" in preempted[0].message
    at = {"lastTransitionTime": preempted[0].first_timestamp.isoformat()}
    assert next_job_delay(runs, name, at, "spot-train-1") <= 2  # at once: no backoff
    runs.wait_pods_running("spot-train-1", 2, timeout=30)
    status = runs.wait_phase(name, "Running")
    assert (status.get("restarts", 0), status["preemptions"], status["maxRestarts"]) == (0, 1, 0)


def test_an_evicted_pod_is_a_preemption(runs):
    """The Eviction API (kubectl drain, the cluster autoscaler) marks the pod a DisruptionTarget: Kubernetes'
    word that the attempt was disrupted, whatever its trainer managed to write."""
    name = runs.apply(example_run("drained", validateInputs=False, maxRestarts=0))
    pods = runs.wait_pods_running("drained-train-0", 2)
    eviction = k8s.V1Eviction(metadata=k8s.V1ObjectMeta(name=pods[0].metadata.name, namespace=runs.namespace))
    runs.core.create_namespaced_pod_eviction(pods[0].metadata.name, runs.namespace, eviction)
    runs.wait_pods_running("drained-train-1", 2, timeout=60)
    status = runs.wait_phase(name, "Running")
    assert (status.get("restarts", 0), status["preemptions"]) == (0, 1)
    preempted = [e.message for e in runs.events(name) if e.reason == "Preempted"]
    # The pod's own condition while it exists; once it is gone, the Job's failure naming the rule that matched.
    assert len(preempted) == 1 and ("EvictionByEvictionAPI" in preempted[0] or "DisruptionTarget" in preempted[0]), preempted
