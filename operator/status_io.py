"""Between the run's raw status dict and the typed status: parse tolerantly, write only what changed, and never
a credential (every string the operator writes is redacted: a message may quote an error, a URI, a log line).

The trainer's report arrives from its report ConfigMap as text anyone in the training pod may have written:
parse_report takes it or drops it whole. `status.report` is the operator's own mirror of the last report it
folded, written with the rest of the status."""

import json
from typing import Any

from pydantic import ValidationError

from kubetune.api.progress import REPORT_KEY, TrainerReport
from kubetune.api.redaction import redact_strings
from kubetune.api.status import FineTuneRunStatus

_OWN_FIELDS = [f.alias or name for name, f in FineTuneRunStatus.model_fields.items()]


def parse_status(raw: dict[str, Any] | None) -> FineTuneRunStatus:
    """The operator's fields of status; keys it does not own (kopf's) are left out, and a report mirror that does
    not parse (written by an older trainer, which could write status) is dropped rather than stopping the run."""
    raw = raw or {}
    status = FineTuneRunStatus.model_validate({k: v for k, v in raw.items() if k in _OWN_FIELDS and k != "report"})
    return status.model_copy(update={"report": _parse_report(raw.get("report"))})


def parse_report(config_map: dict[str, Any] | None) -> TrainerReport | None:
    """The trainer's report from its ConfigMap (as the API server returns it), or None when absent or malformed:
    a bad report must not stop the run. Which ConfigMap to trust (name, owner) is the caller's business."""
    text = ((config_map or {}).get("data") or {}).get(REPORT_KEY)
    if not text:
        return None
    try:
        return _parse_report(json.loads(text))
    except (ValueError, RecursionError):  # not JSON, or nested beyond the parser
        return None


def _parse_report(value: Any) -> TrainerReport | None:
    if not value:
        return None
    try:
        return TrainerReport.model_validate(value)
    except ValidationError:
        return None


def redacted(status: FineTuneRunStatus) -> FineTuneRunStatus:
    """The status as it may be written: every string with its credentials masked (kubetune.api.redaction)."""
    dumped = status.model_dump(by_alias=True, mode="json")
    return FineTuneRunStatus.model_validate(redact_strings(dumped))


def status_patch(status: FineTuneRunStatus) -> dict[str, Any]:
    """Every field, redacted, as a JSON merge patch: null removes a field that became unset, at any depth of an
    object (a stopped run's progress.eta), while a list is replaced whole."""
    dumped = redact_strings(status.model_dump(by_alias=True, mode="json"))
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
    """Compared as written (redacted): a status that differs only in a masked credential is not a change."""
    dump = lambda s: redact_strings(s.model_dump(by_alias=True, mode="json", exclude_none=True))  # noqa: E731
    return dump(before) != dump(after)
