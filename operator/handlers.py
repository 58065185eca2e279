"""kopf wiring: thin handlers that read the cluster, ask reconcile.decide, and apply its Plan.

Triggers: every watch event of a FineTuneRun (creation, spec changes, the trainer's
status.report) and a timer per active run (the Jobs and pods it owns, registration
retries). Both run the same level-based reconcile; a per-run lock keeps them from
overlapping, and the resourceVersion guard on the status write rejects a decision
made from a stale read.
"""

import threading
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes.client import ApiClient

from kubetune.api import GROUP, PLURAL, VERSION
from kubetune.api.status import Phase
from kubetune.operator import conditions, kube, names, status_io
from kubetune.operator.builders.common import RunRef
from kubetune.operator.config import OperatorConfig
from kubetune.operator.observe import job_view
from kubetune.operator.reconcile import Observed, Plan, RunView, decide, fail, registered, registry_unavailable
from kubetune.operator.registration import register

_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()
_TERMINAL = {p.value for p in Phase if p.is_terminal}


def _lock(namespace: str, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((namespace, name), threading.Lock())


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def run_view(body: dict[str, Any]) -> RunView:
    meta = body["metadata"]
    return RunView(
        ref=RunRef(meta["name"], meta["namespace"], meta["uid"]),
        generation=meta.get("generation", 1),
        spec=body.get("spec") or {},
        status=status_io.parse_status(body.get("status")),
        report=status_io.parse_report(body.get("status")),
        labels=meta.get("labels") or {},
    )


def observe(api: ApiClient, run: RunView) -> Observed:
    jobs = {j["metadata"]["name"]: j for j in kube.list_jobs(api, run.ref.namespace, run.ref.name)}
    pods = kube.list_pods(api, run.ref.namespace, run.ref.name) if jobs else []

    def view(name: str):
        job = jobs.get(name)
        if job is None:
            return None
        return job_view(job, [p for p in pods if p["metadata"].get("labels", {}).get(names.JOB_NAME_LABEL) == name])

    return Observed(
        validation=view(names.validation_job(run.ref.name)),
        training=view(names.training_job(run.ref.name, run.status.restarts)),
        job_names=sorted(jobs),
    )


def reconcile(api: ApiClient, config: OperatorConfig, namespace: str, name: str, logger, retry: int = 0) -> None:
    with _lock(namespace, name):
        body = kube.read_run(api, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        run = run_view(body)
        at = now()
        plan = decide(run, observe(api, run), config, at)
        status, registry_down = _apply(api, config, run, plan, at, logger)
        if status_io.changed(run.status, status):
            kube.write_status(api, body, status_io.status_patch(status))
            for transition in conditions.transitions(run.status.conditions, status.conditions):
                kube.emit_event(api, body, transition, at)
    if registry_down:
        delay = min(
            config.reconcile.registration_backoff_max_seconds,
            config.reconcile.registration_backoff_seconds * 2**retry,
        )
        raise kopf.TemporaryError(f"MLflow unavailable: {registry_down}", delay=delay)


def _apply(api: ApiClient, config: OperatorConfig, run: RunView, plan: Plan, at: datetime, logger):
    """Carry out the plan's actions; returns the final status and the registry error to retry on, if any."""
    status = plan.status
    try:
        for manifest in plan.create:
            kube.ensure(api, manifest)
    except kube.ChildRejected as error:
        return fail(status, conditions.CHILD_REJECTED, str(error), at), None
    for job in plan.delete_jobs:
        kube.delete_job(api, run.ref.namespace, job)
    if plan.register is None:
        return status, None
    outcome = register(plan.register)
    if outcome.name is not None:
        return registered(status, outcome.name, outcome.version, at), None
    if outcome.permanent_error:
        return fail(status, conditions.REGISTRATION_FAILED, outcome.permanent_error, at), None
    logger.warning("registration of %s failed, will retry: %s", plan.register.name, outcome.transient_error)
    return registry_unavailable(status, plan.register.tracking_uri, at), outcome.transient_error


def build_registry(config: OperatorConfig, api: ApiClient) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def run_changed(type, name, namespace, logger, **_):
        if type == "DELETED":
            return
        try:
            reconcile(api, config, namespace, name, logger)
        except kopf.TemporaryError as error:  # the timer retries with backoff; a watch event is not retried
            logger.info("reconcile deferred: %s", error)

    @kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        registry=registry,
        interval=config.reconcile.resync_interval_seconds,
        when=lambda status, **_: status.get("phase") not in _TERMINAL,
    )
    def resync(name, namespace, logger, retry, **_):
        reconcile(api, config, namespace, name, logger, retry)

    return registry
