"""Conditions tell the truth at every phase: nothing stays under way once a run has ended, Succeeded is
False with the reason on failure and cancel, Ready summarises the phase (what `kubectl wait` and GitOps
health checks read), progress keeps how far a stopped run got without an ETA, and the restating
conditions post no Events of their own."""

from helpers.operator_factories import NOW, make_job, make_report, make_run, make_spec
from kubetune.operator import conditions as c
from kubetune.operator.observe import PodView
from kubetune.operator.reconcile import Observed, decide, registered

STILL_UNDER_WAY = c.IN_PROGRESS_REASONS


def step(run, observed=Observed()):
    from helpers.operator_factories import make_config

    return decide(run, observed, make_config(), NOW)


def cond(status, type_):
    return c.find(status.conditions, type_)


def test_ready_follows_the_phase_and_is_true_only_for_a_succeeded_run():
    pending = step(make_run()).status
    assert (cond(pending, c.READY).status, cond(pending, c.READY).reason) == ("False", "Validating")
    running = step(make_run(make_spec(validateInputs=False), status=pending.model_dump(by_alias=True)),
                   Observed(training=make_job())).status
    assert running.phase == "Running" and cond(running, c.READY).reason == "Running"
    done = registered(running, "main.finetunes.chat", "1", NOW)
    assert (cond(done, c.READY).status, cond(done, c.READY).reason) == ("True", "Succeeded")
    assert cond(done, c.SUCCEEDED).status == "True"


def test_a_run_failed_while_validating_is_not_still_validating():
    validating = step(make_run()).status
    assert cond(validating, c.INPUTS_VALIDATED).reason == c.VALIDATION_RUNNING
    failed_pod = PodView("chat-validate-0", "Failed", node="n", terminated_message="train.jsonl:3: bad role")
    plan = step(make_run(status=validating.model_dump(by_alias=True)),
                Observed(validation=make_job("chat-validate", pod_list=[failed_pod], failed=True)))
    status = plan.status
    assert status.phase == "Failed"
    assert (cond(status, c.SUCCEEDED).status, cond(status, c.SUCCEEDED).reason) == ("False", c.RUN_FAILED)
    assert "train.jsonl:3: bad role" in cond(status, c.SUCCEEDED).message
    assert (cond(status, c.READY).status, cond(status, c.READY).reason) == ("False", "Failed")
    assert all(condition.reason not in STILL_UNDER_WAY for condition in status.conditions), status.conditions


def test_a_cancelled_run_is_not_scheduled_and_keeps_its_progress_without_an_eta():
    spec = make_spec(validateInputs=False)
    queued = step(make_run(spec)).status
    running = step(make_run(spec, status=queued, report=make_report(step=50, totalSteps=100, tokensPerSecond=1.0,
                                                                    tokensSeen=50, tokensTotal=100)),
                   Observed(training=make_job())).status
    assert running.phase == "Running" and cond(running, c.SCHEDULED).status == "True"
    assert "ETA" in running.progress.display
    cancelled = step(make_run(make_spec(validateInputs=False, suspend=True), status=running),
                     Observed(job_names=["chat-train-0"])).status
    assert cancelled.phase == "Cancelled"
    assert (cond(cancelled, c.SCHEDULED).status, cond(cancelled, c.SCHEDULED).reason) == ("False", c.RUN_ENDED)
    assert (cond(cancelled, c.SUCCEEDED).status, cond(cancelled, c.SUCCEEDED).reason) == ("False", c.RUN_CANCELLED)
    assert cancelled.progress.percent == 50 and cancelled.progress.display == "50%" and cancelled.progress.eta is None


def test_restating_conditions_post_no_events_of_their_own():
    validating = step(make_run()).status
    failed = step(make_run(make_spec(compute={"pool": "tpu"}), status=validating.model_dump(by_alias=True))).status
    reasons = [t.reason for t in c.transitions(validating.conditions, failed.conditions)]
    assert reasons == [c.INVALID_SPEC]
