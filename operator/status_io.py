"""Between the run's raw status dict and the typed status: parse tolerantly, write only what changed."""

from typing import Any

from pydantic import ValidationError

from kubetune.api.progress import TrainerReport
from kubetune.api.status import FineTuneRunStatus

_OWN_FIELDS = [f.alias or name for name, f in FineTuneRunStatus.model_fields.items() if name != "report"]


def parse_status(raw: dict[str, Any] | None) -> FineTuneRunStatus:
    """The operator's fields of status; keys it does not own (kopf's, the report) are left out."""
    return FineTuneRunStatus.model_validate({k: v for k, v in (raw or {}).items() if k in _OWN_FIELDS})


def parse_report(raw: dict[str, Any] | None) -> TrainerReport | None:
    """The trainer's report, or None when absent or malformed (a bad report must not stop the run)."""
    report = (raw or {}).get("report")
    if not report:
        return None
    try:
        return TrainerReport.model_validate(report)
    except ValidationError:
        return None


def status_patch(status: FineTuneRunStatus) -> dict[str, Any]:
    """Every operator-owned field as a JSON merge patch: null removes a field that became unset, at any depth
    of an object (a stopped run's progress.eta), while a list is replaced whole. `report` is never touched."""
    dumped = status.model_dump(by_alias=True, mode="json", exclude={"report"})
    return {key: _merge_value(dumped.get(key)) for key in _OWN_FIELDS}


def _merge_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _merge_value(item) for key, item in value.items()}  # None stays: it removes the key
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def _without_nulls(value: Any) -> Any:
    """A list item as stored: a list is replaced whole, so an unset field is simply absent."""
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def changed(before: FineTuneRunStatus, after: FineTuneRunStatus) -> bool:
    dump = lambda s: s.model_dump(by_alias=True, mode="json", exclude_none=True, exclude={"report"})  # noqa: E731
    return dump(before) != dump(after)
