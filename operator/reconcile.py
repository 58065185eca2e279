"""The reconciler's brain: (run, observed children, config, now) -> Plan. Pure; the handlers do the I/O.

One step per call, level-based: every decision is made again from what the
cluster holds (the run's status and its Jobs), so a restarted operator continues
where the last one stopped. Phases:

    Pending -> [Validating] -> Queued -> Running -> Registering -> Succeeded
    any non-terminal phase -> Failed | Cancelled
"""

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kubetune.api.checkpoints import run_checkpoint_dir
from kubetune.api.databricks_locations import map_spec_locations
from kubetune.api.errors import SpecError, SpecProblem
from kubetune.api.events import EventType
from kubetune.api.mlflow_tags import run_tags
from kubetune.api.progress import TrainerReport
from kubetune.api.spec import FineTuneRunSpec
from kubetune.api.status import FineTuneRunStatus, Phase, RegisteredModel
from kubetune.operator import conditions as c
from kubetune.operator import names
from kubetune.operator.access_rules import check_access, expand_register_to
from kubetune.operator.builders.access import build_report_config_map, build_role, build_role_binding, build_service_account
from kubetune.operator.builders.common import Manifest, RunRef
from kubetune.operator.builders.storage import build_checkpoint_claim
from kubetune.operator.builders.kueue import check_priority, priority_class, queue_name, validation_queue
from kubetune.operator.builders.training import build_training_job, build_workers_service, check_pod_template, needs_workers_service
from kubetune.operator.builders.validation import build_validation_job
from kubetune.operator.config import OperatorConfig
from kubetune.operator.observe import JobView
from kubetune.operator.placement import DoesNotFit, Placement, resolve_placement
from kubetune.operator.progress import add_event, fold_report, reach
from kubetune.operator.usage import with_shape


@dataclass(frozen=True)
class RunView:
    """The FineTuneRun as read from the API server."""

    ref: RunRef
    generation: int
    spec: dict[str, Any]
    status: FineTuneRunStatus  # `report` is the operator's mirror of the last report it folded
    report: TrainerReport | None = None  # the trainer's latest, from its report ConfigMap: untrusted
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Observed:
    validation: JobView | None = None
    training: JobView | None = None  # the Job of the current attempt (status.restarts)
    job_names: list[str] = field(default_factory=list)  # every Job of the run
    foreign_jobs: list[str] = field(default_factory=list)  # Jobs with the run's label that another run owns
    kueue_installed: bool | None = None  # whether the API server serves kueue.x-k8s.io; None: not looked


@dataclass(frozen=True)
class RegistrationRequest:
    tracking_uri: str
    name: str
    source: str
    run_id: str | None
    tags: dict[str, str]
    # The expanded registerTo patterns of the run's namespace, checked again before MLflow is called
    # (kubetune.operator.registration); None: not checked (a caller outside the reconciler).
    allowed_names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Plan:
    status: FineTuneRunStatus
    create: list[Manifest] = field(default_factory=list)  # ensured in order; existing objects are kept
    delete_jobs: list[str] = field(default_factory=list)
    register: RegistrationRequest | None = None
    wake_after: float | None = None  # seconds until this run must be decided again (a backoff ends)


