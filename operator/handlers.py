"""kopf wiring: thin handlers that read the cluster, ask reconcile.decide, and apply its Plan.

Triggers, all running the same level-based reconcile of one run:
- every watch event of a FineTuneRun (creation, spec changes, the initial listing when the operator starts),
  except the event of the operator's own status write when deciding again on what it wrote would change nothing
  (_settles: most writes; a preempted attempt's next Job, for one, is created by the reconcile that follows);
- every watch event of a batch/v1 Job or core/v1 Pod labelled with the run (RUN_LABEL) and
  managed by Kubetune (MANAGED_BY_LABEL), DELETED included, and of the run's report ConfigMap
  (COMPONENT_LABEL=report, which the trainer patches): the run named by the label is
  reconciled at once, so a pod scheduled or failing, a Job finishing or deleted and a new report
  move the run without waiting for the timer. The label only says which run to reconcile: the
  reconcile reads the report from the ConfigMap of the run's own name and UID. These are kopf
  event handlers only: kopf keeps no state on Jobs, pods and ConfigMaps (no finalizer, no
  annotations, no patches). kopf filters labels on its side, so it watches every Job, pod and
  ConfigMap of the watched namespaces and drops the others;
- a timer per Running run, for stall detection (the initial listing at start-up reconciles every run, so no
  other phase needs one), and a faster one per Registering run for registration retries with backoff;
- a wake-up when a wait the reconcile chose ends (a restart's backoff: Plan.wake_after), and after an API fault
  that deferred an event's reconcile (the error's delay).
What a reconcile reads: the run from the API server (its resourceVersion guards the status write); its Jobs,
pods and report ConfigMap from kopf indexes fed by those same watches (run_jobs, run_pods, run_reports), so a
reconcile that changes nothing makes one API call. A Job this process created that its index has not shown
yet sends that reconcile to the API server for the Jobs and pods instead (_created_jobs).
A per-run lock keeps them from overlapping, and the resourceVersion guard on the status write
rejects a decision made from a stale read. A child event that arrives while a reconcile of its
run is already waiting for the lock is dropped: that reconcile reads the cluster after the event.
kopf's "<handler> succeeded." line is not logged for the timer and the child handlers
(QUIET_HANDLERS, filtered in logs.py): one line per run per tick, or per pod event, is noise.
"""

import logging
import threading
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes.client import ApiClient

from kubetune.api import GROUP, PLURAL, VERSION
from kubetune.api.progress import TrainerReport
from kubetune.api.status import Phase
from kubetune.operator import conditions, kube, names, status_io, usage
from kubetune.operator.builders.common import RunRef
from kubetune.operator.child_changes import ChildChanges
from kubetune.operator.config import OperatorConfig
from kubetune.operator.kueue import KueueDiscovery
from kubetune.operator.logs import run_logger
from kubetune.operator.metrics import METRICS
from kubetune.operator.observe import awaits_pods, job_view, kueue_reason
from kubetune.operator.reconcile import Observed, Plan, RunView, decide, fail, registered, registry_unavailable
from kubetune.operator.registration import Registrar
from kubetune.operator.wakeups import Wakeups

_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()
_waiting: set[tuple[str, str]] = set()  # runs with a child-event reconcile waiting for the lock
_registrar: Registrar | None = None  # set by build_registry: registration calls off the reconcile workers
_wakeups: Wakeups | None = None  # set by build_registry
_kueue: KueueDiscovery | None = None  # set by build_registry: whether the cluster serves Kueue's API, cached
# kopf's indexes of the operator's Jobs, pods and report ConfigMaps by (namespace, run), live views kopf keeps
# current from its watches; set at startup (absent: every read goes to the API server).
_indexes: dict[str, kopf.Index] = {}
_created_jobs: dict[tuple[str, str], set[str]] = {}  # Jobs this process created that an index has not shown yet
_settled: dict[tuple[str, str], str] = {}  # resourceVersion of a status write that needs no reconcile after it
_child_changes = ChildChanges()  # Job and pod events that change nothing a decision reads cost no reconcile
CHILD_LABELS = {names.RUN_LABEL: kopf.PRESENT, names.MANAGED_BY_LABEL: names.MANAGED_BY}
REPORT_LABELS = {**CHILD_LABELS, names.COMPONENT_LABEL: names.REPORT}
QUIET_HANDLERS = ("resync", "registration", "job_changed", "pod_changed", "report_changed")  # success not logged


