"""A FineTuneRun from `kubectl apply` to a registered model, on kwok GPU pools with a real MLflow server."""

from datetime import UTC, datetime

import mlflow
import pytest

from helpers.mlflow_server import logged_export
from helpers.operator_driver import example_run
from kubetune.api.progress import CheckpointRef, TrainerReport

pytestmark = pytest.mark.cluster



def report(**fields: object) -> TrainerReport:
    return TrainerReport.model_validate({"updatedAt": datetime.now(UTC).isoformat(), **fields})


def test_apply_to_registered_model(runs, mlflow_uri, tmp_path):
    name = runs.apply(example_run("chat"))
    runs.wait_phase(name, "Validating")
    runs.wait_pods_running("chat-validate", 1)
    [validator] = runs.pods("chat-validate")
    assert validator.spec.node_selector == {"kubetune.io/pool": "cpu"}
    runs.finish_pods("chat-validate", 0)

    runs.wait_phase(name, "Running")
    pods = runs.wait_pods_running("chat-train-0", 2)
    assert sorted(p.spec.node_name for p in pods) == ["kubetune-h100-0", "kubetune-h100-1"]
    assert all(p.spec.containers[0].resources.limits["nvidia.com/gpu"] == "8" for p in pods)
    assert sorted(p.spec.hostname for p in pods) == ["chat-train-0-0", "chat-train-0-1"]
    assert {p.spec.subdomain for p in pods} == {"chat-workers"}
    service = runs.core.read_namespaced_service("chat-workers", runs.namespace)  # pod 0 resolves through it
    assert service.spec.cluster_ip == "None" and service.spec.selector.items() <= pods[0].metadata.labels.items()

    run_id, export = logged_export(mlflow_uri, tmp_path, runs.tags(name))
    runs.report(name, report(stage="MODEL_INITIALIZED", mlflowRunId=run_id))
    runs.report(
        name,
        report(stage="TRAINING", epoch=1, totalEpochs=2, step=28, totalSteps=56, trainLoss=1.71, mlflowRunId=run_id),
    )
    status = runs.wait_for("progress in status", lambda: (s := runs.status(name)).get("progress", {}).get("step") == 28 and s, 30)
    assert status["progress"]["display"].startswith("50%")
    assert status["metrics"]["trainLoss"] == 1.71
    columns = runs.kubectl("get", "ftr", name, "--no-headers")
    assert "Running" in columns and "50%" in columns and "1.71" in columns

    checkpoint = CheckpointRef(name="ep2-ba56", path="/checkpoints/chat/checkpoints/ep2-ba56", step=56, epoch=2)
    runs.report(
        name,
        report(stage="TRAIN_FINISHED", step=56, totalSteps=56, checkpoints=[checkpoint], mlflowRunId=run_id, exportUri=export),
    )
    runs.finish_pods("chat-train-0", 0)
    status = runs.wait_phase(name, "Succeeded", timeout=90)

    assert status["registeredModel"] == {"name": "main.finetunes.chat", "version": "1"}
    version = mlflow.MlflowClient(mlflow_uri).get_model_version("main.finetunes.chat", "1")
    assert version.run_id == run_id and version.source == export
    assert status["checkpoints"][0]["name"] == "ep2-ba56"
    assert status["progress"]["percent"] == 100 and status["restarts"] == 0
    assert status["startTime"] and status["completionTime"] and status["observedGeneration"] == 1
    types = [e["type"] for e in status["events"]]
    # The finished report's last steps (56) were never reported as TRAINING: they are an update of their own.
    assert types == ["CREATED", "DATA_VALIDATED", "STARTED", "MODEL_INITIALIZED", "TRAIN_UPDATED", "TRAIN_UPDATED", "TRAIN_FINISHED", "COMPLETED"]
    assert "[epoch=1/2][batch=28/56]" in status["events"][4]["message"]
    assert "[batch=56/56]" in status["events"][5]["message"]
    reasons = [e.reason for e in runs.events(name)]
    for reason in ("SpecAccepted", "ValidationRunning", "ValidationPassed", "JobCreated", "PodsRunning", "TrainingComplete", "ModelRegistered", "RunSucceeded"):
        assert reasons.count(reason) == 1, (reason, reasons)

    children = {(j.metadata.name, j.metadata.owner_references[0].name) for j in runs.jobs(name)}
    assert children == {("chat-validate", "chat"), ("chat-train-0", "chat")}


def test_liveness_endpoint_answers_for_the_chart_probes(operator):
    """The chart's Deployment probes `--liveness http://0.0.0.0:8080/healthz`: the real operator must answer."""
    import time
    import urllib.request

    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(operator.liveness_url, timeout=2) as response:
                assert response.status == 200
                return
        except OSError:
            assert operator.process.poll() is None, operator.logs()[-3000:]
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer from {operator.liveness_url} in 30s:\n{operator.logs()[-3000:]}")
            time.sleep(0.5)
