"""A planted secret and password-bearing URIs never show: runs driven to their end on the control plane (kwok
pods, the real operator, real MLflow), then every run's status, every Event, every ConfigMap of the namespace and
the operator's log are searched for them."""

import json
from datetime import UTC, datetime

import pytest
import yaml
from kubernetes import client as k8s

from helpers.operator_driver import example_run
from kubetune.api import GROUP, PLURAL, VERSION
from kubetune.api.progress import TrainerReport
from kubetune.operator import names

pytestmark = [pytest.mark.cluster, pytest.mark.mlflow, pytest.mark.security]

SECRET = "pl4nted-Secret-v4lue"  # in the credentials Secret the trainer gets by reference
PASSWORD = "pl4nted-Passw0rd"  # in URIs that reach error texts
URI = f"https://alice:{PASSWORD}@models.example/a/../export?X-Amz-Signature={PASSWORD}"


def report(**fields: object) -> TrainerReport:
    return TrainerReport.model_validate({"updatedAt": datetime.now(UTC).isoformat(), **fields})


def everything_visible(runs, operator, forged: str) -> str:
    """Statuses, Events, ConfigMaps of the namespace (but the forged run's report ConfigMap, which holds what its
    writer sent) and the operator's log, as one text."""
    items = runs.custom.list_namespaced_custom_object(GROUP, VERSION, runs.namespace, PLURAL)["items"]
    events = runs.core.list_namespaced_event(runs.namespace).items
    config_maps = [
        c for c in runs.core.list_namespaced_config_map(runs.namespace).items
        if c.metadata.name != names.report_config_map(forged)
    ]
    return "\n".join([
        json.dumps([i.get("status") for i in items]),
        *(f"{e.reason}: {e.message}" for e in events),
        *(json.dumps(c.data or {}) for c in config_maps),
        operator.logs(),
    ])


def test_credentials_never_show(runs, operator, kube_api):
    runs.core.create_namespaced_secret(runs.namespace, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="mlflow-credentials"),
        string_data={"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": SECRET},
    ))

    # A data path with a password is refused by the API server: it is never stored, never reaches a ConfigMap.
    with pytest.raises(AssertionError, match="trainDataPath must not carry credentials"):
        runs.apply(example_run("in-path", trainDataPath=f"s3://AKIA:{PASSWORD}@bucket/train.jsonl"))

    # The validator echoes a data location with credentials (a Delta log, a redirect...) as it fails.
    validation = runs.apply(example_run("validation"))
    runs.wait_pods_running("validation-validate", 1)
    runs.finish_pods("validation-validate", 1, message=f"cannot read {URI}: 403 Forbidden")

    # The trainer's report (sent as the trainer sends it) names an export and an MLflow run with credentials.
    trainer = runs.apply(example_run("trainer", validateInputs=False, compute={"pool": "a10g", "gpus": 1}))
    runs.wait_pods_running("trainer-train-0", 1)
    runs.report(trainer, report(stage="TRAIN_FINISHED", message=f"exported to {URI}", exportUri=URI, mlflowRunId=URI))
    runs.finish_pods("trainer-train-0", 0)

    # A report written around the trainer's redaction (an old or a forged trainer): the operator's own fields
    # and its registration errors (MLflow's words about that source and run) must still mask them.
    forged = runs.apply(example_run("forged", validateInputs=False, compute={"pool": "a10g", "gpus": 1}))
    runs.wait_pods_running("forged-train-0", 1)
    raw = report(stage="TRAIN_FINISHED", exportUri=URI, mlflowRunId=URI).model_dump(mode="json", by_alias=True, exclude_none=True)
    runs.write_raw_report(forged, raw)
    runs.finish_pods("forged-train-0", 0)

    for name in (validation, trainer, forged):
        status = runs.wait_phase(name, "Failed", timeout=90)
        failed = next(c for c in status["conditions"] if c["type"] == "Failed")
        assert "alice:***@" in failed["message"], failed  # the credential-bearing text did reach the status, masked
    assert "X-Amz-Signature=***" in runs.status(trainer)["report"]["exportUri"]

    # The operator's copy of the report in the status is masked too; what its writer sent stays in its ConfigMap.
    assert "X-Amz-Signature=***" in runs.status(forged)["report"]["exportUri"]

    seen = everything_visible(runs, operator, forged)
    assert "alice:***@" in seen
    assert SECRET not in seen
    assert PASSWORD not in seen
    warnings = [e for e in runs.events(validation) if e.reason == "ValidationFailed"]
    assert len(warnings) == 1 and "alice:***@" in warnings[0].message


def test_registration_errors_logged_while_mlflow_is_down_are_masked(kubeconfig, kube_api, operator_config, namespace, tmp_path):
    """MLflow unreachable: every retry logs the registration's error, which quotes the source in the clear."""
    from helpers.mlflow_server import free_port
    from helpers.operator_driver import RunDriver, delete_runs_and_wait
    from helpers.operator_fixtures import OperatorProcess

    config = yaml.safe_load(operator_config.read_text())
    config["mlflow"]["trackingUri"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    path = tmp_path / "operator.yaml"
    path.write_text(yaml.safe_dump(config))
    operator = OperatorProcess(kubeconfig, path, namespace, tmp_path)
    operator.start()
    try:
        runs = RunDriver(kube_api, kubeconfig, namespace)
        name = runs.apply(example_run("down", validateInputs=False, compute={"pool": "a10g", "gpus": 1}))
        runs.wait_pods_running("down-train-0", 1)
        raw = report(stage="TRAIN_FINISHED", exportUri=URI, mlflowRunId="0" * 32).model_dump(mode="json", by_alias=True, exclude_none=True)
        runs.write_raw_report(name, raw)
        runs.finish_pods("down-train-0", 0)
        runs.wait_phase(name, "Registering")
        runs.wait_for("a logged retry", lambda: operator.logs().count("will retry") >= 2, timeout=60)
        log = operator.logs()
        assert "alice:***@" in log, log[-3000:]
        assert PASSWORD not in log
        status = runs.status(name)
        assert PASSWORD not in json.dumps(status) and PASSWORD not in "\n".join(e.message for e in runs.events(name))
        delete_runs_and_wait(kube_api, namespace)
    finally:
        operator.stop()