def _lock(namespace: str, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((namespace, name), threading.Lock())


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def run_view(body: dict[str, Any], report: TrainerReport | None = None) -> RunView:
    meta = body["metadata"]
    return RunView(
        ref=RunRef(meta["name"], meta["namespace"], meta["uid"]),
        generation=meta.get("generation", 1),
        spec=body.get("spec") or {},
        status=status_io.parse_status(body.get("status")),
        report=report,
        labels=meta.get("labels") or {},
    )


def indexed(kind: str, namespace: str, run: str) -> list[dict[str, Any]] | None:
    """The run's children of one kind ("jobs", "pods", "reports") from kopf's index; None without indexes."""
    index = _indexes.get(kind)
    if index is None:
        return None
    return list(index.get((namespace, run), ()))


def child_entry(namespace: str, labels: dict[str, str], body: kopf.Body) -> dict[tuple[str, str], dict[str, Any]]:
    """An index entry: the object as a plain dict without managedFields (the largest part, never read)."""
    metadata = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    return {(namespace, labels[names.RUN_LABEL]): {**body, "metadata": metadata}}


def read_report(api: ApiClient, run: RunRef) -> TrainerReport | None:
    """The trainer's latest report, from the report ConfigMap of the run's name that the run owns (by UID): one
    another run of the same name left behind is not this run's."""
    reports = indexed("reports", run.namespace, run.name)
    if reports is None:
        config_map = kube.read_config_map(api, run.namespace, names.report_config_map(run.name))
    else:
        config_map = next((r for r in reports if r["metadata"]["name"] == names.report_config_map(run.name)), None)
    if config_map is None or not _owned_by(config_map, run.uid):
        return None
    return status_io.parse_report(config_map)


def _read_jobs_and_pods(api: ApiClient, namespace: str, run: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The run's Jobs and pods from the indexes; from the API server without indexes, or while a Job this operator
    created is not in its index yet (the reconcile its own status write triggers can come first)."""
    jobs = indexed("jobs", namespace, run)
    if jobs is not None:
        expected = _created_jobs.get((namespace, run), set())
        expected.difference_update(j["metadata"]["name"] for j in jobs)
        if not expected:
            _created_jobs.pop((namespace, run), None)
            return jobs, indexed("pods", namespace, run)
    return kube.list_jobs(api, namespace, run), None


def observe(api: ApiClient, run: RunView) -> Observed:
    """The run's Jobs and their pods, adopted by owner UID only: a Job with the run's label that another
    FineTuneRun of the same name left behind (deleted with --cascade=orphan) is reported, never adopted."""
    labelled, pods = _read_jobs_and_pods(api, run.ref.namespace, run.ref.name)
    jobs = {j["metadata"]["name"]: j for j in labelled if _owned_by(j, run.ref.uid)}
    foreign = sorted(j["metadata"]["name"] for j in labelled if not _owned_by(j, run.ref.uid))
    uids = {j["metadata"]["uid"]: name for name, j in jobs.items()}
    if pods is None:
        pods = kube.list_pods(api, run.ref.namespace, run.ref.name) if jobs else []

    def view(name: str):
        job = jobs.get(name)
        if job is None:
            return None
        own = [p for p in pods if any(uids.get(o.get("uid")) == name for o in _owners(p))]
        # Why a Job has no pods is only in its Events (Pod Security admission, quota, a webhook refused them).
        events = kube.list_job_events(api, run.ref.namespace, job) if awaits_pods(job, own) else []
        return job_view(job, own, events)

    validation, training = view(names.validation_job(run.ref.name)), view(names.training_job(run.ref.name, run.status.attempt))
    # Only a Job waiting suspended (in a Kueue queue) needs to know whether anything will ever admit it, and why not yet.
    waiting = any(job is not None and job.suspended for job in (validation, training))
    installed = _kueue.installed(api) if waiting and _kueue is not None else None
    if installed:
        validation, training = (_with_queue_reason(api, run.ref.namespace, jobs, job) for job in (validation, training))
    return Observed(
        validation=validation,
        training=training,
        job_names=sorted(jobs),
        foreign_jobs=foreign,
        kueue_installed=installed,
    )


def _with_queue_reason(api: ApiClient, namespace: str, jobs: dict[str, dict[str, Any]], job):
    if job is None or not job.suspended:
        return job
    return replace(job, queue_reason=kueue_reason(kube.list_workloads(api, namespace, jobs[job.name]["metadata"]["uid"])))


def _created(body: dict[str, Any]) -> datetime | None:
    stamp = body["metadata"].get("creationTimestamp")
    return datetime.fromisoformat(stamp) if stamp else None


def _owners(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["metadata"].get("ownerReferences") or []


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(o.get("uid") == uid and o.get("controller") for o in _owners(obj))


def reconcile(api: ApiClient, config: OperatorConfig, namespace: str, name: str, logger, retry: int = 0) -> None:
    with _lock(namespace, name):
        with _locks_guard:
            _waiting.discard((namespace, name))  # from here on, every change is seen by this read
        with METRICS.timed_reconcile():
            body = kube.read_run(api, namespace, name)
            if body is None or body["metadata"].get("deletionTimestamp"):
                METRICS.forget(namespace, name)
                return
            run = run_view(body, read_report(api, RunRef(name, namespace, body["metadata"]["uid"])))
            at = now()
            observed = observe(api, run)
            plan = decide(run, observed, config, at)
            status, registry_down = _apply(api, config, run, plan, at, logger)
            status = status_io.redacted(status)  # as stored, so a masked message is no transition
            if status_io.changed(run.status, status):
                # Usage is brought up to date with a write that happens anyway (usage.py says why).
                status = usage.account(run.status, status, _created(body), config, at)
                settles = not registry_down and _settles(run, observed, plan, status, config, at)  # before its event
                version = kube.write_status(api, body, status_io.status_patch(status))
                if version and settles:
                    _settled[(namespace, name)] = version
                for transition in conditions.transitions(run.status.conditions, status.conditions):
                    kube.emit_event(api, body, transition, at)
            METRICS.record(namespace, name, run.status, status)
        if plan.wake_after is not None:
            _wakeups.schedule((namespace, name), plan.wake_after)
    if registry_down:
        delay = min(
            config.reconcile.registration_backoff_max_seconds,
            config.reconcile.registration_backoff_seconds * 2**retry,
        )
        raise RegistryUnavailable(f"MLflow unavailable: {registry_down}", delay=delay)


class RegistryUnavailable(kopf.TemporaryError):
    """MLflow did not answer: the registration timer retries with its backoff."""


def _settles(run: RunView, observed: Observed, plan: Plan, status, config: OperatorConfig, at: datetime) -> bool:
    """Whether the reconcile that the watch event of this status write triggers would do nothing: deciding again
    on the written status, with the Jobs just created as they are at creation, changes nothing and creates only
    what was just ensured. Then that event is skipped; otherwise (a preempted attempt's next Job) it is reconciled."""
    if plan.register is not None or plan.delete_jobs:
        return False
    created = {m["metadata"]["name"]: job_view(m, []) for m in plan.create if m["kind"] == "Job"}
    training = observed.training if status.attempt == run.status.attempt else None
    seen = replace(
        observed,
        validation=observed.validation or created.get(names.validation_job(run.ref.name)),
        training=training or created.get(names.training_job(run.ref.name, status.attempt)),
        job_names=sorted({*observed.job_names, *created}),
    )
    again = decide(replace(run, status=status), seen, config, at)
    ensured = {(m["kind"], m["metadata"]["name"]) for m in plan.create}
    return (
        not status_io.changed(status, again.status)
        and not again.delete_jobs
        and again.register is None
        and (again.wake_after is None or plan.wake_after is not None)
        and all((m["kind"], m["metadata"]["name"]) in ensured for m in again.create)
    )


def reconcile_now(api: ApiClient, config: OperatorConfig, namespace: str, name: str, logger) -> None:
    """Reconcile on a watch event (a watch event is not retried): an API fault is retried by a wake-up after the
    error's delay, MLflow being unavailable by the registration timer."""
    try:
        reconcile(api, config, namespace, name, logger)
    except RegistryUnavailable as error:
        logger.info("reconcile of %s/%s deferred: %s", namespace, name, error)
    except kopf.TemporaryError as error:
        logger.info("reconcile of %s/%s deferred: %s", namespace, name, error)
        if _wakeups is not None:
            _wakeups.schedule((namespace, name), error.delay or 1.0)


def follow_child(api: ApiClient, config: OperatorConfig, namespace: str, run: str, logger) -> None:
    """A Job, pod or report of `run` changed: reconcile the run, unless a reconcile of it is already waiting."""
    with _locks_guard:
        if (namespace, run) in _waiting:
            return
        _waiting.add((namespace, run))
    try:
        reconcile_now(api, config, namespace, run, logger)
    finally:
        with _locks_guard:
            _waiting.discard((namespace, run))


def _apply(api: ApiClient, config: OperatorConfig, run: RunView, plan: Plan, at: datetime, logger):
    """Carry out the plan's actions; returns the final status and the registry error to retry on, if any."""
    status = plan.status
    try:
        for manifest, created in zip(plan.create, kube.ensure_all(api, plan.create)):
            if created and manifest["kind"] == "Job":
                _created_jobs.setdefault((run.ref.namespace, run.ref.name), set()).add(manifest["metadata"]["name"])
    except kube.ChildRejected as error:
        return fail(status, conditions.CHILD_REJECTED, str(error), at), None
    for job in plan.delete_jobs:
        kube.delete_job(api, run.ref.namespace, job)
    if plan.register is None:
        return status, None
    outcome = _registrar.outcome((run.ref.namespace, run.ref.name), plan.register)
    if outcome is None:  # in flight: the run stays Registering, and the finished call wakes it
        return status, None
    if outcome.name is not None:
        return registered(status, outcome.name, outcome.version, at), None
    if outcome.permanent_error:
        return fail(status, conditions.REGISTRATION_FAILED, outcome.permanent_error, at), None
    logger.warning("registration of %s failed, will retry: %s", plan.register.name, outcome.transient_error)
    return registry_unavailable(status, plan.register.tracking_uri, at), outcome.transient_error


def build_registry(config: OperatorConfig, api: ApiClient) -> kopf.OperatorRegistry:
    global _registrar, _wakeups, _kueue
    registry = kopf.OperatorRegistry()
    _kueue = KueueDiscovery(config.kueue.discovery_interval_seconds)
    log = logging.getLogger("kubetune.operator.registration")
    _registrar = Registrar(
        wake=lambda run: reconcile_now(api, config, run[0], run[1], run_logger(log, *run)),
        timeout_s=config.reconcile.registration_timeout_seconds,
    )
    wake_log = logging.getLogger("kubetune.operator")
    _wakeups = Wakeups(lambda run: reconcile_now(api, config, run[0], run[1], run_logger(wake_log, *run)))

    @kopf.index("batch", "v1", "jobs", id="run_jobs", labels=CHILD_LABELS, registry=registry)
    def run_jobs(namespace, labels, body, **_):
        return child_entry(namespace, labels, body)

    @kopf.index("v1", "pods", id="run_pods", labels=CHILD_LABELS, registry=registry)
    def run_pods(namespace, labels, body, **_):
        return child_entry(namespace, labels, body)

    @kopf.index("v1", "configmaps", id="run_reports", labels=REPORT_LABELS, registry=registry)
    def run_reports(namespace, labels, body, **_):
        return child_entry(namespace, labels, body)

    @kopf.on.startup(registry=registry)
    def keep_indexes(run_jobs: kopf.Index, run_pods: kopf.Index, run_reports: kopf.Index, **_):
        _indexes.update(jobs=run_jobs, pods=run_pods, reports=run_reports)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def run_changed(type, name, namespace, body, logger, **_):
        if type == "DELETED":
            METRICS.forget(namespace, name)
            _settled.pop((namespace, name), None)
            _created_jobs.pop((namespace, name), None)
        elif _settled.get((namespace, name)) == body["metadata"]["resourceVersion"]:
            _settled.pop((namespace, name), None)  # the operator's own write, and deciding again would change nothing
        else:
            reconcile_now(api, config, namespace, name, logger)

    @kopf.on.event("batch", "v1", "jobs", id="job_changed", labels=CHILD_LABELS, registry=registry)
    def job_changed(type, body, labels, namespace, logger, **_):
        if _child_changes.job_changed(type, body):
            follow_child(api, config, namespace, labels[names.RUN_LABEL], logger)

    @kopf.on.event("v1", "pods", id="pod_changed", labels=CHILD_LABELS, registry=registry)
    def pod_changed(type, body, labels, namespace, logger, **_):
        if _child_changes.pod_changed(type, body):
            follow_child(api, config, namespace, labels[names.RUN_LABEL], logger)

    @kopf.on.event("v1", "configmaps", id="report_changed", labels=REPORT_LABELS, registry=registry)
    def report_changed(labels, namespace, logger, **_):
        follow_child(api, config, namespace, labels[names.RUN_LABEL], logger)

    @kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        id="resync",
        registry=registry,
        interval=config.reconcile.resync_interval_seconds,
        when=lambda status, **_: status.get("phase") == Phase.RUNNING.value,
    )
    def resync(name, namespace, logger, retry, **_):
        reconcile(api, config, namespace, name, logger, retry)

    # While MLflow is unavailable, a Registering run retries at registrationBackoffSeconds (doubling up to
    # the maximum), not at the next tick of the slower safety-net timer.
    @kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        id="registration",
        registry=registry,
        interval=config.reconcile.registration_backoff_seconds,
        when=lambda status, **_: status.get("phase") == Phase.REGISTERING.value,
    )
    def registration(name, namespace, logger, retry, **_):
        reconcile(api, config, namespace, name, logger, retry)

    return registry
