"""The run object: a FineTuneRun read as Databricks' TrainingRun (FinetuningRun), plus Kubetune's extras.

Also the single-run operations (read one run, cancel one run) that the run object's methods use and
that kubetune.sdk.api builds on: this module talks to kubetune.sdk.client itself and never imports
kubetune.sdk.api, which sits on top of it.
"""

import posixpath
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ValidationError

from kubetune.api.progress import CheckpointRef
from kubetune.api.status import Condition, Metrics, MlflowRef, Progress, RegisteredModel, Usage
from kubetune.sdk import build
from kubetune.sdk.client import RunsClient, get_client
from kubetune.sdk.databricks_types import CheckpointPath, TrainConfig
from kubetune.sdk.events import EventType, TrainingEvent, parse_events
from kubetune.sdk.status import RunStatus, run_status
from kubetune.sdk.timeutil import format_eta, parse_time, progress_bar

CREATED_BY_ANNOTATION = "kubetune.io/created-by"
_TRAINER_EVENTS = {EventType.MODEL_INITIALIZED.value, EventType.TRAIN_UPDATED.value, EventType.TRAIN_FINISHED.value}


@dataclass
class TrainingRun:
    """A fine-tuning run. The fields up to `run_id`, in that order, and the properties are those of Databricks'
    run object (TrainingRun); the fields after them are Kubetune's."""

    name: str
    status: RunStatus
    created_by: str | None = None
    model: str | None = None
    save_folder: str | None = None  # where the checkpoints are: the folder holding them, once there is one
    train_data_path: str | None = None
    register_to: str | None = None
    submitted_experiment_path: str | None = None
    task_type: str | None = None
    eval_data_path: str | None = None
    eval_prompts: list[str] | None = None
    custom_weights_path: str | None = None
    training_duration: str | None = None
    learning_rate: float | None = None
    context_length: int | None = None
    data_prep_cluster_id: str | None = None  # always None: Delta tables are read without a Spark cluster
    details: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    estimated_end_time: datetime | None = None
    formatted_eta: str | None = None  # time left until estimated_end_time: 45s, 12min, 3hr, 2d
    completed_at: datetime | None = None
    submitted_config: TrainConfig | None = None
    events: list[TrainingEvent] = field(default_factory=list)
    experiment_id: str | None = None
    run_id: str | None = None
    # Kubetune's own fields.
    namespace: str | None = None
    phase: str | None = None
    suspended: bool = False
    progress: Progress | None = None
    metrics: Metrics | None = None
    checkpoints: list[CheckpointRef] = field(default_factory=list)
    registered_model: RegisteredModel | None = None
    conditions: list[Condition] = field(default_factory=list)
    restarts: int = 0
    preemptions: int = 0
    usage: Usage | None = None  # GPU-seconds, queue wait, time to first step, estimated cost
    compute: dict[str, Any] | None = None
    resource: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_resource(cls, resource: dict[str, Any]) -> "TrainingRun":
        """Read a FineTuneRun object as the API server returns it."""
        metadata = resource.get("metadata") or {}
        spec = resource.get("spec") or {}
        status = resource.get("status") or {}
        events = parse_events(resource)
        progress = _parse(Progress, status.get("progress"))
        mlflow = _parse(MlflowRef, status.get("mlflow"))
        suspended = bool(spec.get("suspend"))
        started = bool(status.get("report")) or bool(progress and (progress.step or progress.percent)) or any(
            e.type in _TRAINER_EVENTS for e in events
        )
        state = run_status(status.get("phase"), suspended=suspended, training_started=started)
        checkpoints = [c for c in (_parse(CheckpointRef, c) for c in status.get("checkpoints") or []) if c]
        save_folder = posixpath.dirname((checkpoints[0].location or checkpoints[0].path).rstrip("/")) if checkpoints else None
        estimated_end = _estimated_end(state, progress, events)
        return cls(
            name=metadata.get("name", ""),
            status=state,
            created_by=(metadata.get("annotations") or {}).get(CREATED_BY_ANNOTATION),
            model=spec.get("model"),
            save_folder=save_folder,
            train_data_path=spec.get("trainDataPath"),
            register_to=spec.get("registerTo"),
            submitted_experiment_path=spec.get("experimentPath") or (mlflow.experiment_path if mlflow else None),
            task_type=spec.get("taskType"),
            eval_data_path=spec.get("evalDataPath"),
            eval_prompts=spec.get("evalPrompts"),
            custom_weights_path=spec.get("customWeightsPath"),
            training_duration=spec.get("trainingDuration"),
            learning_rate=float(spec["learningRate"]) if spec.get("learningRate") else None,
            context_length=spec.get("contextLength"),
            details=status.get("message"),
            created_at=parse_time(metadata.get("creationTimestamp")),
            started_at=parse_time(status.get("startTime")),
            estimated_end_time=estimated_end,
            formatted_eta=format_eta(estimated_end),
            completed_at=parse_time(status.get("completionTime")),
            submitted_config=_submitted_config(spec, save_folder),
            events=events,
            experiment_id=mlflow.experiment_id if mlflow else None,
            run_id=mlflow.run_id if mlflow else None,
            namespace=metadata.get("namespace"),
            phase=status.get("phase"),
            suspended=suspended,
            progress=progress,
            metrics=_parse(Metrics, status.get("metrics")),
            checkpoints=checkpoints,
            registered_model=_parse(RegisteredModel, status.get("registeredModel")),
            conditions=[c for c in (_parse(Condition, c) for c in status.get("conditions") or []) if c],
            restarts=status.get("restarts") or 0,
            preemptions=status.get("preemptions") or 0,
            usage=_parse(Usage, status.get("usage")),
            compute=spec.get("compute"),
            resource=resource,
        )

    @property
    def experiment_path(self) -> str:
        """The MLflow experiment the run logs to (the operator's record, else what was submitted)."""
        recorded = _parse(MlflowRef, (self.resource.get("status") or {}).get("mlflow"))
        path = (recorded.experiment_path if recorded else None) or self.submitted_experiment_path
        if not path:
            raise ValueError(f"run {self.name!r} has no MLflow experiment yet")
        return path

    @property
    def formatted_events(self) -> str:
        """The events as one HTML line each (what Databricks' notebook table shows)."""
        return "<br>".join(f"<nobr>{e.type} {e.time}</nobr>" for e in self.events)

    @property
    def run_progress(self) -> str:
        """`RUNNING ■■■■□□□□□□(42%)` while training, else the status."""
        if self.status is not RunStatus.RUNNING:
            return str(self.status)
        percent = self.progress.percent if self.progress and self.progress.percent is not None else _elapsed_percent(self)
        if percent is None:
            return str(self.status)
        percent = max(0, min(100, percent))
        return f"{self.status} {progress_bar(percent)}({percent}%)"

    def refresh(self) -> "TrainingRun":
        """The run as it is now (a new object, as in Databricks' SDK)."""
        return fetch_run(self)

    def cancel(self) -> int:
        """Stop the run, keeping its checkpoints; returns 1 if it was cancelled, 0 if it had already ended."""
        return int(cancel_run(*resolve_run(self)))

    def get_events(self) -> list[TrainingEvent]:
        return run_events(self)

    def get_checkpoints(self) -> list[CheckpointPath]:
        return run_checkpoints(self)


