"""The registration step sorts MLflow's answers: a refusal is permanent (the run fails with MLflow's words),
an unreachable or failing server is transient (the run keeps Registering and retries), on a real server."""

import pytest

from helpers.mlflow_server import free_port, logged_export
from kubetune.api.mlflow_tags import run_tags
from kubetune.operator.reconcile import RegistrationRequest
from kubetune.operator.registration import register

pytestmark = pytest.mark.mlflow


TAGS = run_tags("team-a", "chat", "uid-1")


def request(tracking_uri: str, name: str, source: str = "runs:/none/model", run_id: str | None = "f" * 32) -> RegistrationRequest:
    return RegistrationRequest(tracking_uri, name, source, run_id, TAGS)


def test_a_name_mlflow_refuses_is_permanent(mlflow_uri, tmp_path):
    run_id, export = logged_export(mlflow_uri, tmp_path, TAGS)
    outcome = register(request(mlflow_uri, "", export, run_id))
    assert outcome.name is None and outcome.transient_error is None
    assert "name" in outcome.permanent_error.lower()


def test_an_unreachable_server_is_transient(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # as the operator runs it: fail fast, retry later
    outcome = register(request(f"http://127.0.0.1:{free_port()}", "main.finetunes.chat"))
    assert outcome.name is None and outcome.permanent_error is None
    assert outcome.transient_error


def test_a_good_request_registers(mlflow_uri, tmp_path):
    run_id, export = logged_export(mlflow_uri, tmp_path, TAGS)
    outcome = register(request(mlflow_uri, "main.registration.chat", export, run_id))
    assert (outcome.name, outcome.version, outcome.permanent_error, outcome.transient_error) == (
        "main.registration.chat", "1", None, None)


@pytest.mark.security
def test_only_the_runs_own_model_is_registered(mlflow_uri, tmp_path):
    """A report is written by an identity every container of the training pod has: it may name another
    team's MLflow run, or files outside the run's own. Neither is registered with the operator's credentials."""
    import mlflow

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    theirs_id, theirs = logged_export(mlflow_uri, tmp_path / "b", run_tags("team-b", "chat", "uid-b"))
    ours_id, ours = logged_export(mlflow_uri, tmp_path / "a", TAGS)
    for source, run_id, why in [
        (theirs, theirs_id, "was not created by this FineTuneRun"),  # team-b's run and model
        (theirs, ours_id, "is not among the artifacts of MLflow run"),  # our run, their files
        (ours, None, "names no MLflow run"),
        (ours, "", "names no MLflow run"),
        (ours, "0" * 32, "does not exist"),
    ]:
        outcome = register(request(mlflow_uri, "main.provenance.chat", source, run_id))
        assert outcome.name is None and outcome.transient_error is None and why in outcome.permanent_error, outcome
    assert mlflow.MlflowClient(mlflow_uri).search_model_versions("name = 'main.provenance.chat'") == []
    assert register(request(mlflow_uri, "main.provenance.chat", ours, ours_id)).version == "1"


def test_a_hung_mlflow_holds_only_its_own_call(monkeypatch):
    """The Registrar answers at once while the call hangs, says MLflow is unavailable after its timeout, and
    never blocks the caller (a reconcile worker holding the run's lock)."""
    import threading
    import time

    from helpers.mlflow_server import hung_server
    from kubetune.operator.registration import Registrar

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    woken = threading.Event()
    with hung_server() as uri:
        registrar = Registrar(wake=lambda run: woken.set(), timeout_s=1)
        started = time.monotonic()
        assert registrar.outcome(("ns", "a"), request(uri, "main.hung.a")) is None
        assert time.monotonic() - started < 0.5
        time.sleep(1.2)
        late = registrar.outcome(("ns", "a"), request(uri, "main.hung.a"))
        assert late.transient_error == "MLflow did not answer within 1 s" and not woken.is_set()
        assert woken.wait(30)  # the call gives up (MLflow's own timeout) and wakes its run
    assert registrar.outcome(("ns", "a"), request(uri, "main.hung.a")).transient_error


def test_a_finished_call_wakes_its_run_which_takes_the_outcome(mlflow_uri, tmp_path):
    import threading

    from kubetune.operator.registration import Registrar

    woken = []
    done = threading.Event()
    registrar = Registrar(wake=lambda run: (woken.append(run), done.set()), timeout_s=60)
    run_id, export = logged_export(mlflow_uri, tmp_path, TAGS)
    wanted = request(mlflow_uri, "main.registrar.chat", export, run_id)
    assert registrar.outcome(("ns", "chat"), wanted) is None
    assert done.wait(30) and woken == [("ns", "chat")]
    outcome = registrar.outcome(("ns", "chat"), wanted)
    assert (outcome.name, outcome.version) == ("main.registrar.chat", "1")
    assert registrar.outcome(("ns", "chat"), wanted) is None  # taken: a new request starts a new call
