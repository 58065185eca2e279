"""The operator's log: plain text for a terminal or one JSON object per line for a log pipeline.

Every line about an object names it: kopf hands each handler a per-object logger whose records carry
`k8s_ref` (apiVersion, kind, namespace, name, uid of the object being handled), and kopf's own lines about
that object (a handler failed, a retry) carry it too. Text lines start with `[namespace/name]`; JSON lines
have `namespace`, `name` and `kind` fields. Code that logs about a run without kopf's logger (a wake-up,
a registration result) logs through `run_logger`, or passes `extra=about_run(namespace, name)`.
Every line is redacted (kubetune.api.redaction), in both formats.
kopf logs a success line per handler call; for the handlers that run per run per timer tick or per pod
event (the operator's QUIET_HANDLERS) QuietSuccess drops it.
"""

import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime

from kubetune.api import KIND
from kubetune.api.redaction import redact, redact_strings

LOG_FORMATS = ("text", "json")
KOPF_OBJECT_LOGGER = "kopf.objects"  # kopf's per-object logger: handler outcomes, retries
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def about_run(namespace: str, name: str) -> dict:
    """`extra` for a log call about a run made without kopf's per-object logger: the line names the run."""
    return {"k8s_ref": {"kind": KIND, "namespace": namespace, "name": name}}


def run_logger(logger: logging.Logger, namespace: str, name: str) -> logging.LoggerAdapter:
    """`logger`, with every line naming the run."""
    return logging.LoggerAdapter(logger, about_run(namespace, name))


def object_fields(record: logging.LogRecord) -> dict[str, str]:
    """The kind, namespace and name of the object a line is about (kopf's `k8s_ref`); empty for other lines."""
    ref = getattr(record, "k8s_ref", None) or {}
    return {key: ref[key] for key in ("kind", "namespace", "name") if ref.get(key)}


class RedactingFormatter(logging.Formatter):
    """Text lines `TIME LEVEL LOGGER: [namespace/name] message`, credentials masked (kubetune.api.redaction),
    tracebacks included: kopf, the kubernetes client and MLflow put URIs and error texts from anywhere into
    the operator's log."""

    def format(self, record: logging.LogRecord) -> str:
        about = object_fields(record)
        if "name" in about:
            prefix = f"[{about['namespace']}/{about['name']}]" if "namespace" in about else f"[{about['name']}]"
            record = logging.makeLogRecord({**record.__dict__, "msg": f"{prefix} {record.msg}"})
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, UTC), level, logger, message, the object's kind, namespace
    and name when the line is about one, and the traceback under `exception`; every string redacted."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **object_fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(redact_strings(line), ensure_ascii=False)


class QuietSuccess(logging.Filter):
    """Drop kopf's INFO line "Timer 'id' succeeded." / "Handler 'id' succeeded." for the given handler ids.

    kopf 1.45 has no setting for it (kopf/_core/actions/execution.py logs every success at INFO).
    Failures, retries, warnings and every other handler's lines pass; so does a handler's
    "is invoked." DEBUG line with --verbose.
    """

    def __init__(self, handler_ids: Iterable[str]):
        super().__init__()
        ids = "|".join(re.escape(i) for i in handler_ids)
        self._success = re.compile(rf"(Timer|Handler) '({ids})' succeeded\.")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.INFO and self._success.fullmatch(record.getMessage()))


def quiet_routine_successes(handler_ids: Iterable[str]) -> QuietSuccess:
    """Install QuietSuccess on kopf's per-object logger (once); returns the installed filter."""
    logger = logging.getLogger(KOPF_OBJECT_LOGGER)
    for installed in list(logger.filters):
        if isinstance(installed, QuietSuccess):
            logger.removeFilter(installed)
    quiet = QuietSuccess(handler_ids)
    logger.addFilter(quiet)
    return quiet


def configure_logging(log_format: str, verbose: bool, quiet_handlers: Iterable[str]) -> None:
    """Log to stderr in `log_format` (LOG_FORMATS) from every logger (kopf's and the clients' end up at the
    root logger), without the success lines of `quiet_handlers`."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r}: expected one of {', '.join(LOG_FORMATS)}")
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO)
    logging.captureWarnings(True)  # Python warnings as log lines too, in the same format
    formatter = JsonFormatter() if log_format == "json" else RedactingFormatter(TEXT_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
    quiet_routine_successes(quiet_handlers)
