"""The trainer image, built here, runs the training Job's own container command on CPU to a checkpoint and an export.

The operator's builders make the run's children exactly as the operator does (reconcile.training_children:
the Indexed Job, whose pod template carries the trainer's configuration) for the quickstart's tiny model and chat data on a claim, as
hack/e2e-kind.sh runs it, on the CPU pool. The test then does what a kubelet would: every volume of the
pod becomes a host folder (the downward API's file of the configuration annotation, the checkpoint claim, the data claim from
examples/, emptyDirs), `$(JOB_COMPLETION_INDEX)` becomes 0 (one node rendezvouses on 127.0.0.1), and the container's command runs in the image as the pod's user, with the pod's environment.
Host network: the rendezvous port moves to a free one, and the trainer's thread count is pinned to one
(the trainer tests' rule on shared two-core machines). MLflow is a real server that serves artifacts over
HTTP, as the one of hack/kind/mlflow.yaml does, so the export reaches it the way it does from a pod.
There is no cluster: the trainer says it cannot report progress and trains on (tests/e2e has the reports).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from helpers.cluster import REPO_ROOT
from helpers.mlflow_server import free_port, running_mlflow_server
from images.containers import Image, Mount, chart_tags, writable_folder
from kubetune.api import checkpoints
from kubetune.api.spec import FineTuneRunSpec
from kubetune.api.status import FineTuneRunStatus
from kubetune.api.trainer_config import TrainerConfig
from kubetune.operator.builders.common import RunRef
from kubetune.operator.config import OperatorConfig
from kubetune.operator.placement import resolve_placement
from kubetune.operator.reconcile import RunView, training_children

pytestmark = [pytest.mark.images, pytest.mark.trainer, pytest.mark.mlflow]

RUN = RunRef("quickstart", "team-a", "0c5e1d6e-0000-4000-8000-000000000001")
DATA_CLAIM = "kubetune-quickstart"  # hack/e2e-kind.sh copies examples/models and examples/data onto it
STEPS = 2


def test_trainer_image_is_the_pods_user_with_the_trainer_entrypoint(trainer_image: Image):
    config = trainer_image.config
    assert config["User"] == "1000:1000"
    assert config["Entrypoint"] == ["python", "-m", "kubetune.trainer"]
    assert config["Cmd"] == ["--help"]


def test_trainer_image_has_cuda_torch_and_no_operator_framework(trainer_image: Image):
    probe = (
        "import importlib.util as u, json, torch, transformers; "
        "print(json.dumps({'cuda': torch.version.cuda, 'kopf': u.find_spec('kopf') is not None, "
        "'kubetune.trainer': u.find_spec('kubetune.trainer') is not None}))"
    )
    result = trainer_image.run(["python", "-c", probe], timeout=300)
    assert result.returncode == 0, result.stdout
    found = json.loads(result.stdout.splitlines()[-1])
    assert found["cuda"], "the trainer image needs PyTorch built for CUDA: the GPU pools run it"
    assert found["kopf"] is False and found["kubetune.trainer"] is True


# ---------------------------------------------------------------- the training Job's command, in the image


@pytest.fixture(scope="module")
def mlflow_serving_artifacts(tmp_path_factory):
    """`mlflow server --serve-artifacts`, as in hack/kind/mlflow.yaml: clients upload artifacts over HTTP."""
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-served"), serve_artifacts=True) as uri:
        yield uri


def quickstart_on_a_claim() -> dict:
    """examples/quickstart.yaml with its model and data on the claim, as hack/e2e-kind.sh rewrites it; a short run."""
    manifest = yaml.safe_load((REPO_ROOT / "examples" / "quickstart.yaml").read_text())
    spec = manifest["spec"]
    for key in ("model", "trainDataPath", "evalDataPath"):
        assert spec[key].startswith("./"), spec[key]
        spec[key] = f"pvc://{DATA_CLAIM}/{spec[key][2:]}"
    spec["trainingDuration"] = f"{STEPS}ba"
    return manifest


def operator_config(mlflow_uri: str) -> OperatorConfig:
    """The example operator configuration, on its CPU pool, with the chart's trainer image and this MLflow."""
    data = yaml.safe_load((REPO_ROOT / "examples" / "operator-config.yaml").read_text())
    data["defaults"]["pool"] = "cpu"
    data["images"]["trainer"] = chart_tags()["trainer"]
    data["mlflow"] = {"trackingUri": mlflow_uri}
    return OperatorConfig.model_validate(data)


def training_pod(manifest: dict, config: OperatorConfig) -> dict:
    """The training Job's pod template, as the operator creates it (a run on one node: no other child it needs)."""
    spec = FineTuneRunSpec.parse(manifest["spec"])
    run = RunView(ref=RUN, generation=1, spec=manifest["spec"], status=FineTuneRunStatus())
    children = training_children(run, spec, resolve_placement(spec.compute, config), config, attempt=0)
    [job] = [c for c in children if c["kind"] == "Job"]
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 1
    return job["spec"]["template"]


