"""The trainer's report is untrusted input: every container of the training pod holds the identity that writes it.

It moves progress and history; the phase, the conditions and the registered model come from what the operator
observed (the Jobs), and a report the operator cannot tie to a trainer it sees is not folded at all.
"""

import json

import pytest

from helpers.operator_factories import NOW, make_config, make_job, make_report, make_run, make_spec
from kubetune.api.progress import REPORT_KEY
from kubetune.operator import conditions as c
from kubetune.operator.reconcile import Observed, decide
from kubetune.operator.status_io import parse_report, parse_status, status_patch

pytestmark = pytest.mark.security

CONFIG = make_config()
FINISHED = {"stage": "TRAIN_FINISHED", "updatedAt": NOW.isoformat(), "step": 100, "totalSteps": 100,
            "exportUri": "runs:/r1/model", "mlflowRunId": "r1"}


def config_map(data: dict | None) -> dict:
    return {"metadata": {"name": "chat-report"}, "data": data}


def step(status, report=None, observed=Observed()):
    return decide(make_run(make_spec(validateInputs=False), status=status.model_dump(by_alias=True), report=report),
                  observed, CONFIG, NOW)


def queued():
    return decide(make_run(make_spec(validateInputs=False)), Observed(), CONFIG, NOW).status


def running():
    return step(queued(), observed=Observed(training=make_job())).status


@pytest.mark.parametrize(
    "data",
    [
        None,
        {},
        {REPORT_KEY: ""},
        {REPORT_KEY: "{not json"},
        {REPORT_KEY: "[1, 2]"},
        {REPORT_KEY: "[" * 100_000},  # nested past the JSON parser's recursion limit
        {REPORT_KEY: json.dumps({"stage": "SUCCEEDED", "updatedAt": NOW.isoformat()})},  # no such stage
        {REPORT_KEY: json.dumps({**FINISHED, "phase": "Succeeded"})},  # a field the report does not have
        {REPORT_KEY: json.dumps({**FINISHED, "registeredModel": {"name": "x", "version": "1"}})},
        {"report": json.dumps(FINISHED)},  # another key
    ],
    ids=["no-data", "empty", "blank", "not-json", "list", "deep", "unknown-stage", "phase", "registered-model", "key"],
)
def test_a_malformed_report_is_dropped_whole(data):
    assert parse_report(config_map(data)) is None


def test_a_report_is_read_from_its_key():
    report = parse_report(config_map({REPORT_KEY: json.dumps(FINISHED)}))
    assert report.stage == "TRAIN_FINISHED" and report.export_uri == "runs:/r1/model"


def test_a_malformed_mirror_in_status_is_dropped_not_fatal():
    """status.report of a run an older trainer wrote directly: whatever it holds, the status still parses."""
    status = parse_status({"phase": "Running", "report": {"stage": "SUCCEEDED", "phase": "Succeeded"}})
    assert status.phase == "Running" and status.report is None


def test_a_report_claiming_success_while_the_job_runs_changes_no_phase():
    status = running()
    plan = step(status, make_report(**FINISHED), Observed(training=make_job()))
    assert plan.status.phase == "Running" and plan.register is None
    assert not c.is_true(plan.status.conditions, c.TRAINING_SUCCEEDED)
    assert not c.is_true(plan.status.conditions, c.SUCCEEDED)
    assert plan.status.registered_model is None and plan.status.completion_time is None
    assert plan.status.progress.step == 100  # the progress it reports is shown
    assert plan.status.report.stage == "TRAIN_FINISHED"  # and mirrored, for kubectl and the SDK
    assert status_patch(plan.status)["report"]["exportUri"] == "runs:/r1/model"


def test_a_report_without_a_trainer_the_operator_sees_is_not_folded():
    """Queued, no training Job of this attempt yet: no trainer of this attempt can have sent it."""
    plan = step(queued(), make_report(stage="TRAINING", step=10))
    assert plan.status.phase == "Queued"
    assert plan.status.progress is None and plan.status.report is None
    assert [e.type for e in plan.status.events] == ["CREATED"]


def test_a_report_from_another_attempt_is_not_folded():
    plan = step(running(), make_report(stage="TRAINING", step=10, attempt=1), Observed(training=make_job()))
    assert plan.status.progress is None and plan.status.report is None
