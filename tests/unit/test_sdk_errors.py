"""Kubernetes API errors become SDK errors a user can act on."""

import json

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError

from kubetune.sdk import errors
from kubetune.sdk.client import translate


def api_error(status: int, body: dict | str, reason: str = "") -> ApiException:
    error = ApiException(status=status, reason=reason)
    error.body = body if isinstance(body, str) else json.dumps(body)
    return error


def test_missing_run_names_the_run_and_namespace():
    body = {"kind": "Status", "reason": "NotFound", "message": 'finetuneruns.kubetune.io "nope" not found',
            "details": {"name": "nope", "group": "kubetune.io", "kind": "finetuneruns"}, "code": 404}
    error = translate(api_error(404, body), "get", "nope", "team-a")
    assert isinstance(error, errors.RunNotFoundError) and isinstance(error, LookupError)
    assert str(error) == "FineTuneRun 'nope' not found in namespace 'team-a'"


def test_missing_crd_says_how_to_install_it():
    body = {"kind": "Status", "reason": "NotFound", "message": "the server could not find the requested resource",
            "details": {}, "code": 404}
    error = translate(api_error(404, body), "list", "", "team-a")
    assert isinstance(error, errors.CrdNotInstalledError) and "kubectl apply -f crds/" in str(error)


def test_cel_rejection_shows_the_servers_message():
    body = {
        "kind": "Status", "reason": "Invalid", "code": 422,
        "message": 'FineTuneRun.kubetune.io "r" is invalid: spec.model: Forbidden: spec.model cannot change after the run is created',
        "details": {"causes": [{"reason": "FieldValueForbidden", "field": "spec.model",
                                "message": "Forbidden: spec.model cannot change after the run is created"}]},
    }
    error = translate(api_error(422, body), "update", "r", "team-a")
    assert isinstance(error, errors.RunRejectedError) and isinstance(error, ValueError)
    assert "spec.model cannot change after the run is created" in str(error)
    assert error.causes == ["spec.model: Forbidden: spec.model cannot change after the run is created"]


def test_conflicts_and_permissions():
    assert isinstance(translate(api_error(409, {"message": "exists"}), "create", "r", "ns"), errors.RunAlreadyExistsError)
    assert isinstance(translate(api_error(409, {"message": "modified"}), "update", "r", "ns"), errors.RunRejectedError)
    denied = translate(api_error(403, {"message": "user cannot patch"}), "update", "r", "ns")
    assert isinstance(denied, errors.AccessDeniedError) and "user cannot patch" in str(denied)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_overload_and_server_faults_are_transient(status):
    error = translate(api_error(status, "busy", reason="Service Unavailable"), "get", "r", "ns")
    assert isinstance(error, errors.ClusterUnavailableError) and isinstance(error, ConnectionError)
    assert str(status) in str(error)


def test_unreachable_server_is_transient():
    error = translate(MaxRetryError(None, "https://127.0.0.1:1/apis", "refused"), "get", "r", "ns")
    assert isinstance(error, errors.ClusterUnavailableError)


def test_other_exceptions_pass_through():
    assert translate(KeyError("x"), "get", "r", "ns") is None


def test_follow_retries_an_unreachable_api_server_then_gives_up(tmp_path):
    import time

    from kubetune import foundation_model as fm

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u, namespace: team-a}}]\n"
    )
    fm.configure(kubeconfig=kubeconfig)
    try:
        started = time.monotonic()
        with pytest.raises(fm.ClusterUnavailableError, match="cannot reach the Kubernetes API server"):
            next(fm.follow("r", poll_seconds=0.05, retry_seconds=0.5))
        assert time.monotonic() - started >= 0.5
    finally:
        fm.configure()
