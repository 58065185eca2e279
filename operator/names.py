"""Deterministic names and labels of a run's children: the same run always maps to the same objects.

Every reconcile derives these from the run's name (and the attempt number, restarts plus
preemptions in the status), so an operator restart finds what it created before instead of
creating it twice.
"""

RUN_LABEL = "kubetune.io/run"
COMPONENT_LABEL = "kubetune.io/component"
ATTEMPT_LABEL = "kubetune.io/attempt"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "kubetune-operator"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"  # a WorkloadPriorityClass
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"

TRAINER = "trainer"
VALIDATOR = "validator"
REPORT = "report"  # the component label of the trainer's report ConfigMap

RENDEZVOUS_PORT = 29400
TRAINER_CONFIG_DIR = "/etc/kubetune"
TRAINER_CONFIG_FILE = "trainer.yaml"
# The trainer's configuration rides on its pod template, mounted as TRAINER_CONFIG_FILE by a downward-API
# volume: each attempt's Job carries its own, immutable, and no ConfigMap has to be created and kept in step.
TRAINER_CONFIG_ANNOTATION = "kubetune.io/trainer-config"


def validation_job(run: str) -> str:
    return f"{run}-validate"


def training_job(run: str, attempt: int) -> str:
    """Attempt 0 is the first; each retry after a failure and each resume after a preemption is the next."""
    return f"{run}-train-{attempt}"


def workers_service(run: str) -> str:
    return f"{run}-workers"


def report_config_map(run: str) -> str:
    """The trainer's progress report: the one object its ServiceAccount may write (patch, this name only)."""
    return f"{run}-report"


def trainer_service_account(run: str) -> str:
    return f"{run}-trainer"


def trainer_role(run: str) -> str:
    return f"{run}-trainer"


def rendezvous_host(run: str, attempt: int, nodes: int) -> str:
    """Pod 0 of the Indexed Job, addressable through the headless Service (hostname.subdomain); a run on one
    node rendezvouses inside its own pod, with no Service."""
    return f"{training_job(run, attempt)}-0.{workers_service(run)}" if nodes > 1 else "127.0.0.1"


def labels(run: str, component: str, attempt: int | None = None) -> dict[str, str]:
    result = {RUN_LABEL: run, COMPONENT_LABEL: component, MANAGED_BY_LABEL: MANAGED_BY}
    if attempt is not None:
        result[ATTEMPT_LABEL] = str(attempt)
    return result


def run_selector(run: str) -> str:
    return f"{RUN_LABEL}={run}"
