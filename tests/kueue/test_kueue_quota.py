"""A ClusterQueue's quota holds a run back on the real control plane: Kueue never admits a Job that asks for more
than the quota, and the run stays Queued saying that it waits for Kueue, in which queue, and Kueue's reason."""

import time

import pytest

from helpers.operator_driver import example_run

pytestmark = [pytest.mark.cluster, pytest.mark.kueue, pytest.mark.slow]


def test_a_run_beyond_the_quota_stays_queued(runs, cluster_queue):
    queue = cluster_queue(gpus=8)  # the run asks 2 x 8 GPUs
    run = example_run("big", validateInputs=False)
    run["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": queue}
    name = runs.apply(run)
    runs.wait_for("the training Job", lambda: runs.jobs(name), 30)
    status = runs.wait_phase(name, "Queued")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # Kueue has had its chance and still holds it
        status = runs.status(name)
        assert status["phase"] == "Queued" and not runs.pods("big-train-0"), status
        time.sleep(1)
    [job] = runs.jobs(name)
    assert job.spec.suspend is True
    # Created suspended, it never had a pod (the Job controller would have said SuccessfulCreate).
    assert not [e for e in runs.events("big-train-0") if e.reason == "SuccessfulCreate"]
    scheduled = next(c for c in status["conditions"] if c["type"] == "Scheduled")
    assert scheduled["reason"] == "WaitingForQueue"
    # In Kueue's words, from its Workload: the request is beyond what the ClusterQueue can ever give.
    assert status["message"].startswith(f"Job big-train-0 waits for Kueue to admit it (queue {queue}): ")
    assert "insufficient quota for nvidia.com/gpu" in status["message"], status["message"]
    assert "request (16) > maximum capacity (8)" in status["message"], status["message"]
