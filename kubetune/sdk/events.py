"""A run's history as Databricks-style events, read from status.events.

The operator appends an event (type, time, message) on every transition; the types and
which trainer stage makes which are kubetune.api.events. TRAIN_UPDATED messages look like
`[epoch=1/3][batch=50/56][ETA=5min] Train loss: 1.71`.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubetune.api.events import ONCE_ONLY, TERMINAL_EVENT_TYPES, EventType
from kubetune.sdk.timeutil import parse_time


@dataclass(frozen=True)
class TrainingEvent:
    """One event of a run. `type` is an EventType value (a plain string if a newer operator adds types)."""

    type: str
    time: datetime
    message: str = ""

    def is_terminal_state(self) -> bool:
        return self.type in TERMINAL_EVENT_TYPES or self.type == "STOPPED"  # Databricks' name, should one arrive

    def __str__(self) -> str:
        return f"{self.time.isoformat(timespec='seconds')} {self.type:<17} {self.message}".rstrip()


def parse_events(resource: dict[str, Any]) -> list[TrainingEvent]:
    """The run's events, oldest first, with CREATED synthesised from creationTimestamp if not recorded yet."""
    raw = ((resource.get("status") or {}).get("events")) or []
    events = [_event(item) for item in raw if item.get("type") and item.get("time")]
    created = parse_time((resource.get("metadata") or {}).get("creationTimestamp"))
    if created and not any(e.type == EventType.CREATED for e in events):
        events.append(TrainingEvent(EventType.CREATED.value, created, "Run created."))
    return sorted(events, key=lambda e: e.time)


def _event(item: dict[str, Any]) -> TrainingEvent:
    kind = str(item["type"]).upper()
    return TrainingEvent(kind, parse_time(item["time"]), item.get("message") or "")


def event_key(event: TrainingEvent) -> tuple:
    """Identifies an event across reads of a bounded history (for follow). A once-only event is its type:
    the CREATED made up from creationTimestamp before the operator records its own is the same event."""
    if event.type in ONCE_ONLY or event.type in TERMINAL_EVENT_TYPES:
        return (event.type,)
    return (event.type, event.time, event.message)


def unseen(events: list[TrainingEvent], seen: set) -> list[TrainingEvent]:
    """The events not yielded yet, oldest first; records them in `seen` (what follow yields each round)."""
    fresh = []
    for event in events:
        if event_key(event) not in seen:
            seen.add(event_key(event))
            fresh.append(event)
    return fresh
