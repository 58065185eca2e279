from datetime import timedelta

import pytest

from helpers.operator_factories import NOW, make_config, make_job, make_report, make_run, make_spec, raw_job, raw_pod
from kubetune.operator import conditions as c
from kubetune.operator.observe import PodView, job_view
from kubetune.operator.reconcile import Observed, decide, registered, registry_unavailable
from kubetune.operator.status_io import changed, status_patch

CONFIG = make_config()


def step(run, observed=Observed(), config=CONFIG):
    return decide(run, observed, config, NOW)


def kinds(plan):
    return [(m["kind"], m["metadata"]["name"]) for m in plan.create]


def cond(status, type_):
    return c.find(status.conditions, type_)


def test_new_run_validates_first():
    plan = step(make_run())
    assert plan.status.phase == "Validating"
    assert kinds(plan) == [("Job", "chat-validate")]
    assert [e.type for e in plan.status.events] == ["CREATED"]
    assert plan.status.observed_generation == 1


def test_without_validation_creates_training_children_in_dependency_order():
    plan = step(make_run(make_spec(validateInputs=False)))
    assert plan.status.phase == "Queued"
    assert kinds(plan) == [
        ("ServiceAccount", "chat-trainer"),
        ("Role", "chat-trainer"),
        ("RoleBinding", "chat-trainer"),
        ("ConfigMap", "chat-report"),
        ("Service", "chat-workers"),
        ("Job", "chat-train-0"),
    ]
    assert cond(plan.status, c.SCHEDULED).reason == c.JOB_CREATED


def test_a_run_on_one_node_needs_no_workers_service():
    plan = step(make_run(make_spec(validateInputs=False, compute={"pool": "h100", "gpus": 8})))
    assert ("Service", "chat-workers") not in kinds(plan) and ("Job", "chat-train-0") in kinds(plan)


@pytest.mark.parametrize(
    "spec, field",
    [(make_spec(compute={"pool": "tpu"}), "spec.compute.pool"), (make_spec(trainingDuration="forever"), "spec.trainingDuration")],
)
def test_invalid_spec_fails_with_the_field(spec, field):
    plan = step(make_run(spec))
    assert plan.status.phase == "Failed" and not plan.create
    assert cond(plan.status, c.FAILED).reason == c.INVALID_SPEC
    assert field in plan.status.message
    assert plan.status.events[-1].type == "FAILED"


def test_validation_failure_names_the_pods_message():
    first = step(make_run())
    failed = make_job("chat-validate", pods=1, failed=True, pod_list=[PodView("v", "Failed", "n", terminated_message="train.jsonl:3: messages: at least two")])
    plan = step(make_run(status=first.status.model_dump(by_alias=True)), Observed(validation=failed))
    assert plan.status.phase == "Failed"
    assert "train.jsonl:3" in plan.status.message and cond(plan.status, c.FAILED).reason == c.VALIDATION_FAILED


def test_validation_passed_moves_on_to_training():
    first = step(make_run())
    plan = step(make_run(status=first.status.model_dump(by_alias=True)), Observed(validation=make_job("chat-validate", 1, "Succeeded", complete=True)))
    assert plan.status.phase == "Queued" and ("Job", "chat-train-0") in kinds(plan)
    assert [e.type for e in plan.status.events] == ["CREATED", "DATA_VALIDATED"]


def run_at(status, **kw):
    return make_run(make_spec(validateInputs=False), status=status.model_dump(by_alias=True), **kw)


def queued():
    return step(make_run(make_spec(validateInputs=False))).status


def test_all_pods_running_is_running_with_start_time_and_one_started_event():
    plan = step(run_at(queued()), Observed(training=make_job()))
    assert plan.status.phase == "Running" and plan.status.start_time == NOW
    again = step(run_at(plan.status), Observed(training=make_job()))
    assert [e.type for e in again.status.events].count("STARTED") == 1
    assert not changed(plan.status, again.status)  # a fixpoint: nothing to write


def test_a_run_is_running_only_once_every_node_runs():
    """One of two training pods running is not training: torchrun waits for every node."""
    pods = [PodView("p0", "Running", node="node-0"), PodView("p1", "Pending")]
    plan = step(run_at(queued()), Observed(training=make_job(pod_list=pods)))
    assert plan.status.phase == "Queued" and plan.status.start_time is None
    assert "STARTED" not in [e.type for e in plan.status.events]


def test_unschedulable_pods_keep_the_run_queued_with_the_schedulers_message():
    pods = [PodView("p0", "Pending", unschedulable="0/6 nodes are available: 6 Insufficient nvidia.com/gpu.")]
    plan = step(run_at(queued()), Observed(training=make_job(pod_list=pods)))
    assert plan.status.phase == "Queued"
    condition = cond(plan.status, c.SCHEDULED)
    assert condition.reason == c.UNSCHEDULABLE and "Insufficient nvidia.com/gpu" in condition.message


def test_a_running_attempt_does_not_step_back_to_queued_on_an_older_view_of_a_pod():
    """The operator's index of pods can lag a fresh read it made before: a pod seen Pending after all ran."""
    running = step(run_at(queued()), Observed(training=make_job(pods=2, phase="Running"))).status
    assert running.phase == "Running"
    pods = [PodView("p0", "Running", node="n0"), PodView("p1", "Pending", unschedulable="0/6 nodes are available")]
    plan = step(run_at(running), Observed(training=make_job(pod_list=pods)))
    assert plan.status.phase == "Running" and cond(plan.status, c.SCHEDULED).reason == c.PODS_RUNNING


