"""kubetune.operator.metrics: what each status transition does to the exported series."""

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from helpers.operator_factories import NOW
from kubetune.api.status import FineTuneRunStatus
from kubetune.operator import conditions as c
from kubetune.operator.metrics import OperatorMetrics, parse_endpoint


def status(phase: str = "Running", **fields) -> FineTuneRunStatus:
    return FineTuneRunStatus.model_validate({"phase": phase, **fields})


def scheduled(reason: str) -> list[dict]:
    return [{"type": c.SCHEDULED, "status": "False", "reason": reason, "lastTransitionTime": NOW.isoformat()}]


def samples(metrics: OperatorMetrics) -> dict[tuple, float]:
    """(sample name, sorted labels) -> value, read back through Prometheus' own text parser."""
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: OperatorMetrics, sample: str, **labels) -> float | None:
    return samples(metrics).get((sample, tuple(sorted(labels.items()))))


def running(step=10, loss=1.5, tps=900.0, gpu_seconds=0, **usage) -> FineTuneRunStatus:
    return status(
        progress={"step": step},
        metrics={"trainLoss": loss, "tokensPerSecond": tps},
        usage={"pool": "h100", "gpus": 16, "gpuSeconds": gpu_seconds, **usage},
    )


def test_runs_by_phase_and_namespace_with_every_phase_listed():
    metrics = OperatorMetrics()
    metrics.record("team-a", "one", status("Pending"), status("Running"))
    metrics.record("team-a", "two", status("Queued"), status("Queued"))
    metrics.record("team-b", "three", status("Running"), status("Succeeded"))
    assert value(metrics, "kubetune_runs", namespace="team-a", phase="Running") == 1
    assert value(metrics, "kubetune_runs", namespace="team-a", phase="Queued") == 1
    assert value(metrics, "kubetune_runs", namespace="team-a", phase="Failed") == 0
    assert value(metrics, "kubetune_runs", namespace="team-b", phase="Succeeded") == 1
    metrics.record("team-a", "two", status("Queued"), status("Running"))
    assert value(metrics, "kubetune_runs", namespace="team-a", phase="Running") == 2
    metrics.forget("team-a", "two")
    assert value(metrics, "kubetune_runs", namespace="team-a", phase="Running") == 1


def test_per_run_gauges_follow_the_report_and_go_when_the_run_ends():
    metrics = OperatorMetrics()
    metrics.record("team-a", "chat", running(step=5), running(step=10, loss=1.25, tps=800.0))
    assert value(metrics, "kubetune_run_step", namespace="team-a", name="chat") == 10
    assert value(metrics, "kubetune_run_train_loss", namespace="team-a", name="chat") == 1.25
    assert value(metrics, "kubetune_run_tokens_per_second", namespace="team-a", name="chat") == 800.0
    metrics.record("team-a", "chat", running(), running().model_copy(update={"phase": "Failed"}))
    names = {name for name, _ in samples(metrics)}
    assert not names & {"kubetune_run_step", "kubetune_run_train_loss", "kubetune_run_tokens_per_second"}


def test_a_deleted_run_leaves_no_series():
    metrics = OperatorMetrics()
    metrics.record("team-a", "chat", running(), running())
    metrics.forget("team-a", "chat")
    assert not [key for key in samples(metrics) if ("name", "chat") in key[1] or ("namespace", "team-a") in key[1]]


def test_restarts_are_counted_once_by_reason():
    metrics = OperatorMetrics()
    failed = status("Queued", restarts=1, conditions=scheduled(c.RESTARTING))
    metrics.record("team-a", "chat", running(), failed)
    metrics.record("team-a", "chat", failed, failed)  # the next reconcile: no new transition
    preempted = failed.model_copy(update={"preemptions": 1, "conditions": status(conditions=scheduled(c.PREEMPTED)).conditions})
    metrics.record("team-a", "chat", failed, preempted)
    assert value(metrics, "kubetune_run_restarts_total", namespace="team-a", reason=c.RESTARTING) == 1
    assert value(metrics, "kubetune_run_restarts_total", namespace="team-a", reason=c.PREEMPTED) == 1


def test_gpu_seconds_grow_by_what_usage_grew():
    metrics = OperatorMetrics()
    metrics.record("team-a", "chat", running(gpu_seconds=0), running(gpu_seconds=480))
    metrics.record("team-a", "chat", running(gpu_seconds=480), running(gpu_seconds=480))
    metrics.record("team-a", "chat", running(gpu_seconds=480), running(gpu_seconds=1600))
    assert value(metrics, "kubetune_gpu_seconds_total", namespace="team-a", pool="h100") == 1600


def test_queue_wait_and_time_to_first_step_are_observed_once():
    metrics = OperatorMetrics()
    queued = running(step=0)
    started = running(step=0, queueWaitSeconds=70)
    stepped = running(step=1, queueWaitSeconds=70, timeToFirstStepSeconds=30)
    for before, after in [(queued, started), (started, started), (started, stepped), (stepped, stepped)]:
        metrics.record("team-a", "chat", before, after)
    assert value(metrics, "kubetune_run_queue_wait_seconds_count", pool="h100") == 1
    assert value(metrics, "kubetune_run_queue_wait_seconds_sum", pool="h100") == 70
    assert value(metrics, "kubetune_run_queue_wait_seconds_bucket", pool="h100", le="60.0") == 0
    assert value(metrics, "kubetune_run_time_to_first_step_seconds_count", pool="h100") == 1
    assert value(metrics, "kubetune_run_time_to_first_step_seconds_sum", pool="h100") == 30


def test_reconcile_duration_and_errors():
    metrics = OperatorMetrics()
    with metrics.timed_reconcile():
        pass
    with pytest.raises(TimeoutError), metrics.timed_reconcile():
        raise TimeoutError("API server")
    assert value(metrics, "kubetune_reconcile_duration_seconds_count") == 2
    assert value(metrics, "kubetune_reconcile_errors_total", error="TimeoutError") == 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [("http://0.0.0.0:9090/metrics", ("0.0.0.0", 9090)), ("http://127.0.0.1:8000", ("127.0.0.1", 8000))],
)
def test_metrics_endpoint(url, expected):
    assert parse_endpoint(url) == expected


@pytest.mark.parametrize("url", ["0.0.0.0:9090", "https://0.0.0.0:9090/metrics", "http://0.0.0.0/metrics"])
def test_bad_metrics_endpoint_says_what_is_expected(url):
    with pytest.raises(ValueError, match=r"expected http://HOST:PORT/metrics"):
        parse_endpoint(url)


def test_operator_restart_refills_run_gauges_from_the_stored_status():
    """A new process sees every run once (kopf lists them); with before == after, only the gauges move."""
    stored = running(step=42, gpu_seconds=1600, queueWaitSeconds=70).model_copy(update={"restarts": 2})
    metrics = OperatorMetrics()
    metrics.record("team-a", "chat", stored, stored)
    assert value(metrics, "kubetune_run_step", namespace="team-a", name="chat") == 42
    assert value(metrics, "kubetune_runs", namespace="team-a", phase="Running") == 1
    names = {name for name, _ in samples(metrics)}
    assert not names & {"kubetune_run_restarts_total", "kubetune_gpu_seconds_total", "kubetune_run_queue_wait_seconds_count"}
