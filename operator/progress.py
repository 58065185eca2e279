"""Fold the trainer's report (status.report) into progress, metrics, checkpoints, MLflow ids and events."""

from datetime import datetime, timedelta

from kubetune.api.progress import TrainerReport, TrainerStage, train_update_message
from kubetune.api.status import MAX_EVENTS, FineTuneRunStatus, Metrics, MlflowRef, Progress, RunEvent

# The trainer's stages in order, and the history entry each one makes once (TRAINING makes TRAIN_UPDATED
# entries instead, one per new step). The operator sees only the latest report, so reaching a stage
# implies the entries of the stages before it.
_STAGE_ORDER = [
    TrainerStage.DATA_VALIDATED,
    TrainerStage.MODEL_INITIALIZED,
    TrainerStage.TRAINING,
    TrainerStage.TRAIN_FINISHED,
]
_STAGE_EVENTS = {
    TrainerStage.DATA_VALIDATED: "DATA_VALIDATED",
    TrainerStage.MODEL_INITIALIZED: "MODEL_INITIALIZED",
    TrainerStage.TRAIN_FINISHED: "TRAIN_FINISHED",
}


def stage_events(stage: TrainerStage) -> list[str]:
    """The once-only history entries a report at `stage` implies, oldest first."""
    if stage not in _STAGE_ORDER:
        return []
    reached = _STAGE_ORDER[: _STAGE_ORDER.index(stage) + 1]
    return [_STAGE_EVENTS[s] for s in reached if s in _STAGE_EVENTS]


def add_event(events: list[RunEvent], type_: str, message: str, now: datetime) -> list[RunEvent]:
    """Append to the bounded history, dropping the oldest entries beyond MAX_EVENTS."""
    return [*events, RunEvent(type=type_, time=now, message=message)][-MAX_EVENTS:]


def has_event(events: list[RunEvent], type_: str) -> bool:
    return any(e.type == type_ for e in events)


def format_duration(seconds: float) -> str:
    """Compact, for `kubectl get`: 45s, 12m, 1h05m, 2d3h."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


def fraction_done(report: TrainerReport) -> float | None:
    if report.tokens_total:
        return min(1.0, report.tokens_seen / report.tokens_total)
    if report.total_steps:
        return min(1.0, report.step / report.total_steps)
    return None


def estimate_remaining(report: TrainerReport, started: datetime | None) -> float | None:
    """Seconds left when the report was sent: from the token rate, else from the time spent and the share done."""
    if report.stage == TrainerStage.TRAIN_FINISHED:
        return 0.0
    if report.tokens_total and report.tokens_per_second:
        return max(0.0, (report.tokens_total - report.tokens_seen) / report.tokens_per_second)
    done = fraction_done(report)
    if done and started is not None:
        return max(0.0, (report.updated_at - started).total_seconds()) * (1 - done) / done
    return None


def build_progress(report: TrainerReport, started: datetime | None) -> Progress:
    """Derived from the report alone (times relative to its updatedAt), so the same report gives the same status."""
    done = fraction_done(report)
    percent = 100 if report.stage == TrainerStage.TRAIN_FINISHED else (int(done * 100) if done is not None else None)
    remaining = estimate_remaining(report, started)
    display = None
    if percent is not None:
        display = f"{percent}%" + (f" ETA {format_duration(remaining)}" if remaining and percent < 100 else "")
    return Progress(
        epoch=report.epoch,
        total_epochs=report.total_epochs,
        step=report.step,
        total_steps=report.total_steps,
        tokens_seen=report.tokens_seen,
        tokens_total=report.tokens_total,
        percent=percent,
        eta=report.updated_at + timedelta(seconds=remaining) if remaining is not None else None,
        display=display,
    )


def train_updated_message(report: TrainerReport, progress: Progress) -> str:
    eta_seconds = (progress.eta - report.updated_at).total_seconds() if progress.eta is not None else None
    return train_update_message(report, eta_seconds)


def _steps_since(status: FineTuneRunStatus, report: TrainerReport) -> bool:
    """Steps were done since the last folded report: a TRAIN_UPDATED entry.

    TRAIN_FINISHED counts as well: the report of the last steps is often replaced by the
    TRAIN_FINISHED one a moment later, before the operator reads it (as local mode does, a
    final update then precedes TRAIN_FINISHED). Step 0 (training just started) is no update.
    """
    previous_step = status.progress.step if status.progress else None
    in_training = report.stage in (TrainerStage.TRAINING, TrainerStage.TRAIN_FINISHED)
    return in_training and report.step > 0 and report.step != previous_step


def fold_report(status: FineTuneRunStatus, report: TrainerReport, now: datetime) -> FineTuneRunStatus:
    """The status with the report's news; a report from an earlier attempt or an unchanged step adds nothing."""
    if report.attempt != status.restarts:
        return status
    progress = build_progress(report, status.start_time)
    events = status.events
    implied = stage_events(TrainerStage(report.stage))
    for stage_event in (e for e in implied if e != "TRAIN_FINISHED"):
        if not has_event(events, stage_event):
            events = add_event(events, stage_event, report.message or "", now)
    if _steps_since(status, report):
        events = add_event(events, "TRAIN_UPDATED", train_updated_message(report, progress), now)
    if "TRAIN_FINISHED" in implied and not has_event(events, "TRAIN_FINISHED"):
        events = add_event(events, "TRAIN_FINISHED", report.message or "", now)
    mlflow = (status.mlflow or MlflowRef()).model_copy(
        update={
            k: v
            for k, v in (("experiment_id", report.mlflow_experiment_id), ("run_id", report.mlflow_run_id))
            if v is not None
        }
    )
    return status.model_copy(
        update={
            "progress": progress,
            "metrics": Metrics(
                train_loss=report.train_loss,
                eval_loss=report.eval_loss,
                tokens_per_second=report.tokens_per_second,
                learning_rate=report.learning_rate,
            ),
            "checkpoints": report.checkpoints or status.checkpoints,
            "mlflow": mlflow,
            "events": events,
        }
    )