def decide(run: RunView, observed: Observed, config: OperatorConfig, now: datetime) -> Plan:
    status = run.status
    if status.phase is not None and Phase(status.phase).is_terminal:
        return Plan(status)
    status = status.model_copy(update={"observed_generation": run.generation})
    if status.phase is None:
        status = _enter(status, Phase.PENDING, "run accepted", now)
        status = reach(status, EventType.CREATED, "run created", now)
    try:
        spec = map_spec_locations(FineTuneRunSpec.parse(run.spec), config.databricks)  # UC volumes, tables
        placement = resolve_placement(spec.compute, config, spec)
        check_pod_template(spec, config)  # what this operator's configuration allows (priority classes)
        check_priority(run.labels, config)  # and Kueue's WorkloadPriorityClass label
        check_access(spec, run.ref.namespace, run.ref.name, config.access, config.defaults.experiment_root)
        budget = retry_budget(spec, config)
    except SpecError as error:
        return Plan(fail(status, c.INVALID_SPEC, str(error), now))
    except DoesNotFit as error:
        return Plan(fail(status, c.DOES_NOT_FIT, str(error), now))
    status = status.model_copy(update={"max_restarts": budget})
    status = _set(status, c.SPEC_VALID, True, c.SPEC_ACCEPTED, _accepted(placement), now)
    if spec.suspend:
        return Plan(_cancel(status, config, run.ref, now), delete_jobs=list(observed.job_names))
    if run.report is not None and _trainer_seen(status, observed):
        if observed.training is not None and observed.training.complete:
            # It ran and finished while the operator was away (or busy): its start comes first in the history.
            status = _started(status, names.training_job(run.ref.name, status.attempt), placement, now)
        status = fold_report(status, run.report, now)
    if spec.validate_inputs and not c.is_true(status.conditions, c.INPUTS_VALIDATED):
        plan = _validation_step(run, spec, observed, config, status, now)
        if plan is not None:
            return plan
        status = _validated(status, now)
    return _training_step(run, spec, placement, observed, config, status, now)


def _trainer_seen(status: FineTuneRunStatus, observed: Observed) -> bool:
    """A report counts only while the operator sees a trainer that could have sent it: this attempt's training
    Job, or training already finished. It never sets the phase: that comes from the Jobs alone."""
    return observed.training is not None or c.is_true(status.conditions, c.TRAINING_SUCCEEDED)


def _validation_step(run, spec, observed: Observed, config, status, now) -> Plan | None:
    """A Plan while validation is running or has failed; None once it passed."""
    job = observed.validation
    if job is None and names.validation_job(run.ref.name) in observed.foreign_jobs:
        return Plan(_foreign_job(status, run.ref, names.validation_job(run.ref.name), now))
    if job is None:
        status = _set(status, c.INPUTS_VALIDATED, False, c.VALIDATION_RUNNING, "validating the input data", now)
        status = _enter(status, Phase.VALIDATING, "validating the input data", now)
        queue = validation_queue(run.labels, config)
        return Plan(status, create=[build_validation_job(run.ref, spec, config, queue, priority_class(run.labels, config))])
    if job.failed:
        unfit = job.does_not_fit()
        if unfit is not None:  # a model folder's memory plan (kubetune plan-memory): no retry helps
            message = unfit.terminated_message or f"pod {unfit.name}: the model does not fit"
            return Plan(fail(status, c.DOES_NOT_FIT, message, now))
        reason = job.first_failure_message() or job.failure_message or "the validation pod failed"
        return Plan(fail(status, c.VALIDATION_FAILED, f"input data is invalid: {reason}", now))
    if job.complete:
        return None
    if job.suspended:
        queue = validation_queue(run.labels, config)
        status = _in_queue(status, c.INPUTS_VALIDATED, f"validation Job {job.name}", queue, job, observed.kueue_installed, now)
        message = c.find(status.conditions, c.INPUTS_VALIDATED).message
        return Plan(_enter(status, Phase.VALIDATING, message, now), wake_after=_queue_look(observed, config))
    if job.refused is not None:
        return _pods_refused(status, job, "validation pod", c.INPUTS_VALIDATED, Phase.VALIDATING, now)
    waiting = job.unschedulable_pods()
    message = f"validation pod cannot be scheduled: {waiting[0].unschedulable}" if waiting else "validating the input data"
    return Plan(_enter(status, Phase.VALIDATING, message, now))


def _validated(status: FineTuneRunStatus, now: datetime) -> FineTuneRunStatus:
    status = _set(status, c.INPUTS_VALIDATED, True, c.VALIDATION_PASSED, "every input path is readable and valid", now)
    return reach(status, EventType.DATA_VALIDATED, "input data validated", now)


def training_children(run: RunView, spec: FineTuneRunSpec, placement: Placement, config: OperatorConfig, attempt: int):
    """Everything the training pods need, dependencies first; the Job (which carries the trainer's configuration)
    comes last."""
    children = [
        build_service_account(run.ref),
        build_role(run.ref),
        build_role_binding(run.ref),
        build_report_config_map(run.ref),
    ]
    if needs_workers_service(placement):
        children.append(build_workers_service(run.ref))
    if config.checkpoints.create_claim:
        children.append(build_checkpoint_claim(run.ref.namespace, config))
    queue = queue_name(run.labels, config)
    children.append(build_training_job(run.ref, spec, config, placement, attempt, queue, priority_class(run.labels, config)))
    return children


