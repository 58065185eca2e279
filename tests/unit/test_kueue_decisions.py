"""Kueue in the pure layer: the labels and suspension of both Jobs, the priority class passed through and
checked, the decisions for a Job waiting in a queue, preempted by Kueue, or queued on a cluster without Kueue,
and the cached discovery of Kueue's API group."""

import pytest

from helpers.operator_factories import NOW, REF, make_config, make_job, make_report, make_run, make_spec
from kubetune.api.progress import CheckpointRef
from kubetune.api.spec import FineTuneRunSpec
from kubetune.operator import conditions as c
from kubetune.operator.builders.kueue import check_priority, priority_class, validation_queue
from kubetune.operator.builders.validation import build_validation_job
from kubetune.operator.kueue import KUEUE_GROUP, KueueDiscovery
from kubetune.operator.observe import kueue_reason
from kubetune.operator.reconcile import Observed, decide

QUEUE = {"kueue.x-k8s.io/queue-name": "team-a"}
CONFIG = make_config(kueue={"allowedPriorityClasses": ["low", "high"]})


def step(run, observed=Observed(), config=CONFIG):
    return decide(run, observed, config, NOW)


def created(plan, kind="Job"):
    return next(m for m in plan.create if m["kind"] == kind)


def cond(status, type_):
    return c.find(status.conditions, type_)


