"""What the cluster says about a run's Jobs: raw Job and Pod dicts in, a small typed summary out."""

from dataclasses import dataclass, field
from typing import Any

from kubetune.api.failures import USER_ERROR_EXIT, read_termination_message


@dataclass(frozen=True)
class PodView:
    name: str
    phase: str
    node: str | None = None
    unschedulable: str | None = None  # the scheduler's message while it cannot place the pod
    terminated_message: str | None = None  # the container's termination message (or its last log lines)
    user_error: bool = False  # the trainer said a retry cannot help (kubetune.api.failures)


@dataclass(frozen=True)
class JobView:
    name: str
    suspended: bool = False
    complete: bool = False
    failed: bool = False
    failure_reason: str | None = None
    failure_message: str | None = None
    pods: list[PodView] = field(default_factory=list)

    def unschedulable_pods(self) -> list[PodView]:
        return [p for p in self.pods if p.unschedulable is not None]

    def first_failure_message(self) -> str | None:
        return next((p.terminated_message for p in self.pods if p.phase == "Failed" and p.terminated_message), None)

    def user_error(self) -> PodView | None:
        """A failed pod whose trainer said a retry cannot help."""
        return next((p for p in self.pods if p.phase == "Failed" and p.user_error), None)


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
    marked, message = read_termination_message(message) if message else (False, None)
    return PodView(
        name=pod["metadata"]["name"],
        phase=status.get("phase", "Pending"),
        node=(pod.get("spec") or {}).get("nodeName"),
        unschedulable=unschedulable,
        terminated_message=message,
        # The mark, or the trainer's own code where it ran without torchrun in front of it.
        user_error=marked or any(t.get("exitCode") == USER_ERROR_EXIT for t in terminated),
    )


def job_view(job: dict[str, Any], pods: list[dict[str, Any]]) -> JobView:
    failed = _condition(job, "Failed")
    return JobView(
        name=job["metadata"]["name"],
        suspended=bool((job.get("spec") or {}).get("suspend")),
        complete=_condition(job, "Complete") is not None,
        failed=failed is not None,
        failure_reason=(failed or {}).get("reason"),
        failure_message=(failed or {}).get("message"),
        pods=sorted((pod_view(p) for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")), key=lambda p: p.name),
    )