def _in_queue(status, condition: str, what: str, queue: str | None, job: JobView, kueue_installed: bool | None, now):
    """A suspended Job waits for Kueue to admit it: said as such, with Kueue's reason from its Workload (a quota it
    exceeds), or as a Warning when the cluster has no Kueue (nothing would ever admit it)."""
    if kueue_installed is False:
        message = (
            f"{what} waits suspended in Kueue queue {queue!r} ({names.KUEUE_QUEUE_LABEL}), but this cluster has no "
            f"Kueue (the API group kueue.x-k8s.io is not served): install Kueue, or remove the run's "
            f"{names.KUEUE_QUEUE_LABEL} label and the operator configuration's kueue.queueName"
        )
        return _set(status, condition, False, c.KUEUE_NOT_INSTALLED, message, now)
    message = f"{what} waits for Kueue to admit it (queue {queue})"
    if job.queue_reason:
        message = f"{message}: {job.queue_reason}"
    return _set(status, condition, False, c.WAITING_FOR_QUEUE, message, now)


def _queue_look(observed: Observed, config: OperatorConfig) -> float | None:
    """Kueue's reason changes on its Workload, which the operator does not watch: look again after the resync
    interval while a Job waits in an installed Kueue (its admission itself is a Job change, seen at once)."""
    return config.reconcile.resync_interval_seconds if observed.kueue_installed else None


def _suspended_by_kueue(status: FineTuneRunStatus, job: JobView, queue: str | None, now: datetime):
    """Kueue suspended the admitted Job (preempted by a workload of higher priority, or evicted): its pods stop
    (each trainer checkpoints on SIGTERM) and the same Job waits in its queue again. Not a failure: no attempt
    ends and nothing is charged to the retry budget; once Kueue admits it again, its new pods resume from the
    run's latest checkpoint."""
    latest = f"; the newest reported is {status.checkpoints[-1].name}" if status.checkpoints else ""
    why = job.queue_reason or f"preempted or evicted in queue {queue}"
    message = (
        f"Kueue suspended Job {job.name} ({why}): it waits to be admitted again, "
        f"then resumes from its latest checkpoint{latest}; not charged to the retry budget"
    )
    status = _set(status, c.SCHEDULED, False, c.KUEUE_PREEMPTED, message, now)
    return _enter(status, Phase.QUEUED, message, now)


