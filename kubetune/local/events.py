"""Printing a local run's events (Databricks' event types) and a progress bar from the trainer's reports."""

import sys
import time
from datetime import datetime
from typing import TextIO

from kubetune.api.events import EventType, stage_events
from kubetune.api.progress import TrainerReport, TrainerStage, train_update_message

UPDATES_PER_RUN = 10  # TRAIN_UPDATED events per run, besides one per checkpoint


class EventPrinter:
    def __init__(self, out: TextIO = sys.stdout, show_bar: bool = True, clock=time.monotonic):
        self.out = out
        self.show_bar = show_bar
        self.clock = clock
        self._bar = None
        self._milestones: set[EventType] = set()
        self._last_update_step = 0
        self._checkpoints = 0
        self._training_started: tuple[float, int] | None = None

    def event(self, kind: str, message: str = "") -> None:
        line = f"{datetime.now().strftime('%H:%M:%S')} {kind:<17} {message}".rstrip()
        if self._bar is not None:
            self._bar.write(line, file=self.out)
        else:
            print(line, file=self.out, flush=True)

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
        self._update_bar(report)
        new_checkpoint = len(report.checkpoints) > self._checkpoints
        every = max(1, (report.total_steps or 1) // UPDATES_PER_RUN)
        due = new_checkpoint or report.step - self._last_update_step >= every
        if due or (final and report.step > self._last_update_step):
            self._checkpoints = len(report.checkpoints)
            self._last_update_step = report.step
            self.event("TRAIN_UPDATED", train_update_message(report, self._eta(report, now)))

    def _eta(self, report: TrainerReport, now: float) -> float | None:
        started_at, first_step = self._training_started  # type: ignore[misc]
        done = report.step - first_step
        if done <= 0 or not report.total_steps:
            return None
        return (now - started_at) / done * (report.total_steps - report.step)

    def _update_bar(self, report: TrainerReport) -> None:
        if not self.show_bar:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=report.total_steps, unit="step", file=self.out, dynamic_ncols=True, leave=False)
        self._bar.update(report.step - self._bar.n)
        if report.train_loss is not None:
            self._bar.set_postfix(loss=f"{report.train_loss:.3f}", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
