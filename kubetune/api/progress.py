"""The trainer → operator progress contract.

The trainer (rank 0) sends a TrainerReport: in a cluster it patches the `REPORT_KEY`
of its run's report ConfigMap (the only object its identity may write); locally it
writes a JSON file. The operator reads the report as untrusted input, keeps the run's
progress, metrics, checkpoints and events from it, and mirrors the last one it folded
in `status.report`. Phase, conditions and the registered model come only from what the
operator observed.
"""

from datetime import datetime
from enum import Enum

from pydantic import Field

from kubetune.api.spec import _CamelModel

REPORT_KEY = "report.json"  # the report ConfigMap's one key: the report as JSON


class TrainerStage(str, Enum):
    DATA_VALIDATED = "DATA_VALIDATED"
    MODEL_INITIALIZED = "MODEL_INITIALIZED"
    TRAINING = "TRAINING"
    TRAIN_FINISHED = "TRAIN_FINISHED"
    FAILED = "FAILED"
    PREEMPTED = "PREEMPTED"  # stopped on SIGTERM after a checkpoint; the next attempt resumes


class CheckpointRef(_CamelModel):
    """A complete checkpoint of the run."""

    name: str = Field(..., description="ep{E}-ba{B}: epochs completed and optimizer steps done.")
    path: str = Field(..., description="Its folder on the checkpoint volume, as the trainer's pods mount it.")
    step: int
    epoch: int | None = None
    created_at: datetime | None = None
    location: str | None = Field(
        None, description="Where it is for a user: pvc://CLAIM/<run>/checkpoints/<name> in a cluster, a local path in local mode."
    )
    mlflow_uri: str | None = Field(
        None, description="runs:/<MLflow run id>/checkpoints/<name>: where MLflow lists it; usable as customWeightsPath."
    )


class TrainerReport(_CamelModel):
    """The trainer's latest report (rank 0); the operator folds it into progress, metrics and checkpoints."""

    stage: TrainerStage
    updated_at: datetime
    attempt: int = Field(0, description="Which training attempt sent this (restarts plus preemptions so far).")
    epoch: int | None = None
    total_epochs: int | None = None
    step: int = 0
    total_steps: int | None = None
    tokens_seen: int = 0
    tokens_total: int | None = None
    train_loss: float | None = None
    eval_loss: float | None = None
    learning_rate: float | None = None
    tokens_per_second: float | None = None
    checkpoints: list[CheckpointRef] = Field(default_factory=list)
    mlflow_experiment_id: str | None = None
    mlflow_run_id: str | None = None
    export_uri: str | None = Field(None, description="The finished model: the MLflow logged model (models:/m-...) the trainer wrote around its Hugging Face export, or an artifact URI or path.")
    message: str | None = None


def train_update_message(report: TrainerReport, eta_seconds: float | None) -> str:
    """A report as Databricks' TRAIN_UPDATED event reads: `[epoch=1/3][batch=50/56][ETA=5min] Train loss: 1.71`.

    One wording for the cluster (the operator's status.events) and local mode (printed events).
    """
    parts = []
    if report.epoch is not None:
        parts.append(f"[epoch={report.epoch}/{report.total_epochs or '?'}]")
    parts.append(f"[batch={report.step}/{report.total_steps or '?'}]")
    if eta_seconds is not None:
        parts.append(f"[ETA={max(0, round(eta_seconds / 60))}min]")
    text = "".join(parts)
    if report.train_loss is not None:
        text += f" Train loss: {report.train_loss:.4g}"
    if report.eval_loss is not None:
        text += f", eval loss: {report.eval_loss:.4g}"
    return text