def _training_step(run, spec, placement: Placement, observed: Observed, config, status, now) -> Plan:
    job, foreign = observed.training, observed.foreign_jobs
    attempt = status.attempt
    job_name = names.training_job(run.ref.name, attempt)
    if c.is_true(status.conditions, c.TRAINING_SUCCEEDED):  # only registration is left, Job or no Job
        return _registration_step(run, spec, config, status, now)
    if job is None and job_name in foreign:
        return Plan(_foreign_job(status, run.ref, job_name, now))
    if job is None and _job_created(status):
        status = _lost_job(status, job_name, run.ref.name, config, now)
        return Plan(status, wake_after=backoff_left(status, config, now) or None)
    if job is None and (wait := backoff_left(status, config, now)) > 0:
        return Plan(status, wake_after=wait)
    if job is None:
        message = f"created Job {job_name}: {_shape(placement)}"
        status = _set(status, c.SCHEDULED, False, c.JOB_CREATED, message, now)
        return Plan(_enter(status, Phase.QUEUED, message, now), create=training_children(run, spec, placement, config, attempt))
    if job.complete:
        return _registration_step(run, spec, config, _trained(status, now), now)
    if job.failed:
        status = _after_failure(status, job, run.ref.name, config, now)
        return Plan(status, wake_after=backoff_left(status, config, now) or None)
    if job.suspended:
        queue = queue_name(run.labels, config)
        scheduled = c.find(status.conditions, c.SCHEDULED)
        if scheduled is not None and scheduled.reason == c.KUEUE_PREEMPTED:
            return Plan(status)  # said once, when it happened: the Event stays one
        if _all_pods_ran(status):
            return Plan(_suspended_by_kueue(status, job, queue, now))
        status = _in_queue(status, c.SCHEDULED, f"Job {job_name}", queue, job, observed.kueue_installed, now)
        message = c.find(status.conditions, c.SCHEDULED).message
        return Plan(_enter(status, Phase.QUEUED, message, now), wake_after=_queue_look(observed, config))
    if job.refused is not None:
        return _pods_refused(status, job, "training pods", c.SCHEDULED, Phase.QUEUED, now)
    # Once all of this attempt's pods ran, it stays Running until its Job ends: a view of a pod still Pending
    # (the operator's index of pods can lag a fresh read it made before) is older news, not a step back.
    waiting = [] if _all_pods_ran(status) else job.unschedulable_pods()
    if waiting:
        message = (
            f"{len(waiting)} of {placement.nodes} training pods cannot be scheduled on pool "
            f"{placement.pool_name!r} ({_shape(placement)}): {waiting[0].unschedulable}"
        )
        status = _set(status, c.SCHEDULED, False, c.UNSCHEDULABLE, message, now)
        return Plan(_enter(status, Phase.QUEUED, message, now))
    started = [p for p in job.pods if p.node and p.phase in ("Running", "Succeeded")]
    if len(started) >= placement.nodes:
        return _watch_for_stall(_running(status, job_name, placement, now), spec, config, job_name, run.ref.name, now)
    return Plan(status)


def _all_pods_ran(status: FineTuneRunStatus) -> bool:
    """The current attempt's pods have all been seen running (a new attempt resets Scheduled first)."""
    scheduled = c.find(status.conditions, c.SCHEDULED)
    return scheduled is not None and c.is_true(status.conditions, c.SCHEDULED) and scheduled.reason == c.PODS_RUNNING


def _pods_refused(status, job: JobView, what: str, condition: str, waiting_phase: Phase, now: datetime) -> Plan:
    """The API server refuses to create a Job's pods: said in the condition, a Warning Event and the message at
    the first reconcile that sees it; a refusal that comes back the same on every try fails the run (and its Job
    goes, so the Job controller stops trying), one that can pass by itself (quota) keeps the run waiting."""
    message = f"the API server refuses to create the {what} of Job {job.name}: {job.refused.message}"
    if job.refused.waits:
        message = f"{message}; waiting until it can"
        status = _set(status, condition, False, c.PODS_REFUSED, message, now)
        return Plan(_enter(status, waiting_phase, message, now))
    return Plan(fail(status, c.PODS_REFUSED, message, now), delete_jobs=[job.name])


def _watch_for_stall(status, spec: FineTuneRunSpec, config: OperatorConfig, job_name: str, run_name: str, now) -> Plan:
    """Stalled when the step has not advanced for the run's stall timeout, counted from the last new step or
    from when this attempt's pods all ran, whichever is later; where configured, the pods restart from the
    latest checkpoint."""
    timeout = spec.stall_timeout_seconds or config.defaults.stall_timeout_seconds
    pods_running_since = c.find(status.conditions, c.SCHEDULED).last_transition_time
    since = max(t for t in (status.last_progress_time, pods_running_since) if t is not None)
    if (now - since).total_seconds() < timeout:
        if c.find(status.conditions, c.STALLED):
            status = _set(status, c.STALLED, False, c.PROGRESSING, "training steps are advancing", now)
        return Plan(status)
    message = f"no new training step since {since.isoformat()} ({timeout} s without progress)"
    if not config.defaults.restart_stalled:
        return Plan(_set(status, c.STALLED, True, c.NO_PROGRESS, message, now))
    status = _set(status, c.STALLED, True, c.NO_PROGRESS, f"{message}; restarting its pods", now)
    status = _lost_job(status, job_name, run_name, config, now, cause=f"stalled: {message}")
    return Plan(status, delete_jobs=[job_name], wake_after=backoff_left(status, config, now) or None)


