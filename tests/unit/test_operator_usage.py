"""status.usage (kubetune.operator.usage): GPU-seconds over attempts, queue wait, time to first step and cost,
driven through reconcile.decide and written the way handlers.reconcile writes (only when the status changed)."""

from datetime import timedelta

import pytest

from helpers.operator_factories import NOW, make_config, make_job, make_report, make_run, make_spec
from kubetune.api.status import FineTuneRunStatus
from kubetune.operator.reconcile import Observed, decide, registered
from kubetune.operator.status_io import changed
from kubetune.operator.usage import account

CREATED = NOW - timedelta(seconds=10)
GPUS = 16  # make_spec: 16 GPUs on pool h100
CONFIG = make_config()


def at(seconds: float):
    return NOW + timedelta(seconds=seconds)


class Operator:
    """Reconciles one run like handlers.reconcile: decide, then write (usage brought up to date) if anything
    changed. The stored status goes through JSON, as the API server keeps it, so a new Operator on the same
    stored status is an operator restart."""

    def __init__(self, stored: FineTuneRunStatus | None = None, config=CONFIG, spec=None):
        self.stored = stored or FineTuneRunStatus()
        self.config, self.spec = config, spec or make_spec(validateInputs=False)
        self.writes = 0

    def reconcile(self, when, observed=Observed(), report=None) -> FineTuneRunStatus:
        run = make_run(self.spec, status=self.stored.model_dump(by_alias=True, mode="json"), report=report)
        status = decide(run, observed, self.config, when).status
        if changed(run.status, status):
            status = account(run.status, status, CREATED, self.config, when)
            self.stored = FineTuneRunStatus.model_validate(status.model_dump(by_alias=True, mode="json"))
            self.writes += 1
        return self.stored


def running(attempt: int = 0) -> Observed:
    return Observed(training=make_job(f"chat-train-{attempt}"))


def started(operator: Operator, t: float = 0) -> Operator:
    operator.reconcile(at(t))  # Queued: Job chat-train-0 created
    operator.reconcile(at(t + 60), running())  # every pod runs
    return operator


def test_queue_wait_and_shape_when_the_pods_run():
    usage = started(Operator()).stored.usage
    assert (usage.pool, usage.gpus, usage.gpu_seconds) == ("h100", GPUS, 0)
    assert usage.queue_wait_seconds == 70  # created 10 s before the Job, pods running 60 s after it
    assert usage.time_to_first_step_seconds is None and usage.estimated_cost is None


def test_gpu_seconds_sum_over_attempts_and_stop_between_them():
    operator = started(Operator())
    operator.reconcile(at(90), running(), make_report(step=1))
    assert operator.stored.usage.gpu_seconds == 30 * GPUS
    assert operator.stored.usage.time_to_first_step_seconds == 30
    operator.reconcile(at(160), Observed(training=make_job("chat-train-0", failed=True, failure_reason="BackoffLimitExceeded")))
    assert operator.stored.restarts == 1 and operator.stored.usage.gpu_seconds == 100 * GPUS
    operator.reconcile(at(190))  # the backoff is over: Job chat-train-1 created; no pod holds a GPU
    operator.reconcile(at(250), running(1))
    assert operator.stored.usage.gpu_seconds == 100 * GPUS
    operator.reconcile(at(310), running(1), make_report(step=70, attempt=1))
    assert operator.stored.usage.gpu_seconds == 160 * GPUS
    assert operator.stored.usage.time_to_first_step_seconds == 30  # the run's first step, not the attempt's
    assert operator.stored.usage.queue_wait_seconds == 70


def test_gpu_seconds_stop_when_training_succeeds():
    operator = started(Operator())
    report = make_report(stage="TRAIN_FINISHED", step=100, exportUri="runs:/r1/model")
    operator.reconcile(at(160), Observed(training=make_job(complete=True, phase="Succeeded")), report)
    assert operator.stored.phase == "Registering" and operator.stored.usage.gpu_seconds == 100 * GPUS
    done = registered(operator.stored, "main.finetunes.chat", "1", at(400))
    final = account(operator.stored, done, CREATED, CONFIG, at(400))
    assert final.usage.gpu_seconds == 100 * GPUS


def test_cancel_counts_until_the_cancel():
    operator = started(Operator())
    operator.spec = make_spec(validateInputs=False, suspend=True)
    operator.reconcile(at(100), running())
    assert operator.stored.phase == "Cancelled" and operator.stored.usage.gpu_seconds == 40 * GPUS


def test_a_reconcile_that_changes_nothing_writes_nothing():
    """Usage that grew by itself would make every reconcile write, and every write wake another reconcile."""
    operator = started(Operator())
    operator.reconcile(at(90), running(), make_report(step=1))
    writes = operator.writes
    operator.reconcile(at(120), running(), make_report(step=1))
    assert operator.writes == writes and operator.stored.usage.gpu_seconds == 30 * GPUS


def test_an_operator_restart_gives_the_same_numbers():
    """One operator that saw every report, and one killed after the first and started again later: the same
    usage at the same moment, because it is derived from what the status stores."""
    reports = [(90, 1), (120, 2), (150, 3)]
    steady = started(Operator())
    for t, step in reports:
        steady.reconcile(at(t), running(), make_report(step=step))
    crashed = started(Operator())
    crashed.reconcile(at(90), running(), make_report(step=1))
    restarted = Operator(stored=crashed.stored)  # down while step 2 was reported
    restarted.reconcile(at(150), running(), make_report(step=3))
    assert restarted.stored.usage == steady.stored.usage
    assert steady.stored.usage.gpu_seconds == 90 * GPUS


@pytest.mark.parametrize(
    ("prices", "cost"),
    [
        ({"h100": 2.0}, round(90 * GPUS / 3600 * 2.0, 4)),
        ({"a10g": 1.0}, None),  # another pool's price says nothing about h100
        ({}, None),
    ],
)
def test_cost_only_where_the_pool_has_a_price(prices, cost):
    pools = CONFIG.model_dump(by_alias=True)["pools"]
    for pool, price in prices.items():
        pools[pool]["pricePerGpuHour"] = price
    operator = started(Operator(config=make_config(pools=pools)))
    operator.reconcile(at(150), running(), make_report(step=1))
    assert operator.stored.usage.estimated_cost == cost
    if cost is None:
        assert "estimatedCost" not in operator.stored.model_dump(by_alias=True, exclude_none=True)["usage"]


def test_a_run_past_its_first_step_under_an_older_operator_gets_no_time_to_first_step():
    operator = started(Operator())
    operator.reconcile(at(90), running(), make_report(step=5))
    older = operator.stored.model_copy(update={"usage": None})
    restarted = Operator(stored=older)
    restarted.reconcile(at(120), running(), make_report(step=6))
    assert restarted.stored.usage.time_to_first_step_seconds is None
    assert restarted.stored.usage.gpu_seconds == 60 * GPUS  # counted from the pods' start, as stored
