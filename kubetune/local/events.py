"""Printing a local run's events (Databricks' event types) and, on a terminal, a progress line from the trainer's
reports; into a log file or a pipe, only the event lines."""

import sys
import time
from datetime import datetime
from typing import TextIO

from kubetune.api.events import EventType, stage_events
from kubetune.api.progress import TrainerReport, TrainerStage, train_update_message
from kubetune.cli.progress_line import ProgressLine, is_terminal, progress_text

UPDATES_PER_RUN = 10  # TRAIN_UPDATED events per run, besides one per checkpoint


class EventPrinter:
    def __init__(self, out: TextIO = sys.stdout, show_bar: bool = True, clock=time.monotonic):
        self.out = out
        self.clock = clock
        self._line = ProgressLine(out, enabled=show_bar and is_terminal(out))
        self._milestones: set[EventType] = set()
        self._last_update_step = 0
        self._last_update = ""
        self._checkpoints = 0
        self._training_started: tuple[float, int] | None = None

    def event(self, kind: str, message: str = "") -> None:
        line = f"{datetime.now().strftime('%H:%M:%S')} {kind:<17} {message}".rstrip()
        self._line.print_above(line, self.out)

    def progress(self, report: TrainerReport | None) -> None:
        """Events for what changed since the last report; milestones the polling missed are still announced, in order."""
        if report is None:
            return
        for milestone in stage_events(report.stage):
            if milestone is EventType.TRAIN_FINISHED and report.total_steps and report.step > 0:
                self._training_progress(report, final=True)
            if milestone not in self._milestones:
                self._milestones.add(milestone)
                self.event(milestone.value, self._milestone_message(milestone, report))
        if report.stage == TrainerStage.TRAINING and report.total_steps and report.step > 0:
            self._training_progress(report)

    def _milestone_message(self, milestone: EventType, report: TrainerReport) -> str:
        if milestone is EventType.MODEL_INITIALIZED and report.total_steps:
            return f"{report.total_steps} steps over {report.total_epochs} epoch(s)"
        if milestone is EventType.TRAIN_FINISHED:
            return f"exported to {report.export_uri}"
        return ""

    def _training_progress(self, report: TrainerReport, final: bool = False) -> None:
        now = self.clock()
        if self._training_started is None:
            self._training_started = (now, report.step)
        eta = self._eta(report, now)
        percent = 100 * report.step // report.total_steps  # type: ignore[operator]
        self._line.show(progress_text(TrainerStage(report.stage).value, percent, report.step, report.total_steps, report.train_loss, eta))
        new_checkpoint = len(report.checkpoints) > self._checkpoints
        every = max(1, (report.total_steps or 1) // UPDATES_PER_RUN)
        due = new_checkpoint or report.step - self._last_update_step >= every
        if due or (final and report.step > self._last_update_step):
            self._checkpoints = len(report.checkpoints)
            self._last_update_step = report.step
            message = train_update_message(report, eta)
            # A checkpoint saved in the background completes after its step's update: say it again only if it
            # brought something new (its eval loss), not the same line twice.
            if message != self._last_update:
                self._last_update = message
                self.event("TRAIN_UPDATED", message)

    def _eta(self, report: TrainerReport, now: float) -> float | None:
        started_at, first_step = self._training_started  # type: ignore[misc]
        done = report.step - first_step
        if done <= 0 or not report.total_steps:
            return None
        return (now - started_at) / done * (report.total_steps - report.step)

    def close(self) -> None:
        self._line.clear()
