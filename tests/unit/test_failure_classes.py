"""What an ended attempt means decides what happens next (kubetune.api.failures):
- a user error ends the run at once with its message;
- a preemption (Kubernetes' DisruptionTarget, or every pod stopped on SIGTERM with a checkpoint) resumes at
  once as the next attempt, counted in status.preemptions and not charged to the retry budget;
- any other failure resumes within the budget after a doubling backoff.
The trainer's word reaches the operator as a marked termination message, since torchrun (the pod's
command) exits 1 whatever its workers exit with."""

from datetime import timedelta

import pytest

from helpers.operator_factories import NOW, make_config, make_job, make_spec, raw_pod, make_run
from kubetune.api.failures import (
    PREEMPTED_MARK, USER_ERROR_MARK, EndedAs, read_termination_message, termination_message, user_error_message,
)
from kubetune.api.status import FineTuneRunStatus
from kubetune.operator import conditions as c
from kubetune.operator.observe import job_view, pod_view
from kubetune.operator.reconcile import Observed, backoff_left, decide, restart_delay

CONFIG = make_config(defaults={"pool": "h100", "maxRestarts": 2, "restartBackoff": {"initialSeconds": 30, "maxSeconds": 100}})
SPEC = make_spec(validateInputs=False)


def failed_pod(exit_code: int, message: str | None, name: str = "chat-train-0-0", **status) -> dict:
    terminated = {"exitCode": exit_code, **({"message": message} if message is not None else {})}
    return raw_pod(name, "Failed", containerStatuses=[{"state": {"terminated": terminated}}], **status)


def disrupted(reason: str) -> dict:
    return {"type": "DisruptionTarget", "status": "True", "reason": reason, "message": "preempted by a higher priority pod"}


def queued() -> FineTuneRunStatus:
    return decide(make_run(SPEC), Observed(), CONFIG, NOW).status


def after(job, status=None, now=NOW):
    return decide(make_run(SPEC, status=(status or queued()).model_dump(by_alias=True)), Observed(training=job), CONFIG, now)


def test_the_marks_round_trip_and_fit_the_kubelets_limit():
    message = user_error_message("spec.customWeightsPath: 'x' names no complete checkpoint")
    assert read_termination_message(message) == (EndedAs.USER_ERROR, "spec.customWeightsPath: 'x' names no complete checkpoint")
    assert read_termination_message(termination_message(EndedAs.PREEMPTED, "at step 7")) == (EndedAs.PREEMPTED, "at step 7")
    assert read_termination_message("Traceback …") == (EndedAs.FAULT, "Traceback …")
    assert len(user_error_message("é" * 5000).encode()) <= 4096


def test_pods_say_how_their_attempt_ended():
    marked = pod_view(failed_pod(1, USER_ERROR_MARK + "train.jsonl:3: bad role\n"))
    assert marked.ended_as is EndedAs.USER_ERROR and marked.terminated_message == "train.jsonl:3: bad role"
    assert pod_view(failed_pod(2, None)).ended_as is EndedAs.USER_ERROR  # the trainer run without torchrun in front of it
    assert pod_view(failed_pod(143, None)).ended_as is EndedAs.FAULT  # any container killed by SIGTERM: no checkpoint implied
    assert pod_view(failed_pod(1, PREEMPTED_MARK + "stopped")).ended_as is EndedAs.PREEMPTED
    assert pod_view(failed_pod(1, "NCCL timeout")).ended_as is EndedAs.FAULT
    assert pod_view(failed_pod(137, None)).ended_as is EndedAs.FAULT
    assert pod_view(raw_pod("running")).ended_as is None
    evicted = pod_view(failed_pod(137, None, conditions=[disrupted("EvictionByEvictionAPI")]))
    assert evicted.disrupted == "EvictionByEvictionAPI: preempted by a higher priority pod"


def test_a_user_error_fails_the_run_at_once_without_a_restart():
    job = make_job(failed=True, pod_list=[pod_view(failed_pod(1, user_error_message("contextLength 9000 is too long")))])
    status = after(job).status
    assert (status.phase, status.restarts) == ("Failed", 0)
    failed = c.find(status.conditions, c.FAILED)
    assert failed.reason == c.USER_ERROR and failed.message.endswith("contextLength 9000 is too long")
    assert "[kubetune:user-error]" not in status.message


