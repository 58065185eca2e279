"""FineTuneRun.status: what the operator observes and the trainer reports.

The operator alone writes it. The trainer's rank 0 reports into the run's report
ConfigMap (the only object its ServiceAccount may write); the operator folds that
report into `progress`, `metrics` and `checkpoints` and mirrors it in `report`.
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
    """A Kubernetes-style condition; lastTransitionTime changes only when status flips. Types: SpecValid,
    InputsValidated, Scheduled, Stalled, TrainingSucceeded, ModelRegistered, Succeeded, Failed, Cancelled and Ready
    (the summary: True only once the run Succeeded; its reason is the phase). Once a run has Failed or is
    Cancelled no condition stays under way: such steps become False with reason RunEnded, and Succeeded is
    False with reason RunFailed or RunCancelled. The user guide lists every reason."""

    type: str
    status: ConditionStatus
    reason: str = Field(..., pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = ""
    last_transition_time: datetime
    observed_generation: int | None = None


class Progress(_CamelModel):
    """How far training has got, from the trainer's latest report."""

    epoch: int | None = Field(None, description="Current epoch, from 1.")
    total_epochs: int | None = Field(None, description="Epochs the run trains for.")
    step: int | None = Field(None, description="Optimizer steps (batches) done.")
    total_steps: int | None = Field(None, description="Optimizer steps the run trains for.")
    tokens_seen: int | None = Field(None, description="Training tokens processed so far (padding excluded).")
    tokens_total: int | None = Field(None, description="Training tokens of the whole run.")
    percent: int | None = Field(None, ge=0, le=100, description="Share of the run done; kept when a run stops short.")
    eta: datetime | None = Field(None, description="Estimated end of training; none once the run has ended.")
    display: str | None = Field(None, description="Shown by `kubectl get ftr`, e.g. '42% ETA 12m'.")


class Metrics(_CamelModel):
    """The latest metrics the trainer reported (the full curves are in MLflow)."""

    train_loss: float | None = Field(None, description="Mean loss per loss token of the last optimizer step.")
    eval_loss: float | None = Field(None, description="Loss on evalDataPath at the last checkpoint.")
    tokens_per_second: float | None = Field(None, description="Real (unpadded) training tokens per second, all ranks.")
    learning_rate: float | None = Field(None, description="The learning rate of the last step.")


class MlflowRef(_CamelModel):
    """Where the run logs in MLflow."""

    experiment_path: str | None = Field(None, description="The MLflow experiment's name.")
    experiment_id: str | None = None
    run_id: str | None = Field(None, description="The MLflow run holding params, metrics, generations and the model.")


class RegisteredModel(_CamelModel):
    """The model version registration created (set once the run Succeeded)."""

    name: str = Field(..., description="<catalog>.<schema>.<name> in the MLflow model registry.")
    version: str


class RunEvent(_CamelModel):
    """One entry of the run's history, typed like Databricks' events (CREATED, TRAIN_UPDATED, COMPLETED…)."""

    type: str
    time: datetime
    message: str = ""


class Usage(_CamelModel):
    """What the run has consumed, derived from times the status records (so an operator restart changes nothing).
    Updated with every status change: while the pods run, with each trainer report."""

    pool: str | None = Field(None, description="The node pool the training pods run on.")
    gpus: int | None = Field(None, ge=0, description="GPUs the training pods hold: nodes x GPUs per node.")
    gpu_seconds: int = Field(
        0,
        ge=0,
        description="GPU-seconds consumed: for every attempt, the time all its training pods ran times its GPUs, "
        "summed over attempts.",
    )
    counted_until: datetime | None = Field(None, description="The time gpuSeconds counts up to (its last update).")
    queue_wait_seconds: int | None = Field(
        None, ge=0, description="From the run's creation until every training pod first ran (startTime)."
    )
    time_to_first_step_seconds: int | None = Field(
        None, ge=0, description="From startTime until the operator first saw a training step done."
    )
    estimated_cost: float | None = Field(
        None,
        ge=0,
        description="gpuSeconds / 3600 x the pool's pricePerGpuHour in the operator configuration, in that price's "
        "currency; absent when the pool has no price.",
    )


class FineTuneRunStatus(_CamelModel):
    """What the operator observed of the run, and the trainer's last report it folded (`report`)."""

    phase: Phase | None = Field(
        None,
        description="Pending, Validating, Queued, Running, Registering, then Succeeded, Failed or Cancelled (final).",
    )
    message: str | None = Field(None, description="A human summary of the current state.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Kubernetes conditions: SpecValid, InputsValidated, Scheduled, Stalled, TrainingSucceeded, ModelRegistered, "
        "Succeeded, Failed, Cancelled, and Ready (True only once the run Succeeded; for `kubectl wait` and GitOps).",
    )
    progress: Progress | None = Field(None, description="Epoch, step, tokens, percent and ETA of training.")
    metrics: Metrics | None = Field(None, description="The latest train and eval loss, tokens/s and learning rate.")
    checkpoints: list[CheckpointRef] = Field(
        default_factory=list, description="Complete checkpoints, oldest first (usable as customWeightsPath)."
    )
    mlflow: MlflowRef | None = Field(None, description="The run's MLflow experiment and run.")
    registered_model: RegisteredModel | None = Field(None, description="The registered model version, once Succeeded.")
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
    start_time: datetime | None = Field(None, description="When every training pod first ran.")
    last_progress_time: datetime | None = Field(
        None, description="When the operator last saw the trainer reach a new step or stage (stall detection)."
    )
    completion_time: datetime | None = Field(None, description="When the run reached a final phase.")
    restarts: int = Field(
        0, description="Failed training attempts that were retried (each resumes from the latest checkpoint), "
        "charged to the retry budget."
    )
    preemptions: int = Field(
        0, description="Training attempts ended by a preemption, eviction or lost node: resumed from their checkpoint at "
        "once, not charged to the retry budget."
    )
    max_restarts: int | None = Field(
        None, description="This run's retry budget: spec.maxRestarts, else the operator's default."
    )
    usage: Usage | None = Field(
        None, description="GPU-seconds consumed, queue wait, time to first step and, where the pool has a price, the cost."
    )
    observed_generation: int | None = Field(None, description="The metadata.generation this status was decided from.")
    report: TrainerReport | None = Field(
        None,
        description="The trainer's last report the operator folded into the fields above (a copy, written by the "
        "operator; the trainer writes only the run's <name>-report ConfigMap).",
    )

    @property
    def attempt(self) -> int:
        """The current training attempt (its Job is <run>-train-<attempt>): every retry and every preemption."""
        return self.restarts + self.preemptions