def _running(status: FineTuneRunStatus, job_name: str, placement: Placement, now: datetime) -> FineTuneRunStatus:
    message = f"training: Job {job_name}, {_shape(placement)}"
    status = _set(status, c.SCHEDULED, True, c.PODS_RUNNING, f"all {placement.nodes} training pods are running", now)
    status = _enter(status, Phase.RUNNING, message, now)
    return _started(status, job_name, placement, now)


def _started(status: FineTuneRunStatus, job_name: str, placement: Placement, now: datetime) -> FineTuneRunStatus:
    """The STARTED milestone and the start time, once: when the pods are seen running, or, for an attempt that
    ran and finished unseen, when its end is seen."""
    status = with_shape(status, placement.pool_name, placement.total_gpus)
    if status.start_time is None:
        status = status.model_copy(update={"start_time": now})
    return reach(status, EventType.STARTED, f"training: Job {job_name}, {_shape(placement)}", now)


def _trained(status: FineTuneRunStatus, now: datetime) -> FineTuneRunStatus:
    status = _set(status, c.TRAINING_SUCCEEDED, True, c.TRAINING_COMPLETE, "training finished", now)
    return reach(status, EventType.TRAIN_FINISHED, "training finished", now)


def _after_failure(status, job: JobView, run_name: str, config: OperatorConfig, now: datetime) -> FineTuneRunStatus:
    """What an ended attempt means (kubetune.api.failures): a user error ends the run at once (a retry would
    fail the same way); a preemption resumes from its checkpoint at once, uncharged; any other failure
    resumes from the latest checkpoint within the retry budget, after a backoff."""
    attempt = status.attempt
    refused = job.user_error()
    if refused is not None:
        detail = refused.terminated_message or f"pod {refused.name} reported a user error"
        return fail(status, c.USER_ERROR, f"training failed with an error a retry cannot fix: {detail}", now)
    preemption = _stopped_by_kueue(status, job) or job.preemption()
    if preemption is not None:
        message = (
            f"attempt {attempt} (Job {job.name}) was preempted ({preemption}); resuming from its checkpoint as attempt "
            f"{attempt + 1} (Job {names.training_job(run_name, attempt + 1)}), not charged to the retry budget"
        )
        status = status.model_copy(update={"preemptions": status.preemptions + 1})
        status = _set(status, c.SCHEDULED, False, c.PREEMPTED, message, now)
        return _enter(status, Phase.QUEUED, message, now)
    cause = job.first_failure_message() or job.failure_message or job.failure_reason or "a training pod failed"
    status = _counted_restart(status, f"attempt {attempt} (Job {job.name}) failed: {cause}", c.RESTARTING, run_name, config, now)
    if status.phase == Phase.FAILED.value:
        return status
    return _set(status, c.TRAINING_SUCCEEDED, False, c.RESTARTING, status.message, now)


def _stopped_by_kueue(status: FineTuneRunStatus, job: JobView) -> str | None:
    """Kueue suspended the Job and the pods it stopped then failed it: a Job's podFailurePolicy counts a pod that
    exits non-zero on SIGTERM even while the Job is suspended. A preemption like any other, whatever the exit
    codes say: the next attempt resumes from the checkpoint, waiting in the queue again, uncharged."""
    scheduled = c.find(status.conditions, c.SCHEDULED)
    if job.suspended or (scheduled is not None and scheduled.reason == c.KUEUE_PREEMPTED):
        return f"Kueue suspended it: {job.queue_reason}" if job.queue_reason else "Kueue suspended it"
    return None


def _counted_restart(status, what: str, reason: str, run_name: str, config: OperatorConfig, now) -> FineTuneRunStatus:
    """An attempt ended by a failure (`what` happened to it), charged to the retry budget: the next attempt
    resumes from the latest checkpoint after the backoff, or the run fails once the budget is spent."""
    if status.restarts >= status.max_restarts:
        return fail(status, c.RETRY_BUDGET_EXHAUSTED, f"{what}; no retry left after {status.restarts + 1} failed attempts", now)
    following = status.attempt + 1
    message = (
        f"{what}; resuming from the latest checkpoint as attempt {following} (Job {names.training_job(run_name, following)}) "
        f"in {restart_delay(status.restarts + 1, config):g} s"
    )
    status = status.model_copy(update={"restarts": status.restarts + 1})
    status = _set(status, c.SCHEDULED, False, reason, message, now)
    return _enter(status, Phase.QUEUED, message, now)


