"""Kueue preempts a running run for one of higher priority on the real control plane: Kueue suspends its
training Job, the run goes back to Queued with a Warning Event and nothing charged to its retry budget, and
when Kueue admits it again its new pods run and the trainer resumes from the run's latest checkpoint
(kubetune.trainer.recipe resumes from its own `latest` on every start). Kubernetes decides which of two ways
that goes: the same Job admitted again, or, when the pods Kueue stopped failed the Job first (its
podFailurePolicy counts their SIGTERM exit), the next attempt, itself queued; the test accepts either and
checks what both must keep."""

import pytest

from helpers.operator_driver import example_run
from helpers.operator_factories import make_report
from kubetune.api.progress import CheckpointRef
from kubetune.api.trainer_config import TrainerConfig

pytestmark = [pytest.mark.cluster, pytest.mark.kueue, pytest.mark.slow]


def queued_run(name: str, queue: str, priority: str) -> dict:
    run = example_run(name, validateInputs=False, maxRestarts=0)
    run["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": queue, "kueue.x-k8s.io/priority-class": priority}
    return run


def test_a_run_kueue_preempts_waits_in_its_queue_and_resumes_uncharged(runs, cluster_queue):
    queue = cluster_queue(gpus=16)  # room for one 2 x 8 GPU run
    low = runs.apply(queued_run("low", queue, "low"))
    runs.wait_pods_running("low-train-0", 2)
    runs.wait_phase(low, "Running")
    checkpoint = CheckpointRef(name="ep0-ba7", path="/checkpoints/low/ep0-ba7", step=7)
    runs.report(low, make_report(step=7, checkpoints=[checkpoint]))
    runs.wait_for("the checkpoint in status", lambda: runs.status(low).get("checkpoints"), 30)
    config_before = runs.trainer_config("low-train-0")

    high = runs.apply(queued_run("high", queue, "high"))
    preempted = runs.wait_for("the Warning", lambda: [e for e in runs.events(low) if e.reason == "KueuePreempted"], 60)
    assert preempted[0].type == "Warning"
    assert "Kueue suspended Job low-train-0 (Preempted to accommodate a workload" in preempted[0].message
    assert "ep0-ba7" in preempted[0].message
    runs.wait_pods_running("high-train-0", 2, timeout=60)
    runs.wait_phase(high, "Running")
    status = runs.status(low)
    assert status["phase"] == "Queued" and status.get("restarts", 0) == 0 and not runs.pods("low-train-0")

    # The higher-priority run finishes; Kueue admits the low run again and its new pods run.
    runs.finish_pods("high-train-0", 0)
    status = runs.wait_for("low Running again", lambda: (s := runs.status(low)).get("phase") == "Running" and s, 120)
    assert status.get("restarts", 0) == 0 and status["maxRestarts"] == 0  # nothing charged to a budget of 0
    jobs = sorted(j.metadata.name for j in runs.jobs(low))
    if jobs == ["low-train-0"]:
        # Kueue admitted the same Job again (its stopped pods had not failed it).
        assert status.get("preemptions", 0) == 0
    else:
        # The pods Kueue stopped exited non-zero and the Job's podFailurePolicy failed it: the next attempt,
        # queued in Kueue again, uncharged, as a preemption the operator restarts.
        assert jobs == ["low-train-0", "low-train-1"] and status["preemptions"] == 1, (jobs, status)
        [restarted] = [e.message for e in runs.events(low) if e.reason == "Preempted"]
        assert "Kueue suspended it" in restarted and "resuming from its checkpoint as attempt 1" in restarted
    runs.wait_pods_running(jobs[-1], 2)
    # Either way the new pods' trainer resumes from the run's latest checkpoint: the same run and checkpoint
    # root (kubetune.trainer.recipe resumes from its own `latest`), only the attempt number may differ.
    assert without_attempt(runs.trainer_config(jobs[-1])) == without_attempt(config_before)
    assert [c["name"] for c in status["checkpoints"]] == ["ep0-ba7"]
    assert [e.reason for e in runs.events(low)].count("KueuePreempted") == 1


def without_attempt(config: TrainerConfig) -> dict:
    return config.model_dump(exclude={"attempt"})
