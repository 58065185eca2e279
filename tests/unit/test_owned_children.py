"""Children are owned, not guessed: a deleted training Job is a counted restart with a Warning, and a Job
another run of the same name left behind is never adopted."""

from datetime import timedelta

from helpers.operator_factories import NOW, make_config, make_job, make_report, make_run, make_spec
from kubetune.operator import conditions as c
from kubetune.operator.reconcile import Observed, decide

SPEC = make_spec(validateInputs=False)


def step(status, observed=Observed(), config=make_config(), now=NOW, **kw):
    return decide(make_run(SPEC, status=status, **kw), observed, config, now)


def test_a_deleted_training_job_is_a_counted_restart_with_a_warning():
    queued = step(None).status
    running = step(queued, Observed(training=make_job())).status
    lost = step(running)  # the Job is gone
    assert (lost.status.phase, lost.status.restarts) == ("Queued", 1)
    scheduled = c.find(lost.status.conditions, c.SCHEDULED)
    assert scheduled.reason == c.JOB_LOST and "chat-train-0 was deleted" in scheduled.message
    assert [t.type for t in c.transitions(running.conditions, lost.status.conditions) if t.reason == c.JOB_LOST] == ["Warning"]
    assert step(lost.status).create == [] and lost.wake_after == 30  # a restart's backoff, as after a failure
    following = step(lost.status, now=NOW + timedelta(seconds=30))
    assert [m["metadata"]["name"] for m in following.create if m["kind"] == "Job"] == ["chat-train-1"]


def test_deleting_jobs_cannot_escape_the_retry_budget():
    queued = step(None).status
    last = queued.model_copy(update={"restarts": 3})
    running = step(last, Observed(training=make_job("chat-train-3"))).status
    ended = step(running).status
    assert ended.phase == "Failed" and c.find(ended.conditions, c.FAILED).reason == c.RETRY_BUDGET_EXHAUSTED


def test_a_job_of_another_run_with_the_same_name_is_never_adopted():
    queued = step(None).status
    plan = step(queued.model_copy(update={"conditions": []}), Observed(foreign_jobs=["chat-train-0"]))
    assert plan.status.phase == "Failed" and plan.create == []
    failed = c.find(plan.status.conditions, c.FAILED)
    assert failed.reason == c.CHILD_REJECTED and "kubectl delete job chat-train-0" in failed.message


def test_registration_goes_on_when_the_finished_job_is_deleted():
    queued = step(None).status
    finished = make_report(stage="TRAIN_FINISHED", step=100, totalSteps=100, exportUri="runs:/r/model", mlflowRunId="r")
    registering = step(queued, Observed(training=make_job(complete=True, phase="Succeeded")), report=finished)
    assert registering.status.phase == "Registering"
    again = step(registering.status, report=finished)
    assert again.status.phase == "Registering" and again.register is not None and again.status.restarts == 0


def test_the_retry_budget_is_the_runs_own_within_the_operators_limit():
    config = make_config()
    own = decide(make_run(make_spec(validateInputs=False, maxRestarts=0)), Observed(), config, NOW).status
    assert own.max_restarts == 0
    failed = decide(make_run(make_spec(validateInputs=False, maxRestarts=0), status=own),
                    Observed(training=make_job(failed=True)), config, NOW).status
    assert failed.phase == "Failed" and c.find(failed.conditions, c.FAILED).reason == c.RETRY_BUDGET_EXHAUSTED
    assert decide(make_run(SPEC), Observed(), config, NOW).status.max_restarts == config.defaults.max_restarts
    too_many = decide(make_run(make_spec(validateInputs=False, maxRestarts=50)), Observed(), config, NOW).status
    failed = c.find(too_many.conditions, c.FAILED)
    assert failed.reason == c.INVALID_SPEC and "spec.maxRestarts: must be at most 10" in failed.message
