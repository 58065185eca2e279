"""A hung MLflow (accepts connections, never answers) delays only the run waiting on it: registration runs
off the reconcile workers and outside the run's lock, so a cancel of that run and any other run go on."""

import time
from datetime import UTC, datetime

import pytest
import yaml

from helpers.mlflow_server import hung_server
from helpers.operator_driver import example_run
from kubetune.api.progress import TrainerReport

pytestmark = pytest.mark.cluster

PROMPTLY = 10  # seconds; a registration call holding the run's lock would take MLflow's 20 s timeout, twice


@pytest.fixture(scope="module")
def hung_mlflow():
    with hung_server(lifetime_s=600) as uri:
        yield uri


@pytest.fixture(scope="module")
def operator_config(operator_config, hung_mlflow, tmp_path_factory):
    config = yaml.safe_load(operator_config.read_text())
    config["mlflow"]["trackingUri"] = hung_mlflow
    path = tmp_path_factory.mktemp("hung-mlflow") / "operator.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_run_registering_on_a_hung_mlflow_can_be_cancelled_and_others_go_on(runs):
    cpu = {"pool": "cpu", "gpus": 0}
    name = runs.apply(example_run("stuck", validateInputs=False, compute=cpu))
    runs.wait_pods_running("stuck-train-0", 1)
    runs.report(name, TrainerReport.model_validate({
        "updatedAt": datetime.now(UTC).isoformat(), "stage": "TRAIN_FINISHED", "step": 4, "totalSteps": 4,
        "mlflowRunId": "0123", "exportUri": "mlflow-artifacts:/0/0123/artifacts/model",
    }))
    runs.finish_pods("stuck-train-0", 0)
    runs.wait_phase(name, "Registering", timeout=30)
    time.sleep(1)  # the registration call is under way, and hangs

    other = runs.apply(example_run("other", validateInputs=False, compute=cpu))
    runs.wait_phase(other, "Running", timeout=PROMPTLY)

    started = time.monotonic()
    runs.custom.patch_namespaced_custom_object("kubetune.io", "v1alpha1", runs.namespace, "finetuneruns", name,
                                               {"spec": {"suspend": True}})
    runs.wait_phase(name, "Cancelled", timeout=PROMPTLY)
    assert time.monotonic() - started < PROMPTLY
