"""Credentials never show where Kubetune echoes a URI or an error: status, Events, logs, reports, spec and
configuration errors; input that must not carry them (data paths, the MLflow URI) is refused instead."""

import json
import logging
from datetime import UTC, datetime

import pytest

from helpers.operator_factories import NOW, make_config, make_spec
from kubetune.api.errors import SpecError
from kubetune.api.failures import EndedAs, termination_message
from kubetune.api.progress import TrainerReport
from kubetune.api.redaction import carries_credentials, redact, redact_strings
from kubetune.api.spec import FineTuneRunSpec
from kubetune.api.status import FineTuneRunStatus
from kubetune.operator import conditions, kube, status_io
from kubetune.operator.config import ConfigError, OperatorConfig
from kubetune.operator.logs import RedactingFormatter
from kubetune.trainer.progress import report_json

SECRET = "pl4nted-S3cret"


@pytest.mark.parametrize("text, shown", [
    (f"https://alice:{SECRET}@mlflow.example:5000/api", "https://alice:***@mlflow.example:5000/api"),
    (f"s3://AKIA:{SECRET}/with+slash@bucket/train.jsonl", "s3://AKIA:***@bucket/train.jsonl"),
    (f"failed: https://h/x?a=1&X-Amz-Signature={SECRET}&X-Amz-Credential=AKIA%2F1 (403)",
     "failed: https://h/x?a=1&X-Amz-Signature=***&X-Amz-Credential=*** (403)"),
    (f"https://acct.blob.core.windows.net/c/x?sv=2022&sig={SECRET}", "https://acct.blob.core.windows.net/c/x?sv=2022&sig=***"),
    (f"GET https://h/x?token={SECRET}", "GET https://h/x?token=***"),
    (f"Authorization: Bearer {SECRET}", "Authorization: Bearer ***"),
    (f"headers={{'Authorization': 'Basic {SECRET}'}}", "headers={'Authorization': 'Basic ***'}"),
    (f"MLFLOW_TRACKING_PASSWORD={SECRET} MLFLOW_TRACKING_USERNAME=alice", "MLFLOW_TRACKING_PASSWORD=*** MLFLOW_TRACKING_USERNAME=alice"),
    (f"AWS_SECRET_ACCESS_KEY: {SECRET}", "AWS_SECRET_ACCESS_KEY: ***"),
    (f"password={SECRET}", "password=***"),
    (f"Max retries exceeded with url: /api/2.0/mlflow/runs/get?run_id=https%3A%2F%2Falice%3A{SECRET}%40h%2Fm%3Fsig%3D{SECRET}%26a%3D1",
     "Max retries exceeded with url: /api/2.0/mlflow/runs/get?run_id=https%3A%2F%2Falice%3A***%40h%2Fm%3Fsig%3D***%26a%3D1"),
])
def test_redact_masks_credentials_and_keeps_the_rest(text, shown):
    assert redact(text) == shown
    assert SECRET not in redact(text)


@pytest.mark.parametrize("text", [
    "abfs://container@account.dfs.core.windows.net/data/train.jsonl",  # a container name, not a password
    "http://mlflow:5000/api/2.0/mlflow/runs/get failed: 404",
    "[epoch=1/3][batch=50/56] Train loss: 1.71, tokens=5000",
    "pvc://datasets/chat/train.jsonl",
    "registering main.finetunes.chat from runs:/0a1b/model",
])
def test_redact_leaves_plain_text_alone(text):
    assert redact(text) == text and not carries_credentials(text)


def test_redact_strings_goes_through_json():
    value = {"a": [f"https://u:{SECRET}@h", {"b": f"?token={SECRET}"}], "n": 3, "none": None}
    assert redact_strings(value) == {"a": ["https://u:***@h", {"b": "?token=***"}], "n": 3, "none": None}


@pytest.mark.parametrize("field", ["trainDataPath", "evalDataPath", "model", "customWeightsPath"])
@pytest.mark.parametrize("uri", [f"s3://AKIA:{SECRET}@bucket/train.jsonl", f"https://h/train.jsonl?X-Amz-Signature={SECRET}"])
def test_a_path_carrying_credentials_is_refused_without_echoing_them(field, uri):
    with pytest.raises(SpecError) as caught:
        FineTuneRunSpec.parse(make_spec(**{field: uri}))
    text = str(caught.value)
    assert f"spec.{field}: must not carry credentials" in text and "credentialsSecret" in text
    assert SECRET not in text


