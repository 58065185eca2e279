"""MLflow down during registration, and the operator killed while the run is Registering.

The module's operator registers to its own MLflow server, stopped and started again on the same store and
port: the run waits in Registering (RegistryUnavailable) while it is down, the operator dies meanwhile, and
once both are back the model is registered exactly once.
"""

import contextlib
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pytest
import yaml

from helpers.mlflow_server import free_port, logged_export, running_mlflow_server
from helpers.operator_driver import example_run
from kubetune.api.progress import TrainerReport

pytestmark = [pytest.mark.cluster, pytest.mark.faults]


class RestartableMlflow:
    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self._server: contextlib.ExitStack | None = None

    def start(self) -> None:
        self._server = contextlib.ExitStack()
        self._server.enter_context(running_mlflow_server(self.folder, self.port))

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


@pytest.fixture(scope="module")
def own_mlflow(tmp_path_factory):
    server = RestartableMlflow(tmp_path_factory.mktemp("own-mlflow"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def operator_config(operator_config, own_mlflow, tmp_path_factory) -> Path:
    config = yaml.safe_load(operator_config.read_text())
    config["mlflow"]["trackingUri"] = own_mlflow.uri
    path = tmp_path_factory.mktemp("own-mlflow-operator") / "operator.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_mlflow_down_and_the_operator_killed_while_registering(runs, operator, own_mlflow, tmp_path):
    name = runs.apply(example_run("late-registry", validateInputs=False))
    runs.wait_pods_running(f"{name}-train-0", 2)
    run_id, export = logged_export(own_mlflow.uri, tmp_path, runs.tags(name))
    own_mlflow.stop()
    try:
        runs.report(name, TrainerReport.model_validate({
            "updatedAt": datetime.now(UTC).isoformat(), "stage": "TRAIN_FINISHED", "step": 56, "totalSteps": 56,
            "mlflowRunId": run_id, "exportUri": export,
        }))
        runs.finish_pods(f"{name}-train-0", 0)

        def unavailable():
            status = runs.status(name)
            registered = next((c for c in status.get("conditions", []) if c["type"] == "ModelRegistered"), {})
            return status if registered.get("reason") == "RegistryUnavailable" else None

        status = runs.wait_for("RegistryUnavailable", unavailable, 60)
        assert status["phase"] == "Registering" and own_mlflow.uri in status["message"] + str(status["conditions"])
        operator.kill()
    finally:
        own_mlflow.start()
    operator.start()
    status = runs.wait_phase(name, "Succeeded", timeout=90)
    assert status["registeredModel"]["version"] == "1"
    versions = mlflow.MlflowClient(own_mlflow.uri).search_model_versions(f"name = '{status['registeredModel']['name']}'")
    assert [(v.version, v.run_id) for v in versions] == [("1", run_id)]
    assert [j.metadata.name for j in runs.jobs(name)] == [f"{name}-train-0"]