def test_a_transient_failure_resumes_after_a_backoff_charged_to_the_budget():
    job = make_job(failed=True, pod_list=[pod_view(failed_pod(1, "RuntimeError: NCCL watchdog timeout"))])
    plan = after(job)
    assert (plan.status.phase, plan.status.restarts, plan.status.preemptions) == ("Queued", 1, 0)
    assert c.find(plan.status.conditions, c.SCHEDULED).reason == c.RESTARTING
    assert "in 30 s" in plan.status.message and plan.wake_after == 30

    waiting = decide(make_run(SPEC, status=plan.status.model_dump(by_alias=True)), Observed(), CONFIG, NOW + timedelta(seconds=10))
    assert waiting.create == [] and waiting.wake_after == 20  # no Job before the backoff ends
    due = decide(make_run(SPEC, status=plan.status.model_dump(by_alias=True)), Observed(), CONFIG, NOW + timedelta(seconds=30))
    assert due.create[-1]["metadata"]["name"] == "chat-train-1" and due.wake_after is None


def test_the_backoff_doubles_up_to_its_maximum():
    assert [restart_delay(n, CONFIG) for n in (1, 2, 3, 4)] == [30, 60, 100, 100]


@pytest.mark.parametrize(
    "pods, failure_message",
    [
        # Kubernetes' word: a pod preempted, evicted or on a lost node, whatever its trainer managed to do.
        ([failed_pod(137, None, conditions=[disrupted("PreemptionByScheduler")])], None),
        # The pod is gone already; the Job's failure names the rule that matched.
        ([], "Pod team-a/chat-train-0-0 has condition DisruptionTarget matching FailJob rule at index 0"),
        # Every pod that ended stopped on SIGTERM with a checkpoint (a pod deleted by hand).
        ([failed_pod(1, PREEMPTED_MARK + "stopped after step 7", name=f"chat-train-0-{i}") for i in range(2)], None),
    ],
)
def test_a_preemption_resumes_at_once_without_charging_the_budget(pods, failure_message):
    job = job_view({"metadata": {"name": "chat-train-0"}, "spec": {}, "status": {"conditions": [
        {"type": "Failed", "status": "True", "reason": "PodFailurePolicy", "message": failure_message}]}}, pods)
    plan = after(job)
    status = plan.status
    assert (status.phase, status.restarts, status.preemptions, status.attempt) == ("Queued", 0, 1, 1)
    assert c.find(status.conditions, c.SCHEDULED).reason == c.PREEMPTED and plan.wake_after is None
    assert "not charged to the retry budget" in status.message
    again = decide(make_run(SPEC, status=status.model_dump(by_alias=True)), Observed(), CONFIG, NOW)
    assert again.create[-1]["metadata"]["name"] == "chat-train-1"  # at once, no backoff


def test_preemptions_do_not_touch_an_exhausted_budget():
    status = queued().model_copy(update={"restarts": 2})
    job = make_job("chat-train-2", failed=True, pod_list=[pod_view(failed_pod(137, None, conditions=[disrupted("DeletionByPodGC")]))])
    resumed = after(job, status).status
    assert (resumed.phase, resumed.restarts, resumed.preemptions) == ("Queued", 2, 1)
    crashed = make_job("chat-train-3", failed=True, pod_list=[pod_view(failed_pod(1, "segfault"))])
    ended = after(crashed, resumed).status
    assert ended.phase == "Failed" and c.find(ended.conditions, c.FAILED).reason == c.RETRY_BUDGET_EXHAUSTED


def test_one_pod_that_crashed_makes_the_attempt_a_failure_even_when_its_peer_checkpointed():
    pods = [failed_pod(1, "RuntimeError: CUDA error", name="chat-train-0-0"),
            failed_pod(1, PREEMPTED_MARK + "stopped after step 7", name="chat-train-0-1")]
    job = job_view({"metadata": {"name": "chat-train-0"}, "spec": {}, "status": {"conditions": [
        {"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}]}}, pods)
    status = after(job).status
    assert (status.restarts, status.preemptions) == (1, 0)


def test_no_backoff_after_a_preemption_and_none_before_the_first_attempt():
    assert backoff_left(queued(), CONFIG, NOW) == 0