def test_suspended_job_waits_for_kueue():
    plan = step(run_at(queued(), labels={"kueue.x-k8s.io/queue-name": "q"}), Observed(training=make_job(suspended=True, pods=0)))
    assert plan.status.phase == "Queued" and cond(plan.status, c.SCHEDULED).reason == c.WAITING_FOR_QUEUE


@pytest.mark.parametrize("restarts, phase, restarts_after", [(0, "Queued", 1), (2, "Failed", 2)])
def test_failed_job_restarts_within_budget(restarts, phase, restarts_after):
    status = queued().model_copy(update={"restarts": restarts})
    job = make_job(f"chat-train-{restarts}", failed=True, failure_reason="PodFailurePolicy")
    plan = step(run_at(status), Observed(training=job))
    assert (plan.status.phase, plan.status.restarts) == (phase, restarts_after)
    if phase == "Queued":
        assert "chat-train-1" in plan.status.message and plan.wake_after == 30  # the operator's default backoff
        assert kinds(step(run_at(plan.status))) == []
        following = decide(run_at(plan.status), Observed(), CONFIG, NOW + timedelta(seconds=30))
        assert ("Job", "chat-train-1") in kinds(following)
    else:
        assert cond(plan.status, c.FAILED).reason == c.RETRY_BUDGET_EXHAUSTED


def test_finished_training_registers_the_export():
    report = make_report(stage="TRAIN_FINISHED", exportUri="runs:/r1/model", mlflowRunId="r1")
    plan = step(run_at(queued(), report=report), Observed(training=make_job(complete=True, phase="Succeeded")))
    assert plan.status.phase == "Registering"
    assert plan.register.name == "main.finetunes.chat" and plan.register.source == "runs:/r1/model"
    assert plan.register.run_id == "r1"
    done = registered(plan.status, "main.finetunes.chat", "1", NOW)
    assert done.phase == "Succeeded" and done.registered_model.version == "1"
    assert [e.type for e in done.events][-2:] == ["TRAIN_FINISHED", "COMPLETED"]


def test_an_attempt_that_ran_and_finished_unseen_still_started_first():
    """The operator was down (or behind) while the pods ran: the history still says the run started, before
    what the trainer reported, and the start time is set."""
    report = make_report(stage="TRAIN_FINISHED", exportUri="runs:/r1/model", mlflowRunId="r1")
    plan = step(run_at(queued(), report=report), Observed(training=make_job(complete=True, phase="Succeeded")))
    types = [e.type for e in plan.status.events]
    assert types.count("STARTED") == 1 and types.index("STARTED") < types.index("TRAIN_FINISHED")
    assert plan.status.start_time == NOW


def test_registry_down_keeps_registering_and_writes_nothing_new_on_retry():
    report = make_report(stage="TRAIN_FINISHED", exportUri="runs:/r1/model")
    plan = step(run_at(queued(), report=report), Observed(training=make_job(complete=True, phase="Succeeded")))
    down = registry_unavailable(plan.status, "http://mlflow:5000", NOW)
    retry = step(run_at(down, report=report), Observed(training=make_job(complete=True, phase="Succeeded")))
    again = registry_unavailable(retry.status, "http://mlflow:5000", NOW + timedelta(seconds=5))
    assert again.phase == "Registering" and not changed(down, again)


def test_missing_export_is_permanent():
    plan = step(run_at(queued(), report=make_report(stage="TRAIN_FINISHED")), Observed(training=make_job(complete=True)))
    assert plan.status.phase == "Failed" and cond(plan.status, c.FAILED).reason == c.EXPORT_MISSING


def test_cancel_deletes_every_job_and_ends_cancelled():
    run = make_run(make_spec(suspend=True), status=queued().model_dump(by_alias=True))
    plan = step(run, Observed(job_names=["chat-train-0", "chat-validate"]))
    assert plan.status.phase == "Cancelled" and plan.delete_jobs == ["chat-train-0", "chat-validate"]
    assert plan.status.events[-1].type == "CANCELED"


def test_terminal_runs_are_left_alone():
    failed = step(make_run(make_spec(compute={"pool": "tpu"}))).status
    assert step(make_run(status=failed.model_dump(by_alias=True))).status == failed


def test_status_patch_nulls_unset_fields_the_report_mirror_included():
    patch = status_patch(queued())
    assert patch["phase"] == "Queued" and patch["registeredModel"] is None and patch["report"] is None


def test_job_view_reads_conditions_and_scheduler_messages():
    job = raw_job("j", [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy", "message": "exit 3"}])
    pending = raw_pod("p1", "Pending", None, conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/6 nodes"}])
    failed = raw_pod("p0", "Failed", containerStatuses=[{"state": {"terminated": {"exitCode": 3, "message": "OOM\n"}}}])
    view = job_view(job, [pending, failed])
    assert view.failed and view.failure_reason == "PodFailurePolicy"
    assert [p.name for p in view.unschedulable_pods()] == ["p1"]
    assert view.first_failure_message() == "OOM"


def test_status_patch_removes_nested_fields_that_became_unset():
    """A merge patch keeps keys it does not name: a stopped run's progress.eta must be sent as null."""
    from kubetune.api.status import FineTuneRunStatus

    status = FineTuneRunStatus.model_validate({"phase": "Cancelled", "progress": {"percent": 50, "display": "50%"},
                                               "conditions": [{"type": "Ready", "status": "False", "reason": "Cancelled",
                                                               "lastTransitionTime": NOW.isoformat()}]})
    patch = status_patch(status)
    assert patch["progress"]["eta"] is None and patch["progress"]["percent"] == 50
    assert "observedGeneration" not in patch["conditions"][0]  # list items carry no nulls: the list is replaced
