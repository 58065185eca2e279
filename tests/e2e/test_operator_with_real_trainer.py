"""The operator and the real trainer, end to end: everything real except the pods' execution.

The real `kubetune operator` (kwok node pools, a real MLflow server) creates a run's training
Job. Where the kwok pod would run its container, the test runs the real trainer the way the pod
would: the pod's own torchrun command (one node, so `--standalone`), the trainer config the
operator wrote into the run's ConfigMap (only the checkpoint volume's mount remapped to a temp
folder) and a token of the run's trainer ServiceAccount. Then kwok ends the pod, and the
operator must have folded the trainer's real reports (written into the run's report ConfigMap,
the one object that token may patch) into the status and must register the export the trainer
logged to MLflow.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
import pytest

from helpers import cluster, torchrun
from kubetune.api import GROUP, VERSION
from kubetune.api.trainer_config import TrainerConfig
from kubetune.operator import names

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

REPO = Path(__file__).resolve().parents[2]
RUN, JOB, POD_HOME = "tiny", "tiny-train-0", "/tmp"
TRAINER_SEAT = ["-m", "kubetune.trainer", "--config"]  # how the pod's command starts the trainer


def tiny_run() -> dict:
    """The quickstart's tiny model and chat data by absolute path, on the CPU pool, four optimizer steps."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FineTuneRun",
        "metadata": {"name": RUN},
        "spec": {
            "model": str(REPO / "examples" / "models" / "tiny-llama"),
            "trainDataPath": str(REPO / "examples" / "data" / "train.jsonl"),
            "evalDataPath": str(REPO / "examples" / "data" / "eval.jsonl"),
            "evalPrompts": ["What is the capital of Poland?"],
            "registerTo": "main.e2e",
            "trainingDuration": "4ba",
            "learningRate": "2e-3",
            "contextLength": 128,
            "validateInputs": False,
            "compute": {"pool": "cpu", "gpus": 0},
        },
    }


def on_this_machine(config: TrainerConfig, volume: Path) -> TrainerConfig:
    """Only the pod's filesystem moves: the checkpoint volume's mount becomes a local folder."""
    paths = config.paths.model_copy(update={"checkpoint_root": volume, "output_root": volume})
    return config.model_copy(update={"paths": paths})


def local_command(pod_command: list[str], config_path: Path) -> list[str]:
    """The pod's torchrun with its pod-0 rendezvous replaced by --standalone (one node) and the local config."""
    assert pod_command[0] == "torchrun" and pod_command[-4:-1] == TRAINER_SEAT, pod_command
    assert "--nnodes=1" in pod_command, pod_command
    nproc = [arg for arg in pod_command if arg.startswith("--nproc-per-node=")]
    return [torchrun.TORCHRUN, "--standalone", *nproc, *TRAINER_SEAT, str(config_path)]


def local_env(pod_env: list, home: Path, kubeconfig: Path) -> dict[str, str]:
    """The pod's environment (its /tmp scratch moved to `home`), the trainer tests' thread limits, the token."""
    env = torchrun.trainer_env()
    env.pop("KUBERNETES_SERVICE_HOST", None)  # not in a pod: the reporter must take the kubeconfig
    for var in pod_env:
        if var.value is None:  # the kubelet's downward API (JOB_COMPLETION_INDEX): --standalone needs no node rank
            continue
        env[var.name] = var.value.replace(POD_HOME, str(home), 1) if var.value.startswith(POD_HOME) else var.value
    env["KUBECONFIG"] = str(kubeconfig)
    return env


def run_trainer(command: list[str], env: dict[str, str], cwd: Path, log: Path, timeout: float = 180) -> int:
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return torchrun.wait(process, timeout, log)


def can_i(kubeconfig: Path, namespace: str, *question: str) -> bool:
    """`kubectl auth can-i` (a SelfSubjectAccessReview) as whoever the kubeconfig authenticates."""
    result = subprocess.run(
        [cluster.kubectl_binary(), "--kubeconfig", str(kubeconfig), "-n", namespace, "auth", "can-i", *question],
        capture_output=True, text=True, timeout=60,
    )
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), (question, answer, result.stderr)
    return answer == "yes"


