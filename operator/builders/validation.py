"""The validation step: `kubetune validate-data` for every input path, before any GPU is asked for."""

from kubetune.api.spec import FineTuneRunSpec
from kubetune.operator import names
from kubetune.operator.builders import common
from kubetune.operator.builders.common import Manifest, RunRef
from kubetune.operator.config import OperatorConfig


def validation_pool_name(config: OperatorConfig) -> str:
    return config.defaults.validation_pool or config.defaults.pool


def validate_command(path: str, spec: FineTuneRunSpec) -> list[str]:
    return ["kubetune", "validate-data", path, "--task-type", str(spec.task_type), "--model", spec.model]


def build_validation_job(run: RunRef, spec: FineTuneRunSpec, config: OperatorConfig) -> Manifest:
    """One container per input path, running side by side; the pod succeeds when every path is valid."""
    pool = config.pools[validation_pool_name(config)]
    data_volumes, data_mounts = common.input_volumes(spec)
    resources = {"requests": {k: v for k, v in (("cpu", pool.cpu), ("memory", pool.memory)) if v}}
    inputs = [("validate-train", spec.train_data_path)]
    if spec.eval_data_path:
        inputs.append(("validate-eval", spec.eval_data_path))
    containers = [
        {
            "name": container_name,
            "image": config.images.trainer,
            "imagePullPolicy": config.images.pull_policy,
            "command": validate_command(path, spec),
            "env": common.scratch_env(),
            "envFrom": common.secret_env_from(config),
            "resources": resources if resources["requests"] else {},
            "securityContext": common.container_security_context(),
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *data_mounts],
        }
        for container_name, path in inputs
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

