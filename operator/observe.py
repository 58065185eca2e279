"""What the cluster says about a run's Jobs: raw Job and Pod dicts in, a small typed summary out."""

from dataclasses import dataclass, field
from typing import Any

from kubetune.api.failures import USER_ERROR_EXIT, EndedAs, read_termination_message


@dataclass(frozen=True)
class PodView:
    name: str
    phase: str
    node: str | None = None
    unschedulable: str | None = None  # the scheduler's message while it cannot place the pod
    terminated_message: str | None = None  # the container's termination message (or its last log lines)
    ended_as: EndedAs | None = None  # what the trainer called its end (kubetune.api.failures), once terminated
    disrupted: str | None = None  # Kubernetes' DisruptionTarget reason: preempted, evicted, node lost or drained
    terminating: bool = False


@dataclass(frozen=True)
class PodRefusal:
    """The API server refused to create a Job's pods: the Job controller's FailedCreate Event."""

    message: str  # the refusal's text, as the API server gave it
    waits: bool  # it can pass by itself (quota frees up, a webhook answers again); else the run fails


# Refusals that can pass without anyone changing the run or the namespace: a quota frees up as other pods
# end, a webhook that could not be reached answers again, an object created a moment ago appears. Every other
# refusal (Pod Security admission, a webhook or admission policy that denies, a LimitRange) comes back the same
# on every try the Job controller makes.
_PASSING_REFUSALS = ("exceeded quota", "failed calling webhook", "not found", "deadline exceeded", "timeout")


def pod_refusal(events: list[dict[str, Any]]) -> PodRefusal | None:
    """The newest FailedCreate Event among a Job's Events, or None."""
    refused = [e for e in events if e.get("reason") == "FailedCreate" and e.get("message")]
    if not refused:
        return None
    newest = max(refused, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    message = newest["message"].removeprefix("Error creating: ").strip()
    return PodRefusal(message, waits=any(marker in message.lower() for marker in _PASSING_REFUSALS))


def awaits_pods(job: dict[str, Any], pods: list[dict[str, Any]]) -> bool:
    """A Job that should have pods and has none: the only state in which its FailedCreate Events are read."""
    unfinished = _condition(job, "Complete") is None and _condition(job, "Failed") is None
    return unfinished and not pods and not (job.get("spec") or {}).get("suspend")


@dataclass(frozen=True)
class JobView:
    name: str
    suspended: bool = False
    complete: bool = False
    failed: bool = False
    failure_reason: str | None = None
    failure_message: str | None = None
    pods: list[PodView] = field(default_factory=list)  # live pods (not terminating)
    ending_pods: list[PodView] = field(default_factory=list)  # pods being deleted: evicted, preempted, replaced
    refused: PodRefusal | None = None  # the API server refuses to create its pods (read only while it has none)
    queue_reason: str | None = None  # why Kueue holds it, from its Workload (read only while it is suspended)

    def unschedulable_pods(self) -> list[PodView]:
        return [p for p in self.pods if p.unschedulable is not None]

    def first_failure_message(self) -> str | None:
        return next((p.terminated_message for p in self._ended() if p.terminated_message), None)

    def user_error(self) -> PodView | None:
        """A failed pod whose trainer said a retry cannot help."""
        return next((p for p in self._ended() if p.ended_as is EndedAs.USER_ERROR), None)

    def does_not_fit(self) -> PodView | None:
        """A failed validation pod whose memory plan said the model would run out of GPU memory."""
        return next((p for p in self._ended() if p.ended_as is EndedAs.DOES_NOT_FIT), None)

    def preemption(self) -> str | None:
        """Why the attempt was preempted, or None when it failed: Kubernetes marked a pod as a disruption
        target (its word, whatever the trainer managed to do), or every pod that ended with a message
        stopped on SIGTERM with a checkpoint (a pod deleted by hand, a drain without the condition). One
        pod that failed on its own makes the attempt a failure, charged to the retry budget."""
        disrupted = next((p for p in [*self.pods, *self.ending_pods] if p.disrupted), None)
        if disrupted is not None:
            return f"pod {disrupted.name}: {disrupted.disrupted}"
        if "DisruptionTarget" in (self.failure_message or ""):  # the pod itself may be gone already
            return self.failure_message
        messages = [p for p in self._ended() if p.terminated_message]
        if messages and all(p.ended_as is EndedAs.PREEMPTED for p in messages):
            return f"pod {messages[0].name}: {messages[0].terminated_message}"
        return None

    def _ended(self) -> list[PodView]:
        return [p for p in [*self.pods, *self.ending_pods] if p.phase == "Failed"]


def kueue_reason(workloads: list[dict[str, Any]]) -> str | None:
    """Why Kueue holds a Job, in Kueue's words: its newest Workload's eviction, else why it has no quota yet."""
    if not workloads:
        return None
    newest = max(workloads, key=lambda w: w["metadata"].get("creationTimestamp") or "")
    conditions = {c.get("type"): c for c in (newest.get("status") or {}).get("conditions") or []}
    for type_, status in (("Evicted", "True"), ("QuotaReserved", "False")):
        condition = conditions.get(type_)
        if condition is not None and condition.get("status") == status and condition.get("message"):
            return condition["message"]
    return None


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return condition
    return None


def pod_view(pod: dict[str, Any]) -> PodView:
    status = pod.get("status") or {}
    scheduled = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
    unschedulable = None
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        unschedulable = scheduled.get("message") or "Unschedulable"
    terminated = [((cs.get("state") or {}).get("terminated") or {}) for cs in status.get("containerStatuses") or []]
    message = next((t["message"].strip() for t in terminated if (t.get("message") or "").strip()), None)
    ended_as, message = read_termination_message(message) if message else (None, None)
    codes = [t["exitCode"] for t in terminated if "exitCode" in t]
    if ended_as in (None, EndedAs.FAULT) and codes:
        # The trainer's own code where it ran without torchrun in front of it; a user error only: any
        # container killed by SIGTERM exits 143, so only the mark tells a checkpointed stop from that.
        ended_as = EndedAs.USER_ERROR if USER_ERROR_EXIT in codes else EndedAs.FAULT
    disruption = _condition(pod, "DisruptionTarget")
    return PodView(
        name=pod["metadata"]["name"],
        phase=status.get("phase", "Pending"),
        node=(pod.get("spec") or {}).get("nodeName"),
        unschedulable=unschedulable,
        terminated_message=message,
        ended_as=ended_as,
        disrupted=(f"{disruption.get('reason')}: {disruption.get('message') or ''}".rstrip(": ") if disruption else None),
        terminating=bool((pod.get("metadata") or {}).get("deletionTimestamp")),
    )


def job_view(job: dict[str, Any], pods: list[dict[str, Any]], events: list[dict[str, Any]] | None = None) -> JobView:
    failed = _condition(job, "Failed")
    views = sorted((pod_view(p) for p in pods), key=lambda p: p.name)
    return JobView(
        name=job["metadata"]["name"],
        suspended=bool((job.get("spec") or {}).get("suspend")),
        complete=_condition(job, "Complete") is not None,
        failed=failed is not None,
        failure_reason=(failed or {}).get("reason"),
        failure_message=(failed or {}).get("message"),
        pods=[v for v in views if not v.terminating],
        ending_pods=[v for v in views if v.terminating],
        refused=pod_refusal(events or []),
    )
