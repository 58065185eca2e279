"""A failure the trainer calls the user's ends the run at once with its message; any other resumes from
the latest checkpoint within the budget. The trainer's word reaches the operator as a marked termination
message, since torchrun (the pod's command) exits 1 whatever its workers exit with."""

from helpers.operator_factories import NOW, make_config, make_job, make_spec, raw_pod, make_run
from kubetune.api.failures import USER_ERROR_MARK, read_termination_message, user_error_message
from kubetune.operator import conditions as c
from kubetune.operator.observe import pod_view
from kubetune.operator.reconcile import Observed, decide

CONFIG = make_config()


def failed_pod(exit_code: int, message: str | None) -> dict:
    terminated = {"exitCode": exit_code, **({"message": message} if message is not None else {})}
    return raw_pod("chat-train-0-0", "Failed", containerStatuses=[{"state": {"terminated": terminated}}])


def test_the_mark_round_trips_and_fits_the_kubelets_limit():
    message = user_error_message("spec.customWeightsPath: 'x' names no complete checkpoint")
    assert read_termination_message(message) == (True, "spec.customWeightsPath: 'x' names no complete checkpoint")
    assert read_termination_message("Traceback …") == (False, "Traceback …")
    assert len(user_error_message("é" * 5000).encode()) <= 4096


def test_pods_say_whether_a_failure_is_the_users():
    marked = pod_view(failed_pod(1, USER_ERROR_MARK + "train.jsonl:3: bad role\n"))
    assert marked.user_error and marked.terminated_message == "train.jsonl:3: bad role"
    assert pod_view(failed_pod(2, None)).user_error  # the trainer run without torchrun in front of it
    assert not pod_view(failed_pod(1, "NCCL timeout")).user_error
    assert not pod_view(failed_pod(137, None)).user_error


def test_a_user_error_fails_the_run_at_once_without_a_restart():
    queued = decide(make_run(make_spec(validateInputs=False)), Observed(), CONFIG, NOW).status
    job = make_job(failed=True, pod_list=[pod_view(failed_pod(1, user_error_message("contextLength 9000 is too long")))])
    status = decide(make_run(make_spec(validateInputs=False), status=queued), Observed(training=job), CONFIG, NOW).status
    assert (status.phase, status.restarts) == ("Failed", 0)
    failed = c.find(status.conditions, c.FAILED)
    assert failed.reason == c.USER_ERROR and failed.message.endswith("contextLength 9000 is too long")
    assert "[kubetune:user-error]" not in status.message


def test_a_transient_failure_still_resumes():
    queued = decide(make_run(make_spec(validateInputs=False)), Observed(), CONFIG, NOW).status
    job = make_job(failed=True, pod_list=[pod_view(failed_pod(1, "RuntimeError: NCCL watchdog timeout"))])
    status = decide(make_run(make_spec(validateInputs=False), status=queued), Observed(training=job), CONFIG, NOW).status
    assert (status.phase, status.restarts) == ("Queued", 1)
