from datetime import timedelta

import pytest

from helpers.operator_factories import NOW, make_report
from kubetune.api.status import MAX_EVENTS, FineTuneRunStatus, RunEvent
from kubetune.operator.progress import add_event, build_progress, fold_report, format_duration, train_updated_message


@pytest.mark.parametrize("seconds, text", [(5, "5s"), (720, "12m"), (3900, "1h05m"), (2 * 86400 + 3 * 3600, "2d3h")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_progress_from_steps_and_elapsed_time():
    started = NOW - timedelta(minutes=10)
    progress = build_progress(make_report(step=42, totalSteps=100), started)
    assert progress.percent == 42
    assert progress.display == "42% ETA 13m"  # 10 minutes for 42%: 13.8 more
    assert progress.eta > NOW


def test_progress_from_token_rate():
    report = make_report(tokensSeen=500, tokensTotal=1000, tokensPerSecond=1.0)
    assert build_progress(report, None).display == "50% ETA 8m"


def test_train_updated_message_matches_databricks():
    report = make_report(step=50, totalSteps=56, epoch=1, totalEpochs=3, trainLoss=1.7123, tokensSeen=50, tokensTotal=56, tokensPerSecond=0.02)
    message = train_updated_message(report, build_progress(report, None))
    assert message == "[epoch=1/3][batch=50/56][ETA=5min] Train loss: 1.712"


def test_fold_report_updates_metrics_and_adds_one_event_per_new_step():
    status = FineTuneRunStatus(restarts=0)
    once = fold_report(status, make_report(step=10, trainLoss=2.0, mlflowRunId="r1"), NOW)
    again = fold_report(once, make_report(step=10, trainLoss=2.0, mlflowRunId="r1"), NOW)
    later = fold_report(again, make_report(step=20, trainLoss=1.5), NOW)
    assert [e.type for e in again.events].count("TRAIN_UPDATED") == 1
    assert [e.type for e in later.events].count("TRAIN_UPDATED") == 2
    assert later.metrics.train_loss == 1.5 and later.mlflow.run_id == "r1"


def test_fold_report_stage_events_once_and_ignores_old_attempts():
    status = FineTuneRunStatus(restarts=1)
    assert fold_report(status, make_report(stage="MODEL_INITIALIZED", attempt=0), NOW) == status
    once = fold_report(status, make_report(stage="MODEL_INITIALIZED", attempt=1), NOW)
    twice = fold_report(once, make_report(stage="MODEL_INITIALIZED", attempt=1), NOW)
    assert [e.type for e in twice.events] == ["DATA_VALIDATED", "MODEL_INITIALIZED"]


def test_events_history_is_bounded():
    events = [RunEvent(type="TRAIN_UPDATED", time=NOW, message=str(i)) for i in range(MAX_EVENTS)]
    bounded = add_event(events, "COMPLETED", "done", NOW)
    assert len(bounded) == MAX_EVENTS
    assert bounded[0].message == "1" and bounded[-1].type == "COMPLETED"


def test_a_later_stage_implies_the_history_of_the_earlier_ones():
    status = fold_report(FineTuneRunStatus(), make_report(stage="TRAINING", step=5), NOW)
    assert [e.type for e in status.events] == ["DATA_VALIDATED", "MODEL_INITIALIZED", "TRAIN_UPDATED"]


def test_training_that_just_started_is_no_update():
    initialized = fold_report(FineTuneRunStatus(), make_report(stage="MODEL_INITIALIZED", step=0), NOW)
    started = fold_report(initialized, make_report(stage="TRAINING", step=0), NOW)
    unseen_start = fold_report(FineTuneRunStatus(), make_report(stage="TRAINING", step=0), NOW)
    assert "TRAIN_UPDATED" not in [e.type for e in started.events + unseen_start.events]


def test_the_last_steps_are_an_update_when_only_the_finished_report_was_seen():
    training = fold_report(FineTuneRunStatus(), make_report(step=2, totalSteps=4), NOW)
    finished = fold_report(training, make_report(stage="TRAIN_FINISHED", step=4, totalSteps=4, trainLoss=1.5), NOW)
    assert [e.type for e in finished.events] == ["DATA_VALIDATED", "MODEL_INITIALIZED", "TRAIN_UPDATED", "TRAIN_UPDATED", "TRAIN_FINISHED"]
    assert finished.events[-2].message.startswith("[epoch=1/2][batch=4/4]")


def test_a_finished_report_after_its_last_step_adds_no_update():
    last_step = fold_report(FineTuneRunStatus(), make_report(step=4, totalSteps=4), NOW)
    finished = fold_report(last_step, make_report(stage="TRAIN_FINISHED", step=4, totalSteps=4), NOW)
    again = fold_report(finished, make_report(stage="TRAIN_FINISHED", step=4, totalSteps=4), NOW)
    assert [e.type for e in again.events] == ["DATA_VALIDATED", "MODEL_INITIALIZED", "TRAIN_UPDATED", "TRAIN_FINISHED"]
