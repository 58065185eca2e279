"""The validation step, before any GPU is asked for: `kubetune validate-data` for every data path (it also
checks the model folder), and `kubetune validate-weights` for customWeightsPath."""

from kubetune.api.locations import parse_custom_weights
from kubetune.api.spec import FineTuneRunSpec
from kubetune.operator import names
from kubetune.operator.builders import common
from kubetune.operator.builders.common import Manifest, RunRef
from kubetune.operator.builders.trainer_config import resolve_custom_weights
from kubetune.operator.config import OperatorConfig


def validation_pool_name(config: OperatorConfig) -> str:
    return config.defaults.validation_pool or config.defaults.pool


def validate_command(path: str, spec: FineTuneRunSpec) -> list[str]:
    return ["kubetune", "validate-data", path, "--task-type", str(spec.task_type), "--model", spec.model]


def validate_weights_command(spec: FineTuneRunSpec, config: OperatorConfig) -> list[str]:
    """The trainer's own resolution of customWeightsPath (a run's name as the operator rewrote it)."""
    value = resolve_custom_weights(spec.custom_weights_path, config.checkpoints.mount_path)
    return ["kubetune", "validate-weights", value, "--checkpoint-root", config.checkpoints.mount_path]


def _reads_checkpoint_volume(spec: FineTuneRunSpec) -> bool:
    """customWeightsPath names an earlier run or a path: both live on the checkpoint volume in a pod."""
    return bool(spec.custom_weights_path) and parse_custom_weights(spec.custom_weights_path).kind in ("run_name", "local")


def build_validation_job(run: RunRef, spec: FineTuneRunSpec, config: OperatorConfig) -> Manifest:
    """One container per input path, running side by side; the pod succeeds when every path is valid."""
    pool = config.pools[validation_pool_name(config)]
    data_volumes, data_mounts = common.input_volumes(spec)
    resources = {"requests": {k: v for k, v in (("cpu", pool.cpu), ("memory", pool.memory)) if v}}
    inputs = [("validate-train", spec.train_data_path)]
    if spec.eval_data_path:
        inputs.append(("validate-eval", spec.eval_data_path))
    commands = [(container_name, validate_command(path, spec)) for container_name, path in inputs]
    if spec.custom_weights_path:
        commands.append(("validate-weights", validate_weights_command(spec, config)))
    if _reads_checkpoint_volume(spec):
        claim = {"claimName": config.checkpoints.claim_name, "readOnly": True}
        data_volumes.append({"name": "checkpoints", "persistentVolumeClaim": claim})
        data_mounts.append({"name": "checkpoints", "mountPath": config.checkpoints.mount_path, "readOnly": True})
    containers = [
        {
            "name": container_name,
            "image": config.images.trainer,
            "imagePullPolicy": config.images.pull_policy,
            "command": command,
            "env": common.scratch_env(),
            "envFrom": common.secret_env_from(config),
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
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": common.metadata(run, names.validation_job(run.name), names.VALIDATOR),
        "spec": {
            "backoffLimit": 0,
            "template": {"metadata": {"labels": names.labels(run.name, names.VALIDATOR)}, "spec": pod_spec},
        },
    }

