"""Fold the trainer's report (from its report ConfigMap) into progress, metrics, checkpoints, MLflow ids and events.

The report is untrusted input, written by an identity every container of the training pod holds: it moves
progress and history only, never the phase, conditions or registered model (reconcile.decide takes those from
the Jobs it observed)."""

from datetime import datetime, timedelta

from kubetune.api.events import ONCE_ONLY, EventType, stage_events
from kubetune.api.progress import TrainerReport, TrainerStage, train_update_message
from kubetune.api.status import MAX_EVENTS, FineTuneRunStatus, Metrics, MlflowRef, Progress, RunEvent


def add_event(events: list[RunEvent], type_: str, message: str, now: datetime) -> list[RunEvent]:
    """Append to the bounded history; beyond MAX_EVENTS the oldest TRAIN_UPDATED entries make room first,
    so once-only events (CREATED, STARTED, …) stay in the history of a long run."""
    events = [*events, RunEvent(type=type_, time=now, message=message)]
    while len(events) > MAX_EVENTS:
        oldest_update = next((i for i, e in enumerate(events) if e.type == EventType.TRAIN_UPDATED), 0)
        del events[oldest_update]
    return events


def reach(status: FineTuneRunStatus, milestone: EventType, message: str, now: datetime) -> FineTuneRunStatus:
    """The run reached a once-only milestone: its event is added on the transition, never again."""
    reached = milestones(status)
    if milestone.value in reached:
        return status
    return status.model_copy(
        update={"milestones": [*reached, milestone.value], "events": add_event(status.events, milestone.value, message, now)}
    )


def milestones(status: FineTuneRunStatus) -> list[str]:
    """status.milestones; for a run an older operator started (none recorded), the once-only events in its history."""
    if status.milestones:
        return status.milestones
    return [e.type for e in status.events if e.type in ONCE_ONLY]


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


def _advanced(status: FineTuneRunStatus, report: TrainerReport) -> bool:
    """A new step, or a report at all where none was folded yet (the trainer got through its set-up)."""
    return status.progress is None or report.step != status.progress.step


def fold_report(status: FineTuneRunStatus, report: TrainerReport, now: datetime) -> FineTuneRunStatus:
    """The status with the report's news, and the report itself as `status.report` (the mirror `kubectl get -o
    yaml` and the SDK read); a report from another attempt changes nothing, an unchanged step adds no event."""
    if report.attempt != status.attempt:
        return status
    progress = build_progress(report, status.start_time)
    if _advanced(status, report):
        status = status.model_copy(update={"last_progress_time": now})
    implied = stage_events(report.stage)
    for milestone in (e for e in implied if e is not EventType.TRAIN_FINISHED):
        status = reach(status, milestone, report.message or "", now)
    if _steps_since(status, report):
        message = train_updated_message(report, progress)
        status = status.model_copy(update={"events": add_event(status.events, EventType.TRAIN_UPDATED.value, message, now)})
    if EventType.TRAIN_FINISHED in implied:
        status = reach(status, EventType.TRAIN_FINISHED, report.message or "", now)
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
            "report": report,
        }
    )
