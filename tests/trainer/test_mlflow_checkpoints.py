"""Checkpoints seen from MLflow (kubetune.api.mlflow_checkpoints): the trainer lists each complete
checkpoint under its MLflow run, and a later run starts from `runs:/RUN_ID/checkpoints/…` on a real
MLflow server, in its own namespace only."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.mlflow_server import free_port
from kubetune.api import checkpoints
from kubetune.api.checkpoints import CheckpointNotFoundError, resolve_custom_weights
from kubetune.api.mlflow_checkpoints import MlflowUnavailableError
from kubetune.api.mlflow_tags import run_tags
from kubetune.api.progress import TrainerReport
from kubetune.api.trainer_config import ProgressTarget
from kubetune.trainer import __main__ as trainer_main

pytestmark = [pytest.mark.trainer, pytest.mark.mlflow]

KUBETUNE = str(Path(sys.executable).parent / "kubetune")


def tracked(config, mlflow_uri, tmp_path, every: int | None = None):
    """The config logging to the session's MLflow server, reporting to a file, checkpointing every `every` steps."""
    training = config.training.model_copy(update={"checkpoint_every_steps": every}) if every else config.training
    return config.model_copy(update={
        "mlflow_tracking_uri": mlflow_uri, "training": training,
        "paths": config.paths.model_copy(update={"checkpoint_location": "pvc://team-checkpoints"}),
        "progress": ProgressTarget(kind="file", path=tmp_path / f"{config.run.name}-report.json", min_interval_s=0),
    })


def train(config, tmp_path) -> TrainerReport:
    assert trainer_main.main(["--config", str(config.write(tmp_path / f"{config.run.name}.json"))]) == 0
    return TrainerReport.model_validate_json(config.progress.path.read_text())


@pytest.fixture
def first_run(tmp_path, tiny_model_dir, single_process_group, recipe_config, mlflow_uri):
    """A 4-step run checkpointing every 2 steps: (its config, its final report)."""
    config = tracked(recipe_config(tmp_path, tiny_model_dir("llama"), "ckpt-source"), mlflow_uri, tmp_path, every=2)
    return config, train(config, tmp_path)


def test_each_complete_checkpoint_is_listed_under_the_mlflow_run_with_where_it_is(first_run, mlflow_uri):
    from mlflow import MlflowClient

    config, report = first_run
    on_disk = [p.name for p in checkpoints.list_checkpoints(config.run_checkpoint_dir)]
    assert on_disk == ["ep0-ba2", "ep1-ba4"]
    client = MlflowClient(mlflow_uri)
    listed = sorted(a.path for a in client.list_artifacts(report.mlflow_run_id, "checkpoints"))
    assert listed == ["checkpoints/ep0-ba2", "checkpoints/ep1-ba4"]
    reference = json.loads(Path(client.download_artifacts(report.mlflow_run_id, "checkpoints/ep0-ba2/checkpoint.json")).read_text())
    assert reference["location"] == "pvc://team-checkpoints/ckpt-source/checkpoints/ep0-ba2"
    assert reference["mlflowUri"] == f"runs:/{report.mlflow_run_id}/checkpoints/ep0-ba2"
    assert reference["step"] == 2
    # The report (and so status and get_checkpoints) says the same.
    assert [(c.location, c.mlflow_uri) for c in report.checkpoints] == [
        (f"pvc://team-checkpoints/ckpt-source/checkpoints/{n}", f"runs:/{report.mlflow_run_id}/checkpoints/{n}") for n in on_disk
    ]


def test_a_runs_reference_resolves_to_the_checkpoint_folder_and_a_later_run_starts_from_it(
    first_run, tmp_path, tiny_model_dir, recipe_config, mlflow_uri
):
    config, report = first_run
    root, run_id = config.paths.checkpoint_root, report.mlflow_run_id
    folder = config.run_checkpoint_dir
    resolve = lambda value: resolve_custom_weights(value, root, tracking_uri=mlflow_uri, namespace="tests")  # noqa: E731
    assert resolve(f"runs:/{run_id}/checkpoints/ep0-ba2") == folder / "ep0-ba2"
    assert resolve(f"runs:/{run_id}") == folder / "ep1-ba4"  # the latest
    assert resolve(f"runs:/{run_id}/checkpoints/latest") == folder / "ep1-ba4"

    later = recipe_config(tmp_path, tiny_model_dir("llama"), "ckpt-follower", customWeightsPath=f"runs:/{run_id}/checkpoints/ep0-ba2")
    later = later.model_copy(update={"paths": config.paths})  # the same checkpoint volume, as in one namespace
    later_report = train(tracked(later, mlflow_uri, tmp_path), tmp_path)
    assert later_report.stage == "TRAIN_FINISHED"


def test_a_runs_reference_is_refused_across_namespaces_and_for_runs_that_list_no_checkpoints(first_run, mlflow_uri):
    from mlflow import MlflowClient

    config, report = first_run
    root = config.paths.checkpoint_root
    with pytest.raises(CheckpointNotFoundError, match=r"belongs to the run tests/ckpt-source; a run in namespace other"):
        resolve_custom_weights(f"runs:/{report.mlflow_run_id}", root, tracking_uri=mlflow_uri, namespace="other")
    with pytest.raises(CheckpointNotFoundError, match="the MLflow server has no run 0123abcd"):
        resolve_custom_weights("runs:/0123abcd", root, tracking_uri=mlflow_uri, namespace="tests")
    client = MlflowClient(mlflow_uri)
    foreign = client.create_run(client.create_experiment("/Users/someone/not-kubetune")).info.run_id
    with pytest.raises(CheckpointNotFoundError, match="was not made by a Kubetune run"):
        resolve_custom_weights(f"runs:/{foreign}", root, tracking_uri=mlflow_uri, namespace="tests")
    # A Kubetune run of this namespace that never checkpointed: the usual "no complete checkpoint" message.
    empty = client.create_run(client.create_experiment("/Users/someone/empty"), tags=run_tags("tests", "never-ran", "u1")).info.run_id
    with pytest.raises(CheckpointNotFoundError, match="names no complete checkpoint"):
        resolve_custom_weights(f"runs:/{empty}", root, tracking_uri=mlflow_uri, namespace="tests")


def test_validate_weights_resolves_a_runs_reference_as_the_trainer_does(first_run, mlflow_uri):
    config, report = first_run
    command = [KUBETUNE, "validate-weights", f"runs:/{report.mlflow_run_id}/checkpoints/ep0-ba2",
               "--checkpoint-root", str(config.paths.checkpoint_root), "--mlflow-tracking-uri", mlflow_uri]
    ok = subprocess.run([*command, "--namespace", "tests"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert str(config.run_checkpoint_dir / "ep0-ba2") in ok.stdout
    refused = subprocess.run([*command, "--namespace", "other"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "may start only from checkpoints of its own namespace" in refused.stdout
    assert "Traceback" not in refused.stderr


def test_an_mlflow_server_that_does_not_answer_is_transient_not_a_missing_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with pytest.raises(MlflowUnavailableError, match="did not answer"):
        resolve_custom_weights("runs:/0123abcd", tmp_path, tracking_uri=f"http://127.0.0.1:{free_port()}", namespace="tests")
