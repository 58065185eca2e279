"""The run's history: once-only events come from transitions, never from looking at the bounded list,
so a long run neither repeats them nor loses CREATED; the operator and local mode share one stage table."""

import io
from datetime import timedelta

from helpers.operator_factories import NOW, make_config, make_job, make_report, make_run, make_spec
from kubetune.api.events import EventType, stage_events
from kubetune.api.status import MAX_EVENTS
from kubetune.local.events import EventPrinter
from kubetune.operator.reconcile import Observed, decide
from kubetune.sdk.events import event_key, parse_events

ONCE_ONLY = ["CREATED", "DATA_VALIDATED", "MODEL_INITIALIZED", "STARTED"]  # as decide() folds the first report


def test_a_400_step_run_keeps_each_once_only_event_once_and_created_first():
    """The bug: at steps 99, 197, 295 and 393 the bounded history wrapped and the once-only events came back."""
    spec, config = make_spec(validateInputs=False), make_config()
    status = decide(make_run(spec), Observed(), config, NOW).status
    running = Observed(training=make_job())
    followed: dict = {}
    for step in range(0, 401):
        now = NOW + timedelta(seconds=step)
        stage = "MODEL_INITIALIZED" if step == 0 else "TRAINING"
        checkpoints = [{"name": f"ep0-ba{s}", "path": "/c", "step": s} for s in (99, 197, 295, 393) if s <= step]
        report = make_report(stage=stage, step=step, totalSteps=400, updatedAt=now.isoformat(), checkpoints=checkpoints)
        status = decide(make_run(spec, status=status, report=report), running, config, now).status
        for event in parse_events({"status": status.model_dump(by_alias=True, mode="json")}):
            followed.setdefault(event_key(event), event)  # what get_events(follow=True) yields
    types = [e.type for e in status.events]
    assert len(status.events) == MAX_EVENTS
    assert types[:4] == ONCE_ONLY, types[:6]
    assert all(types.count(t) == 1 for t in ONCE_ONLY)
    assert status.milestones == ONCE_ONLY
    assert types[4:] == ["TRAIN_UPDATED"] * (MAX_EVENTS - 4)
    assert status.events[-1].message.startswith("[epoch=1/2][batch=400/400]")
    yielded = [e.type for e in followed.values()]
    assert all(yielded.count(t) == 1 for t in ONCE_ONLY), yielded
    assert yielded.count("TRAIN_UPDATED") == 400


def test_operator_and_local_mode_announce_the_same_stage_events(capsys):
    printer = EventPrinter(out=io.StringIO(), show_bar=False)
    printed = []
    printer.event = lambda kind, message="": printed.append(kind)  # type: ignore[method-assign]
    for stage in ("DATA_VALIDATED", "TRAINING", "TRAIN_FINISHED"):
        printer.progress(make_report(stage=stage, step=0, totalSteps=None))
    expected = [e.value for e in stage_events("TRAIN_FINISHED")]
    assert printed == expected == [EventType.DATA_VALIDATED, EventType.MODEL_INITIALIZED, EventType.TRAIN_FINISHED]


def test_a_run_started_by_an_older_operator_keeps_its_once_only_events_once():
    """Runs in flight during an upgrade have events but no status.milestones: their history speaks for them."""
    from kubetune.api.status import FineTuneRunStatus

    older = FineTuneRunStatus.model_validate({"phase": "Running", "startTime": NOW.isoformat(), "events": [
        {"type": t, "time": NOW.isoformat()} for t in ("CREATED", "DATA_VALIDATED", "STARTED", "MODEL_INITIALIZED")]})
    spec, config = make_spec(validateInputs=False), make_config()
    status = decide(make_run(spec, status=older, report=make_report(step=3)), Observed(training=make_job()), config, NOW).status
    assert [e.type for e in status.events] == ["CREATED", "DATA_VALIDATED", "STARTED", "MODEL_INITIALIZED", "TRAIN_UPDATED"]


def test_following_from_creation_yields_created_once():
    """Before the operator's first write, the SDK makes CREATED up from creationTimestamp; the recorded
    CREATED that follows is the same event."""
    from kubetune.sdk.events import unseen

    created = (NOW - timedelta(seconds=1)).isoformat()
    seen: set = set()
    first = unseen(parse_events({"metadata": {"creationTimestamp": created}, "status": {}}), seen)
    later = unseen(parse_events({"metadata": {"creationTimestamp": created}, "status": {"events": [
        {"type": "CREATED", "time": NOW.isoformat(), "message": "run created"},
        {"type": "DATA_VALIDATED", "time": NOW.isoformat()}]}}), seen)
    assert [e.type for e in first] == ["CREATED"] and [e.type for e in later] == ["DATA_VALIDATED"]
