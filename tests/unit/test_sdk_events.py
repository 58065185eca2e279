"""status.events read as Databricks' events."""

from datetime import datetime, timezone

from helpers.run_objects import make_run
from kubetune.sdk.events import EventType, TrainingEvent, event_key, parse_events


def test_events_oldest_first_with_their_messages():
    resource = make_run(
        "r",
        created="2025-01-01T00:00:00Z",
        events=[
            ("TRAIN_UPDATED", "2025-01-01T00:10:00Z", "[epoch=1/3][batch=50/56][ETA=5min] Train loss: 1.71"),
            ("CREATED", "2025-01-01T00:00:00Z", "Run created."),
            ("STARTED", "2025-01-01T00:03:00Z", "Pods running on pool h100."),
            ("DATA_VALIDATED", "2025-01-01T00:01:00Z", ""),
        ],
    )
    events = parse_events(resource)
    assert [e.type for e in events] == ["CREATED", "DATA_VALIDATED", "STARTED", "TRAIN_UPDATED"]
    assert events[-1].message.endswith("Train loss: 1.71")
    assert events[0].time == datetime(2025, 1, 1, tzinfo=timezone.utc)


def test_created_is_synthesised_until_the_operator_records_it():
    events = parse_events(make_run("r", created="2025-02-03T04:05:06Z"))
    assert events == [TrainingEvent("CREATED", datetime(2025, 2, 3, 4, 5, 6, tzinfo=timezone.utc), "Run created.")]


def test_terminal_events():
    assert TrainingEvent("COMPLETED", datetime.now(timezone.utc)).is_terminal_state()
    assert TrainingEvent("FAILED", datetime.now(timezone.utc)).is_terminal_state()
    assert TrainingEvent("CANCELED", datetime.now(timezone.utc)).is_terminal_state()
    assert not TrainingEvent("TRAIN_FINISHED", datetime.now(timezone.utc)).is_terminal_state()


def test_unknown_types_are_kept_and_case_normalised():
    resource = make_run("r", events=[("checkpoint_saved", "2025-01-01T00:05:00Z", "ep1-ba56"), ("", "2025-01-01T00:06:00Z", "x")])
    assert [e.type for e in parse_events(resource)] == ["CREATED", "CHECKPOINT_SAVED"]


def test_event_types_are_databricks_names():
    assert [t.value for t in EventType] == [
        "CREATED", "STARTED", "DATA_VALIDATED", "MODEL_INITIALIZED", "TRAIN_UPDATED",
        "TRAIN_FINISHED", "COMPLETED", "FAILED", "CANCELED",
    ]


def test_event_key_tells_repeated_messages_apart_by_time():
    a = TrainingEvent("TRAIN_UPDATED", datetime(2025, 1, 1, tzinfo=timezone.utc), "loss 1")
    b = TrainingEvent("TRAIN_UPDATED", datetime(2025, 1, 1, 0, 1, tzinfo=timezone.utc), "loss 1")
    assert event_key(a) != event_key(b) and event_key(a) == event_key(TrainingEvent(a.type, a.time, a.message))
    assert str(a) == "2025-01-01T00:00:00+00:00 TRAIN_UPDATED     loss 1"