def assert_pyfunc_generates(mlflow_uri: str, model_uri: str) -> None:
    """The registered version is an MLflow model that `mlflow.pyfunc.load_model` loads and that answers a chat."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_uri)
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    finally:
        mlflow.set_tracking_uri(previous)
    [completion] = model.predict({"messages": [{"role": "user", "content": "What is 2 plus 2?"}], "max_tokens": 4})
    assert completion["choices"][0]["message"]["role"] == "assistant"
    assert completion["usage"]["completion_tokens"] >= 1


def event_types(status: dict) -> list[str]:
    return [event["type"] for event in status.get("events", [])]


def test_the_real_trainer_reports_to_the_operator_which_registers_its_export(
    runs, namespace, mlflow_uri, service_account_kubeconfig, tmp_path
):
    manifest = tiny_run()
    name = runs.apply(manifest)
    runs.wait_phase(name, "Running")
    [pod] = runs.wait_pods_running(JOB, 1)
    assert pod.spec.node_selector == {"kubetune.io/pool": "cpu"}
    [trainer] = pod.spec.containers
    mounted = next(m for m in trainer.volume_mounts if m.name == "trainer-config")

    # The trainer config exactly as the pod mounts it: its own annotation, through the downward API.
    [volume] = [v for v in pod.spec.volumes if v.name == "trainer-config"]
    [item] = volume.downward_api.items
    assert item.field_ref.field_path == f"metadata.annotations['{names.TRAINER_CONFIG_ANNOTATION}']"
    file_name, text = item.path, pod.metadata.annotations[names.TRAINER_CONFIG_ANNOTATION]
    assert trainer.command[-1] == f"{mounted.mount_path}/{file_name}"
    # One node: torchrun rendezvouses inside the pod, and the run has no Service.
    assert "--master-addr=127.0.0.1" in trainer.command and pod.spec.subdomain is None
    assert not runs.core.list_namespaced_service(namespace, label_selector=f"kubetune.io/run={name}").items
    (tmp_path / file_name).write_text(text)
    operator_config = TrainerConfig.load(tmp_path / file_name)
    run_uid = runs.get(name)["metadata"]["uid"]
    assert operator_config.run.model_dump() == {"namespace": namespace, "name": name, "uid": run_uid}
    inputs = ("model", "trainDataPath", "evalDataPath", "trainingDuration", "contextLength")
    spec = operator_config.spec.to_manifest_spec()
    assert {k: spec[k] for k in inputs} == {k: manifest["spec"][k] for k in inputs}
    assert operator_config.mlflow_tracking_uri == mlflow_uri and operator_config.progress.kind == "kubernetes"
    volume = next(m for m in trainer.volume_mounts if m.name == "checkpoints").mount_path
    assert operator_config.paths.checkpoint_root == operator_config.paths.output_root == Path(volume)
    local_config = on_this_machine(operator_config, tmp_path / "checkpoints").write(tmp_path / "trainer-local.yaml")

    # The pod's identity: a token of the ServiceAccount the operator made for this run's trainer.
    kubeconfig = service_account_kubeconfig(pod.spec.service_account_name)
    workdir = tmp_path / "pod"
    workdir.mkdir()
    log = tmp_path / "trainer.log"
    command, env = local_command(trainer.command, local_config), local_env(trainer.env, workdir, kubeconfig)
    exit_code = run_trainer(command, env, workdir, log)
    assert exit_code == 0, torchrun.tail(log)

    # Every stage the trainer went through is in the status, folded by the operator from the real reports.
    status = runs.wait_for(
        "the trainer's final report in the status",
        lambda: "TRAIN_FINISHED" in event_types(s := runs.status(name)) and s,
        timeout=30,
    )
    assert status["phase"] == "Running"  # the pod has not ended yet
    types = event_types(status)
    once = ["CREATED", "STARTED", "DATA_VALIDATED", "MODEL_INITIALIZED", "TRAIN_FINISHED"]
    assert [t for t in types if t in once] == once, types
    assert types.index("MODEL_INITIALIZED") < types.index("TRAIN_UPDATED") < types.index("TRAIN_FINISHED"), types
    last_update = [e for e in status["events"] if e["type"] == "TRAIN_UPDATED"][-1]
    assert "[batch=4/4]" in last_update["message"], last_update
    assert status["progress"]["step"] == status["progress"]["totalSteps"] == 4 and status["progress"]["percent"] == 100

    mlflow_client = mlflow.MlflowClient(mlflow_uri)
    run_id = status["mlflow"]["runId"]
    losses = mlflow_client.get_metric_history(run_id, "loss")
    assert [m.step for m in losses] == [1, 2, 3, 4]
    assert status["metrics"]["trainLoss"] == pytest.approx(losses[-1].value)
    eval_losses = mlflow_client.get_metric_history(run_id, "eval_loss")
    assert status["metrics"]["evalLoss"] == pytest.approx(eval_losses[-1].value)
    [checkpoint] = status["checkpoints"]
    assert checkpoint["step"] == 4 and checkpoint["name"].endswith("-ba4")
    assert (Path(checkpoint["path"]) / "COMPLETE").exists()
    assert Path(checkpoint["path"]).is_relative_to(tmp_path / "checkpoints" / name / "checkpoints")

    # kwok ends the pod as the container would have: the Job completes and the operator registers.
    runs.finish_pods(JOB, 0)
    status = runs.wait_phase(name, "Succeeded", timeout=60)
    assert status["registeredModel"] == {"name": f"main.e2e.{name}", "version": "1"}
    version = mlflow_client.get_model_version(f"main.e2e.{name}", "1")
    mlflow_run = mlflow_client.get_run(run_id)
    assert version.run_id == run_id and version.source.startswith("models:/m-")  # the run's logged MLflow model
    assert version.source == status["report"]["exportUri"]  # what the trainer reported (the operator's copy)
    assert mlflow_client.get_logged_model(version.source.removeprefix("models:/")).source_run_id == run_id
    assert mlflow_run.data.tags["kubetune.run_uid"] == run_uid
    assert mlflow_run.info.experiment_id == status["mlflow"]["experimentId"]
    assert {i.dataset.name for i in mlflow_run.inputs.dataset_inputs} == {"train.jsonl", "eval.jsonl"}
    assert_pyfunc_generates(mlflow_uri, f"models:/main.e2e.{name}/1")
    assert event_types(status)[-1] == "COMPLETED"

    # The token could patch its own run's report and nothing else: no FineTuneRun, no status.
    report_map = operator_config.progress.config_map
    assert report_map == names.report_config_map(name)
    assert can_i(kubeconfig, namespace, "patch", f"configmaps/{report_map}")
    assert not can_i(kubeconfig, namespace, "get", f"configmaps/{report_map}")
    assert not can_i(kubeconfig, namespace, "patch", f"configmaps/{names.report_config_map('other-run')}")
    assert not can_i(kubeconfig, namespace, "patch", f"jobs.batch/{JOB}")  # nor its own configuration
    assert not can_i(kubeconfig, namespace, "patch", f"finetuneruns.{GROUP}/{name}", "--subresource=status")
    assert not can_i(kubeconfig, namespace, "get", f"finetuneruns.{GROUP}/{name}")
    assert not can_i(kubeconfig, namespace, "patch", f"finetuneruns.{GROUP}/{name}")
    assert not can_i(kubeconfig, namespace, "list", f"finetuneruns.{GROUP}")
    assert not can_i(kubeconfig, namespace, "get", "secrets")
    assert not can_i(kubeconfig, namespace, "create", "pods")
    assert not can_i(kubeconfig, "default", "patch", f"configmaps/{report_map}")
