"""The operator's Prometheus metrics, updated from status transitions (the status as stored vs the one written).

Nothing here reads the cluster: a scrape reports what the reconciles last saw. `record` is called once per
reconcile with the status before and after it, so counters move only on the transition that a status write
recorded, and the per-run gauges follow the latest status; a run that ends or is deleted loses its per-run
series, so their number stays that of the active runs. After an operator restart the run gauges fill again
as kopf lists every run; counters start again from zero, which PromQL's rate() and increase() expect.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

from kubetune.api.status import FineTuneRunStatus, Phase
from kubetune.operator import conditions as c

PREFIX = "kubetune"
# Seconds to minutes for a reconcile; minutes to a day for waiting on GPUs and loading a model.
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
WAIT_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400)


class OperatorMetrics:
    """Every metric the operator exports, in its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        self._phases: dict[tuple[str, str], str] = {}  # (namespace, name) -> phase, of every run reconciled
        self._guard = threading.Lock()
        r = self.registry
        self.reconcile_duration = Histogram(
            f"{PREFIX}_reconcile_duration_seconds", "Time one reconcile of a run took.", buckets=RECONCILE_BUCKETS, registry=r
        )
        self.reconcile_errors = Counter(
            f"{PREFIX}_reconcile_errors", "Reconciles that raised, by exception type.", ["error"], registry=r
        )
        self.queue_wait = Histogram(
            f"{PREFIX}_run_queue_wait_seconds",
            "From a run's creation until every training pod first ran (status.usage.queueWaitSeconds).",
            ["pool"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.time_to_first_step = Histogram(
            f"{PREFIX}_run_time_to_first_step_seconds",
            "From a run's startTime until its first training step (status.usage.timeToFirstStepSeconds).",
            ["pool"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.restarts = Counter(
            f"{PREFIX}_run_restarts",
            "Training attempts that ended and were resumed, by the Scheduled condition's reason.",
            ["namespace", "reason"],
            registry=r,
        )
        self.gpu_seconds = Counter(
            f"{PREFIX}_gpu_seconds", "GPU-seconds the training pods held (status.usage.gpuSeconds).", ["namespace", "pool"], registry=r
        )
        run = ["namespace", "name"]
        self.step = Gauge(f"{PREFIX}_run_step", "Optimizer steps done, from the trainer's report.", run, registry=r)
        self.train_loss = Gauge(f"{PREFIX}_run_train_loss", "Train loss of the last step, from the trainer's report.", run, registry=r)
        self.tokens_per_second = Gauge(
            f"{PREFIX}_run_tokens_per_second", "Training tokens per second, all ranks, from the trainer's report.", run, registry=r
        )
        r.register(_PhaseCollector(self))

    @contextmanager
    def timed_reconcile(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        except Exception as error:
            self.reconcile_errors.labels(type(error).__name__).inc()
            raise
        finally:
            self.reconcile_duration.observe(time.perf_counter() - start)

    def record(self, namespace: str, name: str, before: FineTuneRunStatus, after: FineTuneRunStatus) -> None:
        """One reconcile's outcome: `before` as stored, `after` as written (the same when nothing changed)."""
        with self._guard:
            if after.phase is not None:
                self._phases[(namespace, name)] = Phase(after.phase).value
        self._count_transitions(namespace, before, after)
        if after.phase is not None and Phase(after.phase).is_terminal:
            self._remove_run_series(namespace, name)
            return
        for gauge, value in (
            (self.step, after.progress.step if after.progress else None),
            (self.train_loss, after.metrics.train_loss if after.metrics else None),
            (self.tokens_per_second, after.metrics.tokens_per_second if after.metrics else None),
        ):
            if value is not None:
                gauge.labels(namespace, name).set(value)

    def forget(self, namespace: str, name: str) -> None:
        """The run is deleted: no series of it stays."""
        with self._guard:
            self._phases.pop((namespace, name), None)
        self._remove_run_series(namespace, name)

    def phase_counts(self) -> dict[tuple[str, str], int]:
        """(namespace, phase) -> runs, every phase of each namespace with runs (0 included: steady series)."""
        with self._guard:
            phases = dict(self._phases)
        counts = {(ns, p.value): 0 for ns in {ns for ns, _ in phases} for p in Phase}
        for (namespace, _), phase in phases.items():
            counts[(namespace, phase)] += 1
        return counts

    def _count_transitions(self, namespace: str, before: FineTuneRunStatus, after: FineTuneRunStatus) -> None:
        scheduled = c.find(after.conditions, c.SCHEDULED)
        ended = (after.restarts - before.restarts) + (after.preemptions - before.preemptions)
        if ended > 0:
            self.restarts.labels(namespace, scheduled.reason if scheduled else "Unknown").inc(ended)
        old, new = before.usage, after.usage
        if new is None:
            return
        pool = new.pool or "unknown"
        grown = new.gpu_seconds - (old.gpu_seconds if old else 0)
        if grown > 0:
            self.gpu_seconds.labels(namespace, pool).inc(grown)
        if new.queue_wait_seconds is not None and (old is None or old.queue_wait_seconds is None):
            self.queue_wait.labels(pool).observe(new.queue_wait_seconds)
        if new.time_to_first_step_seconds is not None and (old is None or old.time_to_first_step_seconds is None):
            self.time_to_first_step.labels(pool).observe(new.time_to_first_step_seconds)

    def _remove_run_series(self, namespace: str, name: str) -> None:
        for gauge in (self.step, self.train_loss, self.tokens_per_second):
            try:
                gauge.remove(namespace, name)
            except KeyError:
                pass


class _PhaseCollector:
    """kubetune_runs{namespace, phase}, computed at scrape time from what the reconciles recorded."""

    def __init__(self, metrics: OperatorMetrics):
        self._metrics = metrics

    def describe(self):
        return [GaugeMetricFamily(f"{PREFIX}_runs", "")]

    def collect(self):
        family = GaugeMetricFamily(
            f"{PREFIX}_runs", "FineTuneRuns by phase, as the operator last reconciled them.", labels=["namespace", "phase"]
        )
        for (namespace, phase), count in sorted(self._metrics.phase_counts().items()):
            family.add_metric([namespace, phase], count)
        yield family


def parse_endpoint(url: str) -> tuple[str, int]:
    """`http://HOST:PORT/metrics` -> (host, port). The server answers on every path; /metrics by convention."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise ValueError(f"--metrics {url!r}: expected http://HOST:PORT/metrics, e.g. http://0.0.0.0:9090/metrics")
    return parts.hostname, parts.port


def serve(url: str, metrics: OperatorMetrics) -> None:
    """Serve the metrics from a daemon thread (prometheus_client's own HTTP server)."""
    host, port = parse_endpoint(url)
    start_http_server(port, addr=host, registry=metrics.registry)


METRICS = OperatorMetrics()  # the operator's one instance: the handlers record into it, runner.py serves it
