"""Status conditions: types, reasons as named constants, and a pure set_condition.

Each change of a condition (status, reason or message) is a transition: the
reconciler emits a Kubernetes Event with the condition's reason after the status
write that recorded it succeeded.
"""

from dataclasses import dataclass
from datetime import datetime

from kubetune.api.status import Condition, ConditionStatus

# Condition types.
SPEC_VALID = "SpecValid"
INPUTS_VALIDATED = "InputsValidated"
SCHEDULED = "Scheduled"
TRAINING_SUCCEEDED = "TrainingSucceeded"
MODEL_REGISTERED = "ModelRegistered"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
CANCELLED = "Cancelled"
STALLED = "Stalled"
READY = "Ready"  # the summary GitOps tools and `kubectl wait` read: True once the run Succeeded

# Reasons.
SPEC_ACCEPTED = "SpecAccepted"
INVALID_SPEC = "InvalidSpec"
VALIDATION_RUNNING = "ValidationRunning"
VALIDATION_PASSED = "ValidationPassed"
VALIDATION_FAILED = "ValidationFailed"
JOB_CREATED = "JobCreated"
WAITING_FOR_QUEUE = "WaitingForQueue"
KUEUE_PREEMPTED = "KueuePreempted"  # Kueue suspended an admitted Job: it waits in its queue again, same Job
KUEUE_NOT_INSTALLED = "KueueNotInstalled"  # a Job waits in a Kueue queue on a cluster without Kueue
UNSCHEDULABLE = "Unschedulable"
PODS_RUNNING = "PodsRunning"
TRAINING_COMPLETE = "TrainingComplete"
RESTARTING = "RestartingFromCheckpoint"
RETRY_BUDGET_EXHAUSTED = "RetryBudgetExhausted"
REGISTRATION_PENDING = "RegistrationPending"
REGISTRY_UNAVAILABLE = "RegistryUnavailable"
EXPORT_MISSING = "ExportMissing"
REGISTRATION_FAILED = "RegistrationFailed"
MODEL_REGISTERED_REASON = "ModelRegistered"
RUN_SUCCEEDED = "RunSucceeded"
CANCELLED_BY_USER = "CancelledByUser"
CHILD_REJECTED = "ChildRejected"
USER_ERROR = "UserError"
JOB_LOST = "JobLost"
PREEMPTED = "Preempted"
DOES_NOT_FIT = "DoesNotFit"
PODS_REFUSED = "PodsRefused"  # the API server refuses to create the pods (Pod Security admission, quota, a webhook)
NO_PROGRESS = "NoProgress"
PROGRESSING = "Progressing"
RUN_FAILED = "RunFailed"
RUN_CANCELLED = "RunCancelled"
RUN_ENDED = "RunEnded"

# Reasons of a step still under way. Once the run has ended they would claim work that no longer
# happens (a Failed run "ValidationRunning", a Cancelled one with pods "PodsRunning"): settle() ends them.
IN_PROGRESS_REASONS = frozenset(
    {
        VALIDATION_RUNNING,
        JOB_CREATED,
        WAITING_FOR_QUEUE,
        KUEUE_PREEMPTED,
        KUEUE_NOT_INSTALLED,
        UNSCHEDULABLE,
        PODS_RUNNING,
        RESTARTING,
        JOB_LOST,
        PREEMPTED,
        NO_PROGRESS,
        REGISTRATION_PENDING,
        REGISTRY_UNAVAILABLE,
    }
)
# Conditions that restate another's transition get no Event of their own: Ready mirrors the phase, and
# Succeeded=False or an ended step restate the Failed or Cancelled condition's Event.
RESTATING_REASONS = frozenset({RUN_FAILED, RUN_CANCELLED, RUN_ENDED})

# Reasons that make a Warning Event rather than a Normal one.
WARNING_REASONS = frozenset(
    {
        INVALID_SPEC,
        DOES_NOT_FIT,
        PODS_REFUSED,
        VALIDATION_FAILED,
        UNSCHEDULABLE,
        RESTARTING,
        RETRY_BUDGET_EXHAUSTED,
        REGISTRY_UNAVAILABLE,
        EXPORT_MISSING,
        REGISTRATION_FAILED,
        CHILD_REJECTED,
        USER_ERROR,
        JOB_LOST,
        PREEMPTED,
        KUEUE_PREEMPTED,
        KUEUE_NOT_INSTALLED,
        NO_PROGRESS,
    }
)


def find(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: list[Condition], type_: str) -> bool:
    found = find(conditions, type_)
    return found is not None and found.status == ConditionStatus.TRUE


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: bool | ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None = None,
) -> list[Condition]:
    """A new list with the condition set; lastTransitionTime moves only when the status flips."""
    if isinstance(status, bool):
        status = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    old = find(conditions, type_)
    since = old.last_transition_time if old is not None and ConditionStatus(old.status) == status else now
    new = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    if old is None:
        return [*conditions, new]
    return [new if c.type == type_ else c for c in conditions]


@dataclass(frozen=True)
class Transition:
    """One Kubernetes Event to emit: a condition that changed."""

    type: str  # "Normal" or "Warning"
    reason: str
    message: str


def settle(conditions: list[Condition], message: str, now: datetime, generation: int | None = None) -> list[Condition]:
    """At the end of a run, every step still under way becomes False with reason RunEnded."""
    for condition in conditions:
        if condition.reason in IN_PROGRESS_REASONS:
            conditions = set_condition(conditions, condition.type, False, RUN_ENDED, message, now, generation)
    return conditions


def transitions(before: list[Condition], after: list[Condition]) -> list[Transition]:
    """The conditions whose status, reason or message changed, as Events, in condition order."""
    result = []
    for new in after:
        if new.type == READY or new.reason in RESTATING_REASONS:
            continue
        old = find(before, new.type)
        if old is not None and (old.status, old.reason, old.message) == (new.status, new.reason, new.message):
            continue
        kind = "Warning" if new.reason in WARNING_REASONS else "Normal"
        result.append(Transition(kind, new.reason, new.message))
    return result