class TestLabels:
    def test_both_jobs_are_queued_suspended_with_the_priority_class(self):
        labels = {**QUEUE, "kueue.x-k8s.io/priority-class": "high"}
        validating = step(make_run(labels=labels))
        job = created(validating)
        assert job["spec"]["suspend"] is True
        assert {k: v for k, v in job["metadata"]["labels"].items() if k.startswith("kueue")} == labels
        training = created(step(make_run(make_spec(validateInputs=False), labels=labels)))
        assert training["spec"]["suspend"] is True and training["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "high"

    def test_the_configuration_can_keep_validation_outside_kueue(self):
        config = make_config(kueue={"queueName": "team-a", "queueValidation": False})
        job = created(step(make_run(), config=config))
        assert job["spec"]["suspend"] is False and "kueue.x-k8s.io/queue-name" not in job["metadata"]["labels"]
        assert validation_queue({}, config) is None and validation_queue({}, make_config(kueue={"queueName": "q"})) == "q"

    def test_without_a_queue_no_kueue_label_and_not_suspended(self):
        job = build_validation_job(REF, FineTuneRunSpec.parse(make_spec()), CONFIG, None, "high")
        assert job["spec"]["suspend"] is False and not any(k.startswith("kueue") for k in job["metadata"]["labels"])

    @pytest.mark.parametrize(
        "labels, configured, expected",
        [({}, None, None), ({}, "low", "low"), ({"kueue.x-k8s.io/priority-class": "high"}, "low", "high")],
    )
    def test_the_runs_priority_label_wins_over_the_default(self, labels, configured, expected):
        assert priority_class(labels, make_config(kueue={"priorityClassName": configured})) == expected

    @pytest.mark.parametrize("allowed", [[], ["low"]])
    def test_a_priority_class_the_configuration_does_not_allow_fails_the_run(self, allowed):
        labels = {**QUEUE, "kueue.x-k8s.io/priority-class": "urgent"}
        plan = step(make_run(labels=labels), config=make_config(kueue={"allowedPriorityClasses": allowed}))
        assert plan.status.phase == "Failed" and cond(plan.status, c.FAILED).reason == c.INVALID_SPEC
        assert "metadata.labels[kueue.x-k8s.io/priority-class]" in plan.status.message and not plan.create
        check_priority(labels | {"kueue.x-k8s.io/priority-class": "low"}, make_config(kueue={"allowedPriorityClasses": ["low"]}))


def run_at(status, **kw):
    return make_run(make_spec(validateInputs=False), status=status.model_dump(by_alias=True), labels=QUEUE, **kw)


def waiting():
    return step(make_run(make_spec(validateInputs=False), labels=QUEUE)).status


SUSPENDED = make_job(suspended=True, pods=0)


class TestQueued:
    def test_a_suspended_validation_job_waits_in_the_queue(self):
        first = step(make_run(labels=QUEUE))
        plan = step(make_run(status=first.status.model_dump(by_alias=True), labels=QUEUE),
                    Observed(validation=make_job("chat-validate", suspended=True, pods=0), kueue_installed=True))
        assert plan.status.phase == "Validating" and cond(plan.status, c.INPUTS_VALIDATED).reason == c.WAITING_FOR_QUEUE
        assert "validation Job chat-validate waits for Kueue to admit it (queue team-a)" == plan.status.message

    def test_without_kueue_a_queued_job_is_a_warning_naming_the_label(self):
        plan = step(run_at(waiting()), Observed(training=SUSPENDED, kueue_installed=False))
        condition = cond(plan.status, c.SCHEDULED)
        assert plan.status.phase == "Queued" and condition.reason == c.KUEUE_NOT_INSTALLED
        assert "no Kueue" in condition.message and "kueue.x-k8s.io/queue-name" in condition.message
        [event] = c.transitions(waiting().conditions, plan.status.conditions)[-1:]
        assert (event.type, event.reason) == ("Warning", c.KUEUE_NOT_INSTALLED)

    def test_an_unknown_answer_is_no_warning(self):
        plan = step(run_at(waiting()), Observed(training=SUSPENDED, kueue_installed=None))
        assert cond(plan.status, c.SCHEDULED).reason == c.WAITING_FOR_QUEUE

    def test_a_job_kueue_suspends_after_it_ran_is_back_in_the_queue_uncharged(self):
        report = make_report(checkpoints=[CheckpointRef(name="ep0-ba7", path="/checkpoints/chat/ep0-ba7", step=7)])
        running = step(run_at(waiting(), report=report), Observed(training=make_job())).status
        assert running.phase == "Running" and running.checkpoints
        plan = step(run_at(running, report=report), Observed(training=make_job(suspended=True, pods=0), kueue_installed=True))
        condition = cond(plan.status, c.SCHEDULED)
        assert plan.status.phase == "Queued" and condition.reason == c.KUEUE_PREEMPTED
        assert "Kueue suspended Job chat-train-0" in condition.message and "ep0-ba7" in condition.message
        assert (plan.status.restarts, plan.status.preemptions, plan.status.attempt) == (0, 0, 0)  # the same Job
        assert not plan.create and not plan.delete_jobs
        assert [t.type for t in c.transitions(running.conditions, plan.status.conditions) if t.reason == c.KUEUE_PREEMPTED] == ["Warning"]
        again = step(run_at(plan.status, report=report), Observed(training=make_job(suspended=True, pods=0), kueue_installed=True))
        assert cond(again.status, c.SCHEDULED) == condition  # it stays preempted, one Event
        resumed = step(run_at(again.status, report=report), Observed(training=make_job()))
        assert resumed.status.phase == "Running" and cond(resumed.status, c.SCHEDULED).reason == c.PODS_RUNNING

    @pytest.mark.parametrize("seen_suspended", [True, False])
    def test_a_job_its_stopped_pods_fail_after_kueue_suspends_it_is_a_preemption(self, seen_suspended):
        """The pods Kueue's suspension stops exit non-zero, which the Job's podFailurePolicy counts: whether the
        operator saw the suspension first or finds the Job already failed (still suspended), the run resumes
        as the next attempt, queued again, uncharged."""
        running = step(run_at(waiting()), Observed(training=make_job())).status
        if seen_suspended:
            running = step(run_at(running), Observed(training=SUSPENDED, kueue_installed=True)).status
        failed = make_job(suspended=not seen_suspended, failed=True, failure_message="exit code 143", pods=0)
        plan = step(run_at(running), Observed(training=failed, kueue_installed=True))
        assert (plan.status.restarts, plan.status.preemptions, plan.status.phase) == (0, 1, "Queued")
        assert cond(plan.status, c.SCHEDULED).reason == c.PREEMPTED and "Kueue suspended it" in plan.status.message
        nxt = step(run_at(plan.status), Observed())
        assert created(nxt)["metadata"]["name"] == "chat-train-1" and created(nxt)["spec"]["suspend"] is True

    def test_a_deleted_job_while_preempted_is_a_lost_job(self):
        running = step(run_at(waiting()), Observed(training=make_job())).status
        preempted = step(run_at(running), Observed(training=SUSPENDED)).status
        plan = step(run_at(preempted), Observed())
        assert cond(plan.status, c.SCHEDULED).reason == c.JOB_LOST and plan.status.restarts == 1


QUOTA = "couldn't assign flavors to pod set main: insufficient quota for nvidia.com/gpu in flavor f, request > maximum capacity (16 > 8)"


def workload(created: str, **conditions: tuple[str, str]) -> dict:
    listed = [{"type": t, "status": status, "message": message} for t, (status, message) in conditions.items()]
    return {"metadata": {"creationTimestamp": created}, "status": {"conditions": listed}}


class TestKueueReason:
    def test_the_newest_workloads_eviction_else_why_it_has_no_quota(self):
        old = workload("2026-01-01T00:00:00Z", QuotaReserved=("False", "old"))
        assert kueue_reason([old, workload("2026-01-02T00:00:00Z", QuotaReserved=("False", QUOTA))]) == QUOTA
        evicted = workload("2026-01-02T00:00:00Z", QuotaReserved=("False", QUOTA), Evicted=("True", "Preempted to accommodate a workload"))
        assert kueue_reason([evicted]) == "Preempted to accommodate a workload"
        assert kueue_reason([workload("2026-01-02T00:00:00Z", QuotaReserved=("True", "admitted"))]) is None
        assert kueue_reason([]) is None

    def test_the_run_says_kueues_reason_and_looks_again_after_the_resync_interval(self):
        job = make_job(suspended=True, pods=0, queue_reason=QUOTA)
        plan = step(run_at(waiting()), Observed(training=job, kueue_installed=True))
        assert plan.status.message == f"Job chat-train-0 waits for Kueue to admit it (queue team-a): {QUOTA}"
        assert plan.wake_after == CONFIG.reconcile.resync_interval_seconds
        assert step(run_at(waiting()), Observed(training=job, kueue_installed=None)).wake_after is None


class TestDiscovery:
    def test_one_look_per_interval_and_a_failed_look_keeps_the_last_answer(self):
        clock, answers = [0.0], [{KUEUE_GROUP, "batch"}, OSError("refused"), {"batch"}]
        looks = []

        def groups(api):
            looks.append(clock[0])
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        discovery = KueueDiscovery(300, groups=groups, clock=lambda: clock[0])
        assert discovery.installed(None) is True
        clock[0] = 299
        assert discovery.installed(None) is True and looks == [0.0]
        clock[0] = 301
        assert discovery.installed(None) is True  # the failed look: still the last answer
        clock[0] = 302
        assert discovery.installed(None) is False and looks == [0.0, 301, 302]

    def test_never_answered_is_unknown(self):
        def refused(api):
            raise OSError("refused")

        assert KueueDiscovery(300, groups=refused).installed(None) is None
