"""`list()`'s filters, applied to the FineTuneRun objects of a namespace: pure functions, no API calls."""

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from kubetune.sdk.run import TrainingRun
from kubetune.sdk.status import RunStatus
from kubetune.sdk.timeutil import parse_user_time

DEFAULT_LIMIT = 100  # as Databricks' list(): the 100 most recent runs
_OLDEST = datetime.min.replace(tzinfo=timezone.utc)


def filter_runs(
    resources: Iterable[dict[str, Any]],
    *,
    names: Iterable[str] | None = None,
    experiment_id: str | None = None,
    statuses: Iterable[str | RunStatus] | None = None,
    user_emails: Iterable[str] | None = None,
    before: str | datetime | None = None,
    after: str | datetime | None = None,
    limit: int | None = DEFAULT_LIMIT,
) -> list[TrainingRun]:
    """Runs matching every given filter, newest first: created before `before` (exclusive) and at or
    after `after` (inclusive), as in Databricks' SDK; `limit` None means all."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit: must be zero or more (got {limit})")
    wanted_names = set(names) if names else None
    wanted_statuses = {RunStatus.parse(s) for s in statuses} if statuses else None
    wanted_users = set(user_emails) if user_emails else None
    before_time = parse_user_time(before, "before") if before is not None else None
    after_time = parse_user_time(after, "after") if after is not None else None

    def keep(run: TrainingRun) -> bool:
        created = run.created_at or _OLDEST
        return (
            (wanted_names is None or run.name in wanted_names)
            and (experiment_id is None or run.experiment_id == experiment_id)
            and (wanted_statuses is None or run.status in wanted_statuses)
            and (wanted_users is None or run.created_by in wanted_users)
            and (before_time is None or created < before_time)
            and (after_time is None or created >= after_time)
        )

    runs = sorted(
        (r for r in map(TrainingRun.from_resource, resources) if keep(r)),
        key=lambda r: (r.created_at or _OLDEST, r.name),
        reverse=True,
    )
    return runs if limit is None else runs[:limit]