def restart_delay(restarts: int, config: OperatorConfig) -> float:
    """The backoff before the attempt that follows the `restarts`-th failure: doubling from the first delay up to
    the maximum, so a fault that keeps coming back (a bad node, a flaky store) does not burn GPU hours in a loop."""
    backoff = config.defaults.restart_backoff
    return min(backoff.max_seconds, backoff.initial_seconds * 2 ** max(restarts - 1, 0))


def backoff_left(status: FineTuneRunStatus, config: OperatorConfig, now: datetime) -> float:
    """Seconds before the next attempt may start: after a failure or a lost Job, never after a preemption."""
    scheduled = c.find(status.conditions, c.SCHEDULED)
    if scheduled is None or scheduled.reason not in (c.RESTARTING, c.JOB_LOST) or status.restarts == 0:
        return 0.0
    due = scheduled.last_transition_time.timestamp() + restart_delay(status.restarts, config)
    return max(0.0, due - now.timestamp())


def retry_budget(spec: FineTuneRunSpec, config: OperatorConfig) -> int:
    """spec.maxRestarts within the operator's limit, else the operator's default."""
    if spec.max_restarts is None:
        return config.defaults.max_restarts
    if spec.max_restarts > config.defaults.max_restarts_limit:
        rule = f"must be at most {config.defaults.max_restarts_limit} (the operator's defaults.maxRestartsLimit)"
        raise SpecError([SpecProblem("spec.maxRestarts", rule, spec.max_restarts)])
    return spec.max_restarts


def _job_created(status: FineTuneRunStatus) -> bool:
    """The current attempt's Job was created (Scheduled says what became of it) and has not ended."""
    scheduled = c.find(status.conditions, c.SCHEDULED)
    in_flight = (c.JOB_CREATED, c.WAITING_FOR_QUEUE, c.KUEUE_PREEMPTED, c.KUEUE_NOT_INSTALLED, c.UNSCHEDULABLE, c.PODS_RUNNING)
    return scheduled is not None and scheduled.reason in in_flight


def _lost_job(status, job_name: str, run_name: str, config, now: datetime, cause: str = "was deleted") -> FineTuneRunStatus:
    """The current attempt's Job is gone (someone deleted it) or is being replaced (stalled): a restart like
    any failure, counted against the budget (deleting Jobs must not escape it), with a Warning Event."""
    return _counted_restart(status, f"Job {job_name} {cause}", c.JOB_LOST, run_name, config, now)


def _foreign_job(status, run: RunRef, job_name: str, now: datetime) -> FineTuneRunStatus:
    message = (
        f"Job {job_name} belongs to another FineTuneRun named {run.name} (deleted with --cascade=orphan?); "
        f"it is never adopted: delete it (kubectl delete job {job_name} -n {run.namespace}) and create the run again"
    )
    return fail(status, c.CHILD_REJECTED, message, now)


def _registration_step(run, spec: FineTuneRunSpec, config: OperatorConfig, status, now) -> Plan:
    report = run.report
    if report is None or not report.export_uri:
        return Plan(fail(status, c.EXPORT_MISSING, "training finished but the trainer reported no exportUri", now))
    name = spec.registered_model_name(run.ref.name)
    message = f"registering {name} from {report.export_uri}"
    if not c.find(status.conditions, c.MODEL_REGISTERED):
        status = _set(status, c.MODEL_REGISTERED, False, c.REGISTRATION_PENDING, message, now)
    status = _enter(status, Phase.REGISTERING, message, now)
    request = RegistrationRequest(
        tracking_uri=config.mlflow.registry_uri or config.mlflow.tracking_uri,
        name=name,
        source=report.export_uri,
        run_id=report.mlflow_run_id,
        tags=run_tags(run.ref.namespace, run.ref.name, run.ref.uid),
        allowed_names=expand_register_to(config.access.register_to_for(run.ref.namespace)[0], run.ref.namespace),
    )
    return Plan(status, register=request)


