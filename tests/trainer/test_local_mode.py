"""`kubetune run FILE --local` as a user runs it: a real CLI process, real torchrun, a real MLflow server."""

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import data
from kubetune.api.mlflow_tags import RUN_TAG

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBETUNE = str(Path(sys.executable).with_name("kubetune"))


def kubetune_run(manifest: Path, state_dir: Path, tracking_uri: str | None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(state_dir), "PYTHONSAFEPATH": "1", "OMP_NUM_THREADS": "1"}
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    return subprocess.run(
        [KUBETUNE, "run", str(manifest), "--local", "--state-dir", str(state_dir), "--no-progress-bar"],
        capture_output=True, text=True, env=env, timeout=timeout, cwd=state_dir,
    )


def small_quickstart(folder: Path) -> Path:
    """The quickstart project with eval prompts (the servable-model and dataset tests use it too)."""
    return data.small_quickstart(folder, evalPrompts=["What is 16 minus 32?"])


@pytest.mark.trainer
@pytest.mark.mlflow
def test_local_run_registers_one_tagged_version_even_when_run_again(tmp_path, mlflow_uri):
    from mlflow import MlflowClient

    manifest = small_quickstart(tmp_path / "project")
    state = tmp_path / "state"
    state.mkdir()

    first = kubetune_run(manifest, state, mlflow_uri)
    assert first.returncode == 0, first.stdout + first.stderr
    for event in ("CREATED", "STARTED", "DATA_VALIDATED", "MODEL_INITIALIZED", "TRAIN_UPDATED", "TRAIN_FINISHED", "COMPLETED"):
        assert event in first.stdout, event
    assert "Train loss:" in first.stdout and "[epoch=1/1]" in first.stdout
    assert "Registered model: main.default.quickstart version 1" in first.stdout

    client = MlflowClient(mlflow_uri)
    versions = client.search_model_versions("name = 'main.default.quickstart'")
    assert [v.version for v in versions] == ["1"]
    assert versions[0].tags[RUN_TAG] == "local/quickstart"
    run = client.get_run(versions[0].run_id)
    assert run.data.metrics["loss"] > 0 and "eval_loss" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "generations.json" in artifacts
    assert [m.model_id for m in run.outputs.model_outputs] == [versions[0].source.removeprefix("models:/")]
    assert (state / "runs" / "quickstart" / "checkpoints" / "latest").exists()

    again = kubetune_run(manifest, state, mlflow_uri)  # resumes at its last step, exports, registers again
    assert again.returncode == 0, again.stdout + again.stderr
    assert "version 1" in again.stdout
    assert [v.version for v in client.search_model_versions("name = 'main.default.quickstart'")] == ["1"]


def test_a_bad_manifest_fails_naming_file_and_line(tmp_path):
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: kubetune.io/v1alpha1\n"
        "kind: FineTuneRun\n"
        "metadata:\n"
        "  name: bad\n"
        "spec:\n"
        "  model: ./models/tiny-llama\n"
        "  trainDataPath: ./data/train.jsonl\n"
        "  registerTo: main.default\n"
        "  trainingDuration: 3 epochs\n"
    )
    result = kubetune_run(manifest, tmp_path, tracking_uri=None, timeout=120)
    assert result.returncode != 0
    assert f"{manifest}:9: spec.trainingDuration" in result.stderr
    assert not (tmp_path / "runs").exists()  # nothing started


def test_one_process_runs_the_trainer_directly_and_more_run_under_torchrun(tmp_path):
    from kubetune.local.runner import trainer_command

    config = tmp_path / "trainer.json"
    assert trainer_command(config, 1) == [sys.executable, "-m", "kubetune.trainer", "--config", str(config)]
    several = trainer_command(config, 2)
    assert "--nproc-per-node=2" in several and several[-4:] == ["-m", "kubetune.trainer", "--config", str(config)]
    assert "torchrun" in several[0] or several[1:3] == ["-m", "torch.distributed.run"]


def test_a_waiting_trainer_starts_nothing_unless_told_go(tmp_path):
    """`--wait-for-go` (local mode starts the trainer while it validates): anything but `go` ends it with 0
    before it reads its configuration (here a file that does not exist) or starts a run."""
    command = [sys.executable, "-m", "kubetune.trainer", "--config", str(tmp_path / "absent.json"), "--wait-for-go"]
    stopped = subprocess.run(command, input="", capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    told = subprocess.run(command, input="go\n", capture_output=True, text=True, timeout=120)
    assert told.returncode != 0 and "absent.json" in told.stderr  # it went on to read the configuration


@pytest.mark.trainer
def test_bad_data_stops_the_waiting_trainer_before_it_starts_anything(tmp_path):
    manifest = small_quickstart(tmp_path / "project")
    with open(tmp_path / "project" / "data" / "train.jsonl", "a") as data:
        data.write('{"messages": [{"role": "user", "content": "no answer"}]}\n')
    state = tmp_path / "state"
    state.mkdir()
    result = kubetune_run(manifest, state, tracking_uri=None, timeout=180)
    assert result.returncode != 0
    assert "FAILED" in result.stdout and "train.jsonl:49" in result.stdout, result.stdout
    run_dir = state / "runs" / "quickstart"
    assert not (run_dir / "progress.json").exists() and not (run_dir / "checkpoints").exists()
    assert not (state / "mlflow.db").exists()  # no MLflow run either
