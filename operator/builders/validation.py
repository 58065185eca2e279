"""The validation step, before any GPU is asked for: `kubetune validate-data` for every data path (it also
checks the model folder), `kubetune validate-weights` for customWeightsPath, and `kubetune plan-memory` for a
model folder on a pool that says its GPUs' memory (the operator plans the supported models itself)."""

from kubetune.api.locations import parse_custom_weights, parse_model
from kubetune.api.spec import FineTuneRunSpec
from kubetune.operator import names
from kubetune.operator.builders import common, kueue
from kubetune.operator.builders.common import Manifest, RunRef
from kubetune.operator.builders.trainer_config import resolve_custom_weights
from kubetune.operator.config import OperatorConfig
from kubetune.operator.placement import MemoryQuestion, Placement, memory_question, resolve_placement


def validation_pool_name(config: OperatorConfig) -> str:
    return config.defaults.validation_pool or config.defaults.pool


def validate_command(path: str, spec: FineTuneRunSpec, config: OperatorConfig) -> list[str]:
    command = ["kubetune", "validate-data", path, "--task-type", str(spec.task_type), "--model", spec.model]
    if common.dataset_mirror(spec, config) is not None:
        command += ["--dataset-root", config.huggingface_datasets.dataset_root()]
    return command


def validate_weights_command(run: RunRef, spec: FineTuneRunSpec, config: OperatorConfig) -> list[str]:
    """The trainer's own resolution of customWeightsPath (a run's name as the operator rewrote it; a runs:/
    reference asked of the MLflow server, for this run's namespace)."""
    value = resolve_custom_weights(spec.custom_weights_path, config.checkpoints.mount_path)
    command = ["kubetune", "validate-weights", value, "--checkpoint-root", config.checkpoints.mount_path]
    if parse_custom_weights(value).kind == "mlflow_run":
        command += ["--namespace", run.namespace]
        if config.mlflow.tracking_uri:
            command += ["--mlflow-tracking-uri", config.mlflow.tracking_uri]
    return command


def plan_memory_command(spec: FineTuneRunSpec, placement: Placement, question: MemoryQuestion) -> list[str]:
    """The memory plan of the model folder on the nodes the training Job will get. Where compute leaves the node
    count open that is one node: the operator places a run before a pod has read the folder's shape, so a folder
    that needs more is refused with the fewest nodes to ask for (spec.compute.nodes) rather than run out of memory."""
    command = [
        "kubetune", "plan-memory", "--model", spec.model, "--pool", placement.pool_name,
        "--gpu-memory-gib", str(question.gpu_memory_gib), "--gpus-per-node", str(question.gpus_per_node),
        "--nodes", str(placement.nodes), "--micro-batch", str(question.micro_batch),
        "--activation-checkpointing" if question.activation_checkpointing else "--no-activation-checkpointing",
    ]
    if spec.context_length:  # else the trainer's default, from the folder's config.json
        command += ["--context-length", str(spec.context_length)]
    return command


def _memory_plan(spec: FineTuneRunSpec, config: OperatorConfig) -> list[str] | None:
    """The plan-memory command for a model folder a pod can read (a claim or a path in the image) on GPUs of a
    known memory; None otherwise (a supported model is planned at admission, resolve_placement)."""
    if parse_model(spec.model).local_path() is None:
        return None
    placement = resolve_placement(spec.compute, config)
    question = memory_question(placement, spec.compute)
    return None if question is None else plan_memory_command(spec, placement, question)


def _reads_checkpoint_volume(spec: FineTuneRunSpec) -> bool:
    """customWeightsPath names an earlier run, a checkpoint an MLflow run lists, or a path: all live on the
    checkpoint volume in a pod."""
    kinds = ("run_name", "mlflow_run", "local")
    return bool(spec.custom_weights_path) and parse_custom_weights(spec.custom_weights_path).kind in kinds


def build_validation_job(
    run: RunRef, spec: FineTuneRunSpec, config: OperatorConfig, queue: str | None = None, priority: str | None = None
) -> Manifest:
    """One container per check, running side by side; the pod succeeds when every path is valid and the model fits.
    With a Kueue queue (builders.kueue.validation_queue) it waits in it, suspended, like the training Job."""
    pool = config.pools[validation_pool_name(config)]
    data_volumes, data_mounts = common.input_volumes(spec, config)
    resources = {"requests": {k: v for k, v in (("cpu", pool.cpu), ("memory", pool.memory)) if v}}
    inputs = [("validate-train", spec.train_data_path)]
    if spec.eval_data_path:
        inputs.append(("validate-eval", spec.eval_data_path))
    commands = [(container_name, validate_command(path, spec, config)) for container_name, path in inputs]
    if spec.custom_weights_path:
        commands.append(("validate-weights", validate_weights_command(run, spec, config)))
    memory_plan = _memory_plan(spec, config)
    if memory_plan is not None:
        commands.append(("plan-memory", memory_plan))
    if _reads_checkpoint_volume(spec):
        claim = {"claimName": config.checkpoints.claim_name, "readOnly": True}
        data_volumes.append({"name": "checkpoints", "persistentVolumeClaim": claim})
        data_mounts.append({"name": "checkpoints", "mountPath": config.checkpoints.mount_path, "readOnly": True})
    # The credentials of the pool that will train: validation checks the access training will have.
    run_pool = resolve_placement(spec.compute, config).pool_name
    storage_and_mlflow_env = [*common.storage_env_from(spec, run_pool, config), *common.secret_env_from(config)]
    containers = [
        {
            "name": container_name,
            "image": config.images.trainer,
            "imagePullPolicy": config.images.pull_policy,
            "command": command,
            "env": common.scratch_env(config),
            "envFrom": storage_and_mlflow_env,
            "resources": resources if resources["requests"] else {},
            "securityContext": common.container_security_context(),
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *data_mounts],
        }
        for container_name, command in commands
    ]
    pod_spec: Manifest = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": common.pod_security_context(),
        "containers": containers,
        "volumes": [{"name": "tmp", "emptyDir": {}}, *data_volumes],
        **common.placement_fields(pool.node_selector, pool.tolerations),
    }
    if config.images.pull_secrets:
        pod_spec["imagePullSecrets"] = common.image_pull_secrets(config)
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": common.metadata(run, names.validation_job(run.name), names.VALIDATOR),
        "spec": {
            "backoffLimit": 0,
            "template": {"metadata": {"labels": names.labels(run.name, names.VALIDATOR)}, "spec": pod_spec},
        },
    }
    return kueue.queued(job, queue, priority)