def downward_api_files(volume: dict, metadata: dict) -> dict[str, str]:
    """What the kubelet writes into a downwardAPI volume of annotations: file name -> the annotation's value."""
    files = {}
    for item in volume["downwardAPI"]["items"]:
        key = re.fullmatch(r"metadata\.annotations\['(.+)'\]", item["fieldRef"]["fieldPath"])
        assert key, f"teach this test about the downward API field {item['fieldRef']['fieldPath']}"
        files[item["path"]] = metadata["annotations"][key.group(1)]
    return files


def pod_volumes(template: dict, container: dict, config: OperatorConfig, folder: Path) -> list[Mount]:
    """Each of the container's volume mounts backed by a host folder holding what the cluster would put there."""
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    mounts = []
    for mount in container["volumeMounts"]:
        volume, host = volumes[mount["name"]], folder / mount["name"]
        claim = volume.get("persistentVolumeClaim", {}).get("claimName")
        if "downwardAPI" in volume:
            host.mkdir(parents=True)
            for file_name, text in downward_api_files(volume, template["metadata"]).items():
                (host / file_name).write_text(text)
        elif claim == config.checkpoints.claim_name or "emptyDir" in volume:
            writable_folder(host)  # fsGroup 1000
        elif claim == DATA_CLAIM:
            host = REPO_ROOT / "examples"
        else:
            raise AssertionError(f"no host folder for the trainer's volume {volume}: teach this test about it")
        mounts.append(Mount(host, mount["mountPath"], read_only=mount.get("readOnly", False)))
    return mounts


def kubelet_command(container: dict, env: dict[str, str], port: int) -> tuple[list[str], str]:
    """The command with $(VAR) expanded as the kubelet does and the rendezvous on `port`; and pod 0's host name."""
    command = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg) for arg in container["command"]]
    [master_port] = [a for a in command if a.startswith("--master-port=")]
    [master_addr] = [a.split("=", 1)[1] for a in command if a.startswith("--master-addr=")]
    return [f"--master-port={port}" if a == master_port else a for a in command], master_addr


def test_training_job_command_runs_in_the_image_to_a_checkpoint_and_an_export(
    trainer_image: Image, mlflow_serving_artifacts, tmp_path
):
    import mlflow

    config = operator_config(mlflow_serving_artifacts)
    template = training_pod(quickstart_on_a_claim(), config)
    pod_spec = template["spec"]
    [container] = pod_spec["containers"]
    assert container["image"] == trainer_image.tag
    user = f"{pod_spec['securityContext']['runAsUser']}:{pod_spec['securityContext']['runAsGroup']}"
    assert user == trainer_image.config["User"]

    env = {e["name"]: e["value"] for e in container["env"]}
    env["JOB_COMPLETION_INDEX"] = "0"  # the Job controller's, for pod 0 of the Indexed Job
    env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command, rendezvous = kubelet_command(container, env, free_port())
    assert rendezvous == "127.0.0.1", command  # one node: inside its own pod, no Service
    assert command[0] == "torchrun" and "--node-rank=0" in command, command
    mounts = pod_volumes(template, container, config, tmp_path / "volumes")
    volume = next(m.host for m in mounts if m.container == config.checkpoints.mount_path)

    log = tmp_path / "trainer.log"
    result = trainer_image.run(command, user=user, mounts=mounts, env=env, timeout=900, log=log)
    assert result.returncode == 0, result.stdout[-8000:]

    # The checkpoint and the export on the volume, written by uid 1000.
    trainer_config = TrainerConfig.load(next((tmp_path / "volumes" / "trainer-config").iterdir()))
    run_checkpoints = checkpoints.run_checkpoint_dir(volume, RUN.name)
    latest = (run_checkpoints / checkpoints.LATEST).read_text().strip()
    assert checkpoints.parse_checkpoint_name(latest)[1] == STEPS
    assert checkpoints.is_complete(run_checkpoints / latest)
    export = checkpoints.run_output_dir(volume, RUN.name) / checkpoints.EXPORT_FOLDER
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in export.iterdir()}
    assert (export / "model.safetensors").stat().st_uid == 1000

    # The MLflow run the trainer made, with every step's loss and the export uploaded as its artifact `model`.
    client = mlflow.MlflowClient(mlflow_serving_artifacts)
    experiment = client.get_experiment_by_name(trainer_config.spec.experiment_path)
    [mlflow_run] = client.search_runs([experiment.experiment_id])
    assert mlflow_run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(mlflow_run.info.run_id, "loss")] == list(range(1, STEPS + 1))
    # The export, uploaded as the run's logged MLflow model (weights under model/), through the server.
    [output] = mlflow_run.outputs.model_outputs
    logged = client.get_logged_model(output.model_id)
    assert logged.source_run_id == mlflow_run.info.run_id
    files = Path(mlflow.artifacts.download_artifacts(f"{logged.artifact_location}/model", dst_path=str(tmp_path / "dl"),
                                                     tracking_uri=mlflow_serving_artifacts))
    uploaded = {p.name for p in files.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= uploaded, uploaded
