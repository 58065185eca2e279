"""The operator's log: text or JSON lines (`--log-format`), every line about a run naming it, credentials
masked in both, and no line per run per timer tick (the resync timer and the Job/pod handlers do not log a
line each time they succeed)."""

import json
import logging
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kopf
import pytest

from helpers.operator_fixtures import with_resync
from helpers.operator_driver import example_run
from kubetune.operator.handlers import QUIET_HANDLERS
from kubetune.operator.logs import (
    KOPF_OBJECT_LOGGER,
    JsonFormatter,
    QuietSuccess,
    RedactingFormatter,
    TEXT_FORMAT,
    quiet_routine_successes,
    run_logger,
)

SECRET = "pl4nted-S3cret"

ROUTINE_SUCCESS = re.compile(r"(Timer|Handler) '(resync|job_changed|pod_changed)' succeeded")


def record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(KOPF_OBJECT_LOGGER, level, __file__, 1, message, None, None)


def test_the_filter_drops_only_the_routine_success_lines():
    quiet = QuietSuccess(QUIET_HANDLERS)
    routine = ("Timer 'resync' succeeded.", "Handler 'job_changed' succeeded.", "Handler 'pod_changed' succeeded.")
    for dropped in routine:
        assert not quiet.filter(record(logging.INFO, dropped)), dropped
    for kept in (
        "Handler 'build_registry.<locals>.run_changed' succeeded.",
        "Timer 'other' succeeded.",
        "Timer 'resync' succeeded. And more.",
        "reconcile of team-a/chat deferred: MLflow unavailable",
    ):
        assert quiet.filter(record(logging.INFO, kept)), kept
    for level, message in (
        (logging.ERROR, "Timer 'resync' failed temporarily: MLflow unavailable: HTTP 503"),
        (logging.ERROR, "Handler 'pod_changed' failed with an exception and will ignore it: boom"),
        (logging.WARNING, "Timer 'resync' succeeded."),  # not kopf's success line: kept
        (logging.DEBUG, "Timer 'resync' is invoked."),
    ):
        assert quiet.filter(record(level, message)), message


def test_installed_on_kopfs_object_logger_once(caplog):
    logger = logging.getLogger(KOPF_OBJECT_LOGGER)
    before = list(logger.filters)
    try:
        quiet_routine_successes(QUIET_HANDLERS)
        installed = quiet_routine_successes(QUIET_HANDLERS)
        assert [f for f in logger.filters if isinstance(f, QuietSuccess)] == [installed]
        with caplog.at_level(logging.INFO, KOPF_OBJECT_LOGGER):
            logger.info("Timer 'resync' succeeded.")
            logger.info("Handler 'build_registry.<locals>.run_changed' succeeded.")
            logger.error("Timer 'resync' failed temporarily: MLflow unavailable")
        assert [r.getMessage() for r in caplog.records] == [
            "Handler 'build_registry.<locals>.run_changed' succeeded.",
            "Timer 'resync' failed temporarily: MLflow unavailable",
        ]
    finally:
        logger.filters[:] = before


def run_record(level: int, message: str, *args: object, namespace: str = "team-a", name: str = "chat",
               exc_info=None) -> logging.LogRecord:
    """A record as kopf's per-object logger of a FineTuneRun (the logger handed to every handler) makes it."""
    body = kopf.Body({"apiVersion": "kubetune.io/v1alpha1", "kind": "FineTuneRun",
                      "metadata": {"namespace": namespace, "name": name, "uid": "u-1"}})
    _, kwargs = kopf.ObjectLogger(body=body, settings=kopf.OperatorSettings()).process(message, {})
    logger = logging.getLogger(KOPF_OBJECT_LOGGER)
    return logger.makeRecord(logger.name, level, __file__, 1, message, args, exc_info, extra=kwargs["extra"])


def test_json_lines_carry_the_runs_namespace_and_name():
    line = json.loads(JsonFormatter().format(run_record(logging.WARNING, "Timer %r failed", "resync")))
    assert line == {
        "time": line["time"],
        "level": "WARNING",
        "logger": "kopf.objects",
        "message": "Timer 'resync' failed",
        "kind": "FineTuneRun",
        "namespace": "team-a",
        "name": "chat",
    }
    assert abs(datetime.fromisoformat(line["time"]) - datetime.now(UTC)) < timedelta(seconds=5)


