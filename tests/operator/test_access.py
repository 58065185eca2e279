"""Issue 10 on the real operator: a namespace registers models and logs experiments only where the operator
configuration's `access` section lets it (kubetune.operator.access_rules). A run naming another namespace's
registerTo or experiment fails at once, naming the field, and nothing is created or registered; a run within
its own namespace's rule trains and registers. The operator here runs with the shipped default, not the
allow-everything policy of the other operator tests."""

from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pytest
import yaml

from helpers.mlflow_server import logged_export
from helpers.operator_driver import example_run
from kubetune.api.progress import TrainerReport
from kubetune.operator.access_rules import schema_name

pytestmark = [pytest.mark.cluster, pytest.mark.mlflow, pytest.mark.security]

OTHER = "team-b"  # another namespace: its schema is team_b, its experiments /Users/team-b/...


@pytest.fixture
def operator_config(operator_config, namespace, tmp_path, request) -> Path:
    """The tests' configuration with the shipped `access` default, plus the run namespace's own rule where a
    test gives one (indirect parametrisation)."""
    config = yaml.safe_load(operator_config.read_text())
    config.pop("access")
    own = getattr(request, "param", None)
    if own is not None:
        config["access"] = {"namespaces": {namespace: own}}
    path = tmp_path / "access-operator.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def report(**fields: object) -> TrainerReport:
    return TrainerReport.model_validate({"updatedAt": datetime.now(UTC).isoformat(), **fields})


def assert_refused_before_anything(runs, name: str, field: str, rule: str) -> None:
    status = runs.wait_phase(name, "Failed", timeout=30)
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "InvalidSpec", status
    assert f"{field}: {rule}" in failed["message"], failed["message"]
    assert runs.jobs(name) == []
    selector = f"kubetune.io/run={name}"
    assert runs.core.list_namespaced_config_map(runs.namespace, label_selector=selector).items == []
    assert runs.core.list_namespaced_service_account(runs.namespace, label_selector=selector).items == []


def test_another_namespaces_targets_are_refused_and_nothing_is_created(runs, namespace, mlflow_uri):
    theirs = runs.apply(example_run("theirs", registerTo=f"main.{schema_name(OTHER)}", validateInputs=False))
    assert_refused_before_anything(
        runs, theirs, "spec.registerTo",
        f"namespace {namespace} may register models only to *.{schema_name(namespace)} "
        "(operator configuration access.default.registerTo)",
    )
    lookalike = runs.apply(example_run("lookalike", registerTo=f"main.{schema_name(namespace)}x", validateInputs=False))
    assert_refused_before_anything(runs, lookalike, "spec.registerTo", f"namespace {namespace} may register")

    spy = runs.apply(example_run("spy", registerTo=f"main.{schema_name(namespace)}", experimentPath=f"/Users/{OTHER}/chat",
                                 validateInputs=False))
    assert_refused_before_anything(
        runs, spy, "spec.experimentPath",
        f"namespace {namespace} may log only to MLflow experiments matching /Users/{namespace}/**",
    )
    reasons = [e.reason for e in runs.events(theirs)]
    assert "InvalidSpec" in reasons and "JobCreated" not in reasons
    client = mlflow.MlflowClient(mlflow_uri)
    assert client.search_registered_models(f"name = 'main.{schema_name(OTHER)}.theirs'") == []
    assert client.get_experiment_by_name(f"/Users/{OTHER}/chat") is None


def test_a_run_within_its_own_namespace_trains_and_registers(runs, namespace, mlflow_uri, tmp_path):
    """Its own schema and the default experiment (/Users/<namespace>/<run>): the default rule allows both,
    at the start and again when the model is registered."""
    own = f"main.{schema_name(namespace)}"
    name = runs.apply(example_run("ours", registerTo=own, validateInputs=False))
    runs.wait_phase(name, "Running")
    runs.wait_pods_running("ours-train-0", 2)
    assert runs.trainer_config("ours-train-0").spec.experiment_path == f"/Users/{namespace}/ours"

    run_id, export = logged_export(mlflow_uri, tmp_path, runs.tags(name))
    runs.report(name, report(stage="TRAIN_FINISHED", step=10, totalSteps=10, mlflowRunId=run_id, exportUri=export))
    runs.finish_pods("ours-train-0", 0)
    status = runs.wait_phase(name, "Succeeded", timeout=90)
    assert status["registeredModel"] == {"name": f"{own}.ours", "version": "1"}


@pytest.mark.parametrize("operator_config", [{"registerTo": ["main.shared_models"]}], indirect=True)
def test_a_namespaces_own_list_replaces_the_default(runs, namespace):
    shared = runs.apply(example_run("shared", registerTo="main.shared_models", validateInputs=False))
    runs.wait_for("the shared run's Job", lambda: runs.jobs(shared), 30)
    own = runs.apply(example_run("own", registerTo=f"main.{schema_name(namespace)}", validateInputs=False))
    assert_refused_before_anything(
        runs, own, "spec.registerTo",
        f"namespace {namespace} may register models only to main.shared_models "
        f"(operator configuration access.namespaces.{namespace}.registerTo)",
    )
    assert runs.status(shared)["phase"] in ("Queued", "Running")


def test_the_refusal_is_in_kubectl_describe(runs, namespace):
    """What the user sees: the run's message and a Warning Event with the rule."""
    name = runs.apply(example_run("refused", registerTo=f"main.{schema_name(OTHER)}", validateInputs=False))
    runs.wait_phase(name, "Failed", timeout=30)
    assert "spec.registerTo: namespace" in runs.status(name)["message"]
    described = runs.kubectl("describe", "ftr", name)
    assert "InvalidSpec" in described and "access.default.registerTo" in described