@pytest.mark.parametrize("key", ["trackingUri", "registryUri"])
@pytest.mark.parametrize("uri", [f"https://alice:{SECRET}@mlflow.example", f"https://mlflow.example/?token={SECRET}"])
def test_the_operator_refuses_an_mlflow_uri_with_credentials(tmp_path, key, uri):
    config = make_config().model_dump(by_alias=True, mode="json", exclude_none=True)
    config["mlflow"][key] = uri
    path = tmp_path / "operator.yaml"
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError) as caught:
        OperatorConfig.load(path)
    text = str(caught.value)
    assert f"config.mlflow.{key}:" in text and "credentialsSecret" in text and "MLFLOW_TRACKING_PASSWORD" in text
    assert SECRET not in text


def status_with(message: str) -> FineTuneRunStatus:
    conditions_ = conditions.set_condition([], conditions.FAILED, True, conditions.REGISTRATION_FAILED, message, NOW)
    return FineTuneRunStatus.model_validate({
        "phase": "Failed",
        "message": message,
        "conditions": [c.model_dump(by_alias=True, mode="json") for c in conditions_],
        "events": [{"type": "FAILED", "message": message, "time": NOW.isoformat()}],
    })


def test_the_status_is_written_redacted_and_a_masked_difference_is_no_change():
    raw = status_with(f"MlflowException: Invalid model version source: 'https://u:{SECRET}@h/model'")
    patch = status_io.status_patch(raw)
    assert SECRET not in json.dumps(patch) and "https://u:***@h/model" in patch["message"]
    stored = status_io.parse_status(patch)
    assert stored == status_io.redacted(raw)
    assert not status_io.changed(stored, raw)  # a retry that fails the same way writes nothing
    assert conditions.transitions(stored.conditions, status_io.redacted(raw).conditions) == []


def test_events_carry_the_redacted_message(monkeypatch):
    posted = []

    class FakeCore:
        def __init__(self, api):
            pass

        def create_namespaced_event(self, namespace, body):
            posted.append(body)

    monkeypatch.setattr(kube.client, "CoreV1Api", FakeCore)
    run = {"apiVersion": "kubetune.io/v1alpha1", "kind": "FineTuneRun", "metadata": {"name": "r", "namespace": "n", "uid": "u"}}
    kube.emit_event(None, run, conditions.Transition("Warning", "X", f"at https://u:{SECRET}@h"), NOW)
    assert posted[0]["message"] == "at https://u:***@h"


def test_log_lines_are_redacted_tracebacks_included():
    formatter = RedactingFormatter("%(levelname)s %(message)s")
    try:
        raise RuntimeError(f"cannot reach https://u:{SECRET}@h")
    except RuntimeError:
        import sys

        record = logging.LogRecord("kopf.objects", logging.ERROR, __file__, 1, "failed: %s", (f"?token={SECRET}",), sys.exc_info())
    line = formatter.format(record)
    assert SECRET not in line
    assert "failed: ?token=***" in line and "https://u:***@h" in line


def test_the_trainers_report_and_termination_message_are_redacted():
    report = TrainerReport(stage="FAILED", updated_at=datetime.now(UTC), message=f"cannot read s3://k:{SECRET}@b/x",
                           export_uri=f"https://h/m?sig={SECRET}")
    assert SECRET not in json.dumps(report_json(report))
    assert SECRET not in termination_message(EndedAs.USER_ERROR, f"bad data at https://u:{SECRET}@h/t.jsonl line 3")


def test_a_masked_message_decided_again_is_no_new_event(monkeypatch):
    """The reconcile compares what it decided with what is stored, which is redacted: it must compare as stored."""
    from kubetune.operator import handlers
    from kubetune.operator.reconcile import Observed, Plan

    decided = status_with(f"MLflow at https://u:{SECRET}@h is unavailable")
    stored = status_io.status_patch(decided)
    body = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneRun",
        "metadata": {"name": "chat", "namespace": "team-a", "uid": "uid-1", "resourceVersion": "7", "generation": 1},
        "spec": make_spec(),
        "status": stored,
    }
    written, posted = [], []
    monkeypatch.setattr(handlers.kube, "read_run", lambda api, namespace, name: body)
    monkeypatch.setattr(handlers, "observe", lambda api, run: Observed())
    monkeypatch.setattr(handlers, "read_report", lambda api, run: None)
    # Something else changed too (a restart counted), so the status is written.
    monkeypatch.setattr(handlers, "decide", lambda run, observed, config, at: Plan(decided.model_copy(update={"restarts": 1})))
    monkeypatch.setattr(handlers.kube, "write_status", lambda api, run, patch: written.append(patch))
    monkeypatch.setattr(handlers.kube, "emit_event", lambda api, run, transition, at: posted.append(transition))
    handlers.reconcile(None, make_config(), "team-a", "chat", logging.getLogger("test"))
    assert written and written[0]["restarts"] == 1 and SECRET not in json.dumps(written)
    assert posted == []
