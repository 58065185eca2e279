"""A Running run whose training step stops advancing is Stalled (a Warning), and where the operator is
configured to, restarts from its latest checkpoint as a counted attempt; progress clears the condition."""

from datetime import timedelta

from helpers.operator_factories import NOW, make_config, make_job, make_report, make_run, make_spec
from kubetune.operator import conditions as c
from kubetune.operator.reconcile import Observed, decide

SPEC = make_spec(validateInputs=False, stallTimeoutSeconds=600)
RUNNING = Observed(training=make_job())


def running_at(start, config=make_config()):
    queued = decide(make_run(SPEC), Observed(), config, start).status
    return decide(make_run(SPEC, status=queued), RUNNING, config, start).status


def test_no_new_step_for_the_timeout_is_stalled_with_a_warning():
    running = running_at(NOW)
    assert running.phase == "Running" and c.find(running.conditions, c.STALLED) is None
    quiet = decide(make_run(SPEC, status=running), RUNNING, make_config(), NOW + timedelta(seconds=599)).status
    assert c.find(quiet.conditions, c.STALLED) is None
    stalled = decide(make_run(SPEC, status=quiet), RUNNING, make_config(), NOW + timedelta(seconds=601)).status
    condition = c.find(stalled.conditions, c.STALLED)
    assert (condition.status, condition.reason) == ("True", c.NO_PROGRESS) and stalled.phase == "Running"
    assert [t.type for t in c.transitions(quiet.conditions, stalled.conditions) if t.reason == c.NO_PROGRESS] == ["Warning"]


def test_a_new_step_clears_the_stall():
    stalled = decide(make_run(SPEC, status=running_at(NOW)), RUNNING, make_config(), NOW + timedelta(seconds=700)).status
    later = NOW + timedelta(seconds=710)
    moving = decide(make_run(SPEC, status=stalled, report=make_report(step=7, updatedAt=later.isoformat())),
                    RUNNING, make_config(), later).status
    assert (c.find(moving.conditions, c.STALLED).status, c.find(moving.conditions, c.STALLED).reason) == ("False", c.PROGRESSING)
    assert moving.last_progress_time == later


def test_where_configured_a_stalled_run_restarts_as_a_counted_attempt_and_is_not_stalled_again_at_once():
    config = make_config(defaults={"pool": "h100", "validationPool": "cpu", "maxRestarts": 2, "restartStalled": True})
    running = running_at(NOW, config)
    plan = decide(make_run(SPEC, status=running), RUNNING, config, NOW + timedelta(seconds=601))
    assert plan.delete_jobs == ["chat-train-0"] and plan.status.restarts == 1 and plan.status.phase == "Queued"
    later = NOW + timedelta(seconds=601 + 30)  # after the restart backoff
    requeued = decide(make_run(SPEC, status=plan.status), Observed(), config, later)
    assert [m["metadata"]["name"] for m in requeued.create if m["kind"] == "Job"] == ["chat-train-1"]
    again = decide(make_run(SPEC, status=requeued.status), Observed(training=make_job("chat-train-1")), config, later).status
    assert again.phase == "Running" and c.find(again.conditions, c.STALLED).status == "False"
