"""kubetune.registry against a real MLflow server: dotted names, run tags, idempotent retries."""

import pytest

from kubetune.api.mlflow_tags import RUN_TAG, RUN_UID_TAG
from kubetune.registry import RegisteredVersion, register_model

pytestmark = pytest.mark.mlflow


def _logged_source(uri: str, folder, tags: dict[str, str]) -> tuple[str, str]:
    """A run tagged with its FineTuneRun, with an artifact folder to register, like the trainer's final export."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.create_experiment(f"/Users/ns/registry-{folder.parent.name}-{folder.name}")
    run = client.create_run(experiment, tags=tags)
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "config.json").write_text("{}")
    client.log_artifacts(run.info.run_id, str(folder / "model"), "model")
    return run.info.run_id, f"{run.info.artifact_uri}/model"


def test_registers_a_tagged_version_once(mlflow_uri, tmp_path):
    from mlflow import MlflowClient

    tags = {RUN_TAG: "ns/my-run", RUN_UID_TAG: "uid-1"}
    run_id, source = _logged_source(mlflow_uri, tmp_path, tags)
    name = f"main.default.reg_{tmp_path.name.replace('-', '_')}"

    first = register_model(mlflow_uri, name, source, run_id, tags)
    retried = register_model(mlflow_uri, name, source, run_id, tags)

    assert first == RegisteredVersion(name, "1")
    assert retried == first
    versions = MlflowClient(mlflow_uri).search_model_versions(f"name = '{name}'")
    assert [v.version for v in versions] == ["1"]
    assert versions[0].tags[RUN_TAG] == "ns/my-run"
    assert versions[0].tags[RUN_UID_TAG] == "uid-1"
    assert versions[0].run_id == run_id


def test_another_run_gets_the_next_version(mlflow_uri, tmp_path):
    name = f"main.default.next_{tmp_path.name.replace('-', '_')}"
    versions = []
    for run in ("a", "b"):
        tags = {RUN_TAG: f"ns/{run}", RUN_UID_TAG: f"uid-{run}"}
        run_id, source = _logged_source(mlflow_uri, tmp_path / run, tags)
        versions.append(register_model(mlflow_uri, name, source, run_id, tags).version)

    assert versions == ["1", "2"]
