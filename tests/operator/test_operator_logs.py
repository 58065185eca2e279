"""The operator's log: the resync timer and the Job/pod handlers do not log a line each time they succeed."""

import logging
import re
import time
from pathlib import Path

import pytest

from helpers.operator_fixtures import with_resync
from helpers.operator_driver import example_run
from kubetune.operator.handlers import QUIET_HANDLERS
from kubetune.operator.runner import KOPF_OBJECT_LOGGER, QuietSuccess, quiet_routine_successes

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
        quiet_routine_successes()
        installed = quiet_routine_successes()
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
    assert re.search(r"INFO kopf\.objects: Handler '[^']*run_changed' succeeded\.", log)
