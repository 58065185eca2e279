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
    """Every operator-owned field; null removes a field that became unset (merge patch). `report` is never touched."""
    dumped = status.model_dump(by_alias=True, mode="json", exclude_none=True, exclude={"report"})
    return {key: dumped.get(key) for key in _OWN_FIELDS}


def changed(before: FineTuneRunStatus, after: FineTuneRunStatus) -> bool:
    dump = lambda s: s.model_dump(by_alias=True, mode="json", exclude_none=True, exclude={"report"})  # noqa: E731
    return dump(before) != dump(after)
