"""The registration step sorts MLflow's answers: a refusal is permanent (the run fails with MLflow's words),
an unreachable or failing server is transient (the run keeps Registering and retries), on a real server."""

import pytest

from helpers.mlflow_server import free_port, logged_export
from kubetune.api.mlflow_tags import run_tags
from kubetune.operator.reconcile import RegistrationRequest
from kubetune.operator.registration import register

pytestmark = pytest.mark.mlflow


def request(tracking_uri: str, name: str, source: str = "runs:/none/model", run_id: str | None = None) -> RegistrationRequest:
    return RegistrationRequest(tracking_uri, name, source, run_id, run_tags("team-a", "chat", "uid-1"))


def test_a_name_mlflow_refuses_is_permanent(mlflow_uri):
    outcome = register(request(mlflow_uri, ""))
    assert outcome.name is None and outcome.transient_error is None
    assert "name" in outcome.permanent_error.lower()


def test_an_unreachable_server_is_transient(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # as the operator runs it: fail fast, retry later
    outcome = register(request(f"http://127.0.0.1:{free_port()}", "main.finetunes.chat"))
    assert outcome.name is None and outcome.permanent_error is None
    assert outcome.transient_error


def test_a_good_request_registers(mlflow_uri, tmp_path):
    run_id, export = logged_export(mlflow_uri, tmp_path)
    outcome = register(request(mlflow_uri, "main.registration.chat", export, run_id))
    assert (outcome.name, outcome.version, outcome.permanent_error, outcome.transient_error) == (
        "main.registration.chat", "1", None, None)
