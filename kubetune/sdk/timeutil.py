"""Times as the API server writes them (RFC 3339, UTC) and as users pass them (datetime or string)."""

from datetime import datetime, timezone


def parse_time(value: str | datetime | None) -> datetime | None:
    """An aware datetime from an RFC 3339 string ("2025-01-02T03:04:05Z") or a datetime; None stays None."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_user_time(value: str | datetime, field: str) -> datetime:
    """A `before`/`after` filter: a datetime or an ISO string ("2025-01-31", "2025-01-31T12:00");
    without a time zone it is local time, as in Databricks' SDK."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{field}: expected a datetime or an ISO date/time string like 2025-01-31 (got {value!r})") from None
    return moment if moment.tzinfo else moment.astimezone()


def humanize_duration(seconds: float) -> str:
    """kubectl-style short ages: 45s, 12m, 3h, 5d."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def format_eta(end: datetime | None, now: datetime | None = None) -> str | None:
    """Time left until `end` as Databricks writes it (45s, 12min, 3hr, 2d); None when unknown or past."""
    if end is None:
        return None
    left = (end - (now or datetime.now(timezone.utc))).total_seconds()
    if left <= 0:
        return None
    for unit, size in (("d", 86400), ("hr", 3600), ("min", 60)):
        if left >= size:
            return f"{int(left // size)}{unit}"
    return f"{int(left)}s"


def progress_bar(percent: int) -> str:
    """Ten squares, one filled per 10%: `■■■■□□□□□□` for 42%."""
    filled = max(0, min(10, percent // 10))
    return "■" * filled + "□" * (10 - filled)