def registered(status: FineTuneRunStatus, name: str, version: str, now: datetime) -> FineTuneRunStatus:
    message = f"registered {name} version {version}"
    status = _set(status, c.MODEL_REGISTERED, True, c.MODEL_REGISTERED_REASON, message, now)
    status = _set(status, c.SUCCEEDED, True, c.RUN_SUCCEEDED, message, now)
    status = _enter(status, Phase.SUCCEEDED, message, now)
    return status.model_copy(
        update={
            "registered_model": RegisteredModel(name=name, version=version),
            "completion_time": now,
            "events": add_event(status.events, EventType.COMPLETED.value, message, now),
        }
    )


def registry_unavailable(status: FineTuneRunStatus, tracking_uri: str, now: datetime) -> FineTuneRunStatus:
    """The message stays the same across retries, so a retry that fails again writes nothing."""
    message = f"MLflow at {tracking_uri} is unavailable; retrying with backoff"
    return _set(status, c.MODEL_REGISTERED, False, c.REGISTRY_UNAVAILABLE, message, now)


def fail(status: FineTuneRunStatus, reason: str, message: str, now: datetime) -> FineTuneRunStatus:
    status = _set(status, c.FAILED, True, reason, message, now)
    status = _set(status, c.SUCCEEDED, False, c.RUN_FAILED, message, now)
    status = _end(_enter(status, Phase.FAILED, message, now), message, now)
    return status.model_copy(
        update={"completion_time": now, "events": add_event(status.events, EventType.FAILED.value, message, now)}
    )


def _cancel(status: FineTuneRunStatus, config: OperatorConfig, run: RunRef, now: datetime) -> FineTuneRunStatus:
    kept = run_checkpoint_dir(Path(config.checkpoints.mount_path), run.name)
    message = f"cancelled (spec.suspend); checkpoints kept in claim {config.checkpoints.claim_name} at {kept}"
    status = _set(status, c.CANCELLED, True, c.CANCELLED_BY_USER, message, now)
    status = _set(status, c.SUCCEEDED, False, c.RUN_CANCELLED, message, now)
    status = _end(_enter(status, Phase.CANCELLED, message, now), message, now)
    return status.model_copy(
        update={"completion_time": now, "events": add_event(status.events, EventType.CANCELED.value, message, now)}
    )


def _end(status: FineTuneRunStatus, message: str, now: datetime) -> FineTuneRunStatus:
    """A run that stopped short: no step stays under way, and progress keeps how far it got without an ETA."""
    conditions = c.settle(status.conditions, message, now, status.observed_generation)
    progress = status.progress
    if progress is not None:
        display = f"{progress.percent}%" if progress.percent is not None else None
        progress = progress.model_copy(update={"eta": None, "display": display})
    return status.model_copy(update={"conditions": conditions, "progress": progress})


def _set(status: FineTuneRunStatus, type_: str, value: bool, reason: str, message: str, now: datetime):
    updated = c.set_condition(status.conditions, type_, value, reason, message, now, status.observed_generation)
    return status.model_copy(update={"conditions": updated})


def _enter(status: FineTuneRunStatus, phase: Phase, message: str, now: datetime) -> FineTuneRunStatus:
    """The phase and its message, summarised in the Ready condition (True only once the run Succeeded)."""
    status = _set(status, c.READY, phase is Phase.SUCCEEDED, phase.value, message, now)
    return status.model_copy(update={"phase": phase.value, "message": message})


def _accepted(placement: Placement) -> str:
    """The shape, and the memory plan where there is one (what each GPU will hold, before any is requested)."""
    if placement.memory is None:
        return _shape(placement)
    estimate = placement.memory.estimate
    return (
        f"{_shape(placement)}; memory plan: {estimate.total / 2**30:.1f} GiB per GPU of "
        f"{placement.pool.gpu_memory_gib:g} GiB"
    )


def _shape(placement: Placement) -> str:
    return f"{placement.nodes} node(s) x {placement.gpus_per_node} GPU(s) on pool {placement.pool_name!r}"