def test_json_lines_of_other_objects_and_of_none():
    pod = run_record(logging.INFO, "x", name="chat-train-0-abc")
    pod.k8s_ref["kind"] = "Pod"
    assert {k: v for k, v in json.loads(JsonFormatter().format(pod)).items() if k in ("kind", "namespace", "name")} == {
        "kind": "Pod", "namespace": "team-a", "name": "chat-train-0-abc"}
    plain = logging.LogRecord("kopf.activities.startup", logging.INFO, __file__, 1, "started", None, None)
    assert set(json.loads(JsonFormatter().format(plain))) == {"time", "level", "logger", "message"}


def test_lines_logged_about_a_run_without_kopfs_logger_name_it(caplog):
    with caplog.at_level(logging.INFO, "kubetune.operator"):
        run_logger(logging.getLogger("kubetune.operator"), "team-a", "chat").info("reconcile deferred: %s", "503")
    line = json.loads(JsonFormatter().format(caplog.records[0]))
    assert (line["kind"], line["namespace"], line["name"], line["message"]) == ("FineTuneRun", "team-a", "chat", "reconcile deferred: 503")


def test_json_lines_are_redacted_tracebacks_included():
    try:
        raise RuntimeError(f"cannot reach https://u:{SECRET}@mlflow")
    except RuntimeError:
        record = run_record(logging.ERROR, "failed: %s", f"https://h/m?token={SECRET}", exc_info=sys.exc_info())
    text = JsonFormatter().format(record)
    assert SECRET not in text
    line = json.loads(text)
    assert line["message"] == "failed: https://h/m?token=***"
    assert "RuntimeError: cannot reach https://u:***@mlflow" in line["exception"]


def test_text_lines_name_the_run_and_are_redacted():
    line = RedactingFormatter(TEXT_FORMAT).format(run_record(logging.INFO, "at https://u:%s@h", SECRET))
    assert line.endswith(" INFO kopf.objects: [team-a/chat] at https://u:***@h")


@pytest.fixture(scope="module")
def operator_config(operator_config, tmp_path_factory) -> Path:
    """The tests' operator config with a resync timer that ticks twice a second."""
    return with_resync(operator_config, 0.5, tmp_path_factory.mktemp("fast-resync"))


@pytest.mark.cluster
def test_the_real_operator_logs_no_routine_success(runs, operator):
    # --verbose adds kopf's DEBUG "... is invoked." lines: proof that the quiet handlers ran.
    operator.stop()
    operator.command.append("--verbose")
    operator.start()
    name = runs.apply(example_run("quiet", validateInputs=False))
    runs.wait_phase(name, "Running")
    time.sleep(3)  # six ticks of the timer
    log = (operator.log_dir / f"operator-{operator.starts}.log").read_text(errors="replace")

    assert log.count("Timer 'resync' is invoked.") >= 4
    assert "Handler 'job_changed' is invoked." in log and "Handler 'pod_changed' is invoked." in log
    assert sorted({m.group(0) for m in ROUTINE_SUCCESS.finditer(log)}) == []
    # Other handlers' INFO lines still appear.
    assert re.search(rf"INFO kopf\.objects: \[{runs.namespace}/quiet\] Handler '[^']*run_changed' succeeded\.", log)


@pytest.mark.cluster
def test_the_real_operator_logs_json_lines_that_name_the_run(runs, operator):
    operator.stop()
    operator.command += ["--log-format", "json"]
    operator.start()
    name = runs.apply(example_run("json-logs", validateInputs=False))
    runs.wait_phase(name, "Running")
    time.sleep(1)  # the pods' and Job's events of the start settle
    quiet_from = datetime.now(UTC)
    time.sleep(3)  # six ticks of the timer
    text = (operator.log_dir / f"operator-{operator.starts}.log").read_text(errors="replace")
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is one JSON object

    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    about_run = [line for line in lines if line.get("namespace") == runs.namespace]
    assert any(line.get("kind") == "FineTuneRun" and line["name"] == name for line in about_run), text[-3000:]
    # A line that speaks of the run or one of its objects names the object it is about.
    for line in lines:
        if line["logger"] == KOPF_OBJECT_LOGGER or f"{runs.namespace}/{name}" in line["message"]:
            assert line.get("namespace") == runs.namespace and line.get("name", "").startswith(name), line
    # Not a line per run per timer tick: while nothing happens, the run's log stays quiet.
    quiet = [line for line in about_run if datetime.fromisoformat(line["time"]) >= quiet_from]
    assert len(quiet) <= 1, quiet
