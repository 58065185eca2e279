"""FineTuneRun.status: what the operator observes and the trainer reports.

The operator owns every field except `report`, which the trainer's rank 0 writes
(the only status write its ServiceAccount may make) and the operator folds into
`progress`, `metrics` and `checkpoints`.
"""

from datetime import datetime
from enum import Enum

from pydantic import Field

from kubetune.api.progress import CheckpointRef, TrainerReport
from kubetune.api.spec import _CamelModel

MAX_EVENTS = 100  # the bounded `events` history kept in status


class Phase(str, Enum):
    PENDING = "Pending"
    VALIDATING = "Validating"
    QUEUED = "Queued"
    RUNNING = "Running"
    REGISTERING = "Registering"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED)


class ConditionStatus(str, Enum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(_CamelModel):
    """A Kubernetes-style condition; lastTransitionTime changes only when status flips."""

    type: str
    status: ConditionStatus
    reason: str = Field(..., pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = ""
    last_transition_time: datetime
    observed_generation: int | None = None


class Progress(_CamelModel):
    epoch: int | None = Field(None, description="Current epoch, from 1.")
    total_epochs: int | None = None
    step: int | None = Field(None, description="Optimizer steps (batches) done.")
    total_steps: int | None = None
    tokens_seen: int | None = None
    tokens_total: int | None = None
    percent: int | None = Field(None, ge=0, le=100)
    eta: datetime | None = Field(None, description="Estimated end of training.")
    display: str | None = Field(None, description="Shown by `kubectl get ftr`, e.g. '42% ETA 12m'.")


class Metrics(_CamelModel):
    train_loss: float | None = None
    eval_loss: float | None = None
    tokens_per_second: float | None = None
    learning_rate: float | None = None


class MlflowRef(_CamelModel):
    experiment_path: str | None = None
    experiment_id: str | None = None
    run_id: str | None = None


class RegisteredModel(_CamelModel):
    name: str
    version: str


class RunEvent(_CamelModel):
    """One entry of the run's history, typed like Databricks' events (CREATED, TRAIN_UPDATED, COMPLETED…)."""

    type: str
    time: datetime
    message: str = ""


class FineTuneRunStatus(_CamelModel):
    phase: Phase | None = None
    message: str | None = Field(None, description="A human summary of the current state.")
    conditions: list[Condition] = Field(default_factory=list)
    progress: Progress | None = None
    metrics: Metrics | None = None
    checkpoints: list[CheckpointRef] = Field(default_factory=list)
    mlflow: MlflowRef | None = None
    registered_model: RegisteredModel | None = None
    events: list[RunEvent] = Field(
        default_factory=list,
        description=f"The run's history, at most {MAX_EVENTS} entries: the oldest TRAIN_UPDATED entries make room first, "
        "so once-only events stay.",
    )
    milestones: list[str] = Field(
        default_factory=list,
        description="The once-only events the run has reached (CREATED, STARTED, DATA_VALIDATED, MODEL_INITIALIZED, "
        "TRAIN_FINISHED): each is added to events once, when the run first reaches it.",
    )
    start_time: datetime | None = None
    completion_time: datetime | None = None
    restarts: int = 0
    observed_generation: int | None = None
    report: TrainerReport | None = Field(None, description="Written by the trainer; folded into the fields above.")