FinetuningRun = TrainingRun
RunRef = str | TrainingRun


def run_name(run: RunRef) -> str:
    """The name of a run given as a run object or a run's name."""
    if isinstance(run, TrainingRun):
        return run.name
    if isinstance(run, str) and run:
        return run
    raise TypeError(f"expected a run object or a run name, got {run!r}")


def resolve_run(run: RunRef) -> tuple[str, RunsClient]:
    """The run's name and a client for its namespace (a run object remembers where it lives)."""
    namespace = run.namespace if isinstance(run, TrainingRun) else None
    return run_name(run), get_client().in_namespace(namespace)


def fetch_run(run: RunRef) -> TrainingRun:
    """The run as it is now; RunNotFoundError names the run and namespace when it does not exist."""
    name, client = resolve_run(run)
    return TrainingRun.from_resource(client.get(name))


def cancel_run(name: str, client: RunsClient) -> bool:
    """Stop one run (spec.suspend: true); False when it had already ended or was being cancelled."""
    run = TrainingRun.from_resource(client.get(name))
    if run.status.is_terminal() or run.suspended:
        return False
    client.patch(name, build.CANCEL_PATCH)
    return True


def run_events(run: RunRef) -> list[TrainingEvent]:
    """The run's events as they are now, oldest first."""
    return fetch_run(run).events


def run_checkpoints(run: RunRef) -> list[CheckpointPath]:
    """The run's complete checkpoints as they are now, oldest first: path strings carrying name, step and epoch."""
    return [CheckpointPath(c) for c in sorted(fetch_run(run).checkpoints, key=lambda c: c.step)]


def _estimated_end(state: RunStatus, progress: Progress | None, events: list[TrainingEvent]) -> datetime | None:
    """The trainer's ETA while training runs; none once training has finished (as Databricks shows it)."""
    if state is not RunStatus.RUNNING or progress is None or progress.eta is None:
        return None
    if any(e.type == EventType.TRAIN_FINISHED for e in events):
        return None
    return parse_time(progress.eta)


def _elapsed_percent(run: TrainingRun) -> int | None:
    """Share of the time from start to the estimated end already gone (Databricks' measure)."""
    if run.started_at is None or run.estimated_end_time is None:
        return None
    total = (run.estimated_end_time - run.started_at).total_seconds()
    elapsed = (datetime.now(timezone.utc) - run.started_at).total_seconds()
    return int(elapsed / total * 100) if total > 0 else 100


def _submitted_config(spec: dict[str, Any], save_folder: str | None) -> TrainConfig | None:
    if not spec.get("model") or not spec.get("trainDataPath"):
        return None
    return TrainConfig(
        model=spec["model"],
        train_data_path=spec["trainDataPath"],
        save_folder=save_folder,
        task_type=spec.get("taskType"),
        eval_data_path=spec.get("evalDataPath"),
        eval_prompts=spec.get("evalPrompts"),
        custom_weights_path=spec.get("customWeightsPath"),
        training_duration=spec.get("trainingDuration"),
        experiment_tracker={"mlflow": {"experiment_path": spec.get("experimentPath"), "model_registry_path": spec.get("registerTo")}},
        learning_rate=float(spec["learningRate"]) if spec.get("learningRate") else None,
        context_length=spec.get("contextLength"),
        disable_credentials_check=spec.get("validateInputs") is False,
    )


def _parse(model: type[BaseModel], data: Any) -> Any:
    """A status part as its API model; fields a newer operator added are ignored, a malformed part is None."""
    if not isinstance(data, dict):
        return None
    known = {f.alias or name for name, f in model.model_fields.items()} | set(model.model_fields)
    try:
        return model.model_validate({k: v for k, v in data.items() if k in known})
    except ValidationError:
        return None
