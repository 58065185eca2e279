"""What a run's Jobs carry for Kueue: the LocalQueue and WorkloadPriorityClass labels, from the run's own labels
or the operator configuration's defaults. A Job with a queue is created suspended: Kueue admits it by
unsuspending it (so Kueue's Job webhook, which would suspend it, is not needed)."""

from kubetune.api.errors import SpecError, SpecProblem
from kubetune.operator import names
from kubetune.operator.builders.common import Manifest, allow_list_problems
from kubetune.operator.config import OperatorConfig

PRIORITY_FIELD = f"metadata.labels[{names.KUEUE_PRIORITY_LABEL}]"


def queue_name(run_labels: dict[str, str], config: OperatorConfig) -> str | None:
    """The run's own Kueue label wins over the configured default queue."""
    return run_labels.get(names.KUEUE_QUEUE_LABEL) or config.kueue.queue_name


def priority_class(run_labels: dict[str, str], config: OperatorConfig) -> str | None:
    """The run's own WorkloadPriorityClass label wins over the configured default."""
    return run_labels.get(names.KUEUE_PRIORITY_LABEL) or config.kueue.priority_class_name


def validation_queue(run_labels: dict[str, str], config: OperatorConfig) -> str | None:
    """The validation Job's queue: the training Job's, unless the configuration keeps validation outside Kueue."""
    return queue_name(run_labels, config) if config.kueue.queue_validation else None


def job_labels(queue: str | None, priority: str | None) -> dict[str, str]:
    """Kueue's labels of a Job; none without a queue (Kueue then ignores the Job)."""
    if not queue:
        return {}
    labels = {names.KUEUE_QUEUE_LABEL: queue}
    if priority:
        labels[names.KUEUE_PRIORITY_LABEL] = priority
    return labels


def queued(job: Manifest, queue: str | None, priority: str | None) -> Manifest:
    """The Job with Kueue's labels and, with a queue, created suspended until Kueue admits it."""
    extra = job_labels(queue, priority)
    metadata = {**job["metadata"], "labels": {**job["metadata"]["labels"], **extra}}
    return {**job, "metadata": metadata, "spec": {**job["spec"], "suspend": bool(queue)}}


def priority_problems(run_labels: dict[str, str], config: OperatorConfig) -> list[SpecProblem]:
    """A run's WorkloadPriorityClass label must be one the configuration allows (priority decides who Kueue
    preempts, so a namespace must not grant itself any)."""
    return allow_list_problems(
        PRIORITY_FIELD, run_labels.get(names.KUEUE_PRIORITY_LABEL), config.kueue.allowed_priority_classes,
        "WorkloadPriorityClass label", "kueue.allowedPriorityClasses",
    )


def check_priority(run_labels: dict[str, str], config: OperatorConfig) -> None:
    """Raise SpecError (the run fails InvalidSpec) for a WorkloadPriorityClass label the configuration refuses."""
    problems = priority_problems(run_labels, config)
    if problems:
        raise SpecError(problems)
