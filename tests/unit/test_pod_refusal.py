"""Which refusals of a Job's pods fail a run and which keep it waiting (operator/observe.pod_refusal)."""

import pytest

from kubetune.operator.observe import awaits_pods, pod_refusal


def event(message: str, at: str = "2026-11-28T10:00:00Z", reason: str = "FailedCreate") -> dict:
    return {"reason": reason, "message": message, "lastTimestamp": at}


@pytest.mark.parametrize(
    ("message", "waits"),
    [
        ('Error creating: pods "r-validate-x" is forbidden: violates PodSecurity "restricted:latest": privileged', False),
        ('Error creating: admission webhook "deny.example.com" denied the request: no GPUs on Fridays', False),
        ('Error creating: pods "r" is forbidden: ValidatingAdmissionPolicy \'freeze\' denied request: frozen', False),
        ('Error creating: pods "r" is forbidden: maximum memory usage per Container is 1Gi, but limit is 2Gi', False),
        ('Error creating: pods "r" is forbidden: exceeded quota: gpus, requested: nvidia.com/gpu=8, used: 8, limited: 8', True),
        ('Error creating: Internal error occurred: failed calling webhook "x.example.com": context deadline exceeded', True),
        ('Error creating: pods "r" is forbidden: error looking up service account ns/r-trainer: serviceaccount "r-trainer" not found', True),
    ],
)
def test_refusals_that_come_back_the_same_fail_and_the_others_wait(message, waits):
    refusal = pod_refusal([event(message)])
    assert refusal.waits is waits
    assert refusal.message == message.removeprefix("Error creating: ")


def test_the_newest_refusal_counts_and_other_events_do_not():
    events = [
        event("Error creating: exceeded quota: pods", at="2026-11-28T10:00:00Z"),
        event('Error creating: violates PodSecurity "restricted:latest"', at="2026-11-28T10:05:00Z"),
        event("Created pod: r-0", at="2026-11-28T10:06:00Z", reason="SuccessfulCreate"),
    ]
    assert pod_refusal(events).message == 'violates PodSecurity "restricted:latest"'
    assert pod_refusal([event("Created pod: r-0", reason="SuccessfulCreate")]) is None
    assert pod_refusal([]) is None


def test_events_are_read_only_for_a_running_job_without_pods():
    job = {"metadata": {"name": "j"}, "spec": {}, "status": {}}
    assert awaits_pods(job, [])
    assert not awaits_pods(job, [{"metadata": {"name": "p"}}])
    assert not awaits_pods({**job, "spec": {"suspend": True}}, [])  # Kueue holds it: no pods are wanted yet
    done = {**job, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert not awaits_pods(done, [])
