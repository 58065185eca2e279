"""A run's history as Databricks-style events: the types, and which trainer stage makes which event.

One table for the operator (status.events), local mode (printed events) and the SDK. Once-only
events (CREATED, STARTED, DATA_VALIDATED, MODEL_INITIALIZED, TRAIN_FINISHED) come from transitions
of the run's state, recorded in status.milestones, never from looking at the bounded history.
"""

from enum import Enum

from kubetune.api.progress import TrainerStage


class EventType(str, Enum):
    CREATED = "CREATED"
    STARTED = "STARTED"
    DATA_VALIDATED = "DATA_VALIDATED"
    MODEL_INITIALIZED = "MODEL_INITIALIZED"
    TRAIN_UPDATED = "TRAIN_UPDATED"
    TRAIN_FINISHED = "TRAIN_FINISHED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"

    def __str__(self) -> str:
        return self.value


# Trainer stages in the order a run passes them, and the once-only event each one makes (TRAINING
# makes TRAIN_UPDATED events instead, one per new step). A watcher may see only the latest report,
# so reaching a stage implies the events of the stages before it.
STAGE_ORDER = (
    TrainerStage.DATA_VALIDATED,
    TrainerStage.MODEL_INITIALIZED,
    TrainerStage.TRAINING,
    TrainerStage.TRAIN_FINISHED,
)
STAGE_EVENTS = {
    TrainerStage.DATA_VALIDATED: EventType.DATA_VALIDATED,
    TrainerStage.MODEL_INITIALIZED: EventType.MODEL_INITIALIZED,
    TrainerStage.TRAIN_FINISHED: EventType.TRAIN_FINISHED,
}
TERMINAL_EVENT_TYPES = frozenset({EventType.COMPLETED, EventType.FAILED, EventType.CANCELED})
# Events a run has at most once (status.milestones records them); terminal ones happen once as well.
ONCE_ONLY = frozenset(
    {EventType.CREATED, EventType.STARTED, EventType.DATA_VALIDATED, EventType.MODEL_INITIALIZED, EventType.TRAIN_FINISHED}
)


def stage_events(stage: TrainerStage | str) -> list[EventType]:
    """The once-only events a report at `stage` implies, oldest first (none for FAILED or PREEMPTED)."""
    stage = TrainerStage(stage)
    if stage not in STAGE_ORDER:
        return []
    reached = STAGE_ORDER[: STAGE_ORDER.index(stage) + 1]
    return [STAGE_EVENTS[s] for s in reached if s in STAGE_EVENTS]
