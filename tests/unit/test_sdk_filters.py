"""list()'s filters and ordering, on FineTuneRun objects."""

from datetime import datetime, timezone

import pytest

from helpers.run_objects import make_run
from kubetune.sdk.filters import DEFAULT_LIMIT, filter_runs
from kubetune.sdk.run import CREATED_BY_ANNOTATION
from kubetune.sdk.status import RunStatus

RUNS = [
    make_run("old-done", created="2025-01-01T00:00:00Z", phase="Succeeded", status={"mlflow": {"experimentId": "1"}}),
    make_run("mid-failed", created="2025-01-15T12:00:00Z", phase="Failed", status={"mlflow": {"experimentId": "2"}}),
    make_run("new-queued", created="2025-02-01T00:00:00Z", phase="Queued",
             annotations={CREATED_BY_ANNOTATION: "ana@example.com"}),
    make_run("newest-cancelling", created="2025-02-02T00:00:00Z", phase="Running", suspend=True,
             status={"mlflow": {"experimentId": "1"}}),
    make_run("fresh", created="2025-02-03T00:00:00Z"),
]


def names(runs):
    return [r.name for r in runs]


def test_newest_first_and_default_limit():
    assert names(filter_runs(RUNS)) == ["fresh", "newest-cancelling", "new-queued", "mid-failed", "old-done"]
    many = [make_run(f"r{i:03d}", created=f"2025-01-01T00:{i // 60:02d}:{i % 60:02d}Z") for i in range(DEFAULT_LIMIT + 5)]
    listed = filter_runs(many)
    assert len(listed) == DEFAULT_LIMIT and listed[0].name == "r104"


def test_limit():
    assert names(filter_runs(RUNS, limit=2)) == ["fresh", "newest-cancelling"]
    assert len(filter_runs(RUNS, limit=None)) == len(RUNS)
    assert filter_runs(RUNS, limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        filter_runs(RUNS, limit=-1)


@pytest.mark.parametrize(
    "statuses,expected",
    [
        (["COMPLETED"], ["old-done"]),
        ([RunStatus.FAILED, "completed"], ["mid-failed", "old-done"]),
        (["TERMINATING", "PENDING"], ["fresh", "newest-cancelling"]),
        (["QUEUED"], ["new-queued"]),
        (["RUNNING"], []),
    ],
)
def test_statuses(statuses, expected):
    assert names(filter_runs(RUNS, statuses=statuses)) == expected


def test_unknown_status_is_an_error():
    with pytest.raises(ValueError, match="unknown run status 'DONE'"):
        filter_runs(RUNS, statuses=["DONE"])


def test_before_is_exclusive_and_after_inclusive():
    assert names(filter_runs(RUNS, before="2025-01-15T12:00:00+00:00")) == ["old-done"]
    assert names(filter_runs(RUNS, after=datetime(2025, 2, 2, tzinfo=timezone.utc))) == ["fresh", "newest-cancelling"]
    assert names(filter_runs(RUNS, after="2025-01-10T00:00:00Z", before="2025-02-02T00:00:00Z")) == ["new-queued", "mid-failed"]


def test_dates_without_a_zone_are_local_time():
    local_midnight = datetime(2025, 2, 2).astimezone()
    assert names(filter_runs(RUNS, after="2025-02-02")) == names(filter_runs(RUNS, after=local_midnight))


def test_bad_date_names_the_argument():
    with pytest.raises(ValueError, match="before: expected a datetime"):
        filter_runs(RUNS, before="last tuesday")


def test_names_experiment_and_users():
    assert names(filter_runs(RUNS, names=["old-done", "fresh", "missing"])) == ["fresh", "old-done"]
    assert names(filter_runs(RUNS, experiment_id="1")) == ["newest-cancelling", "old-done"]
    assert names(filter_runs(RUNS, user_emails=["ana@example.com"])) == ["new-queued"]
    assert names(filter_runs(RUNS, statuses=["COMPLETED"], experiment_id="2")) == []
