"""The trainer's configuration file (kubetune.api.trainer_config.TrainerConfig), carried by its pod template
(builders.training)."""

from pathlib import Path

from kubetune.api.checkpoints import custom_weights_path
from kubetune.api.locations import PVC_MOUNT_ROOT, parse_custom_weights
from kubetune.api.spec import FineTuneRunSpec
from kubetune.api.trainer_config import ProgressTarget, RunIdentity, TrainerConfig, TrainerPaths, TrainingOptions
from kubetune.operator import names
from kubetune.operator.builders.common import RunRef
from kubetune.operator.config import OperatorConfig


def resolve_custom_weights(path: str | None, mount_path: str) -> str | None:
    """A run name becomes that run's `latest` on the checkpoint volume, so the trainer's config shows what it reads."""
    if path and parse_custom_weights(path).kind == "run_name":
        return str(custom_weights_path(path, mount_path))
    return path


def experiment_path(spec: FineTuneRunSpec, run: RunRef, config: OperatorConfig) -> str:
    return spec.resolved_experiment_path(run.namespace, run.name, config.defaults.experiment_root)


def build_trainer_config(run: RunRef, spec: FineTuneRunSpec, config: OperatorConfig, attempt: int) -> TrainerConfig:
    mount = config.checkpoints.mount_path
    resolved = spec.model_copy(
        update={
            "custom_weights_path": resolve_custom_weights(spec.custom_weights_path, mount),
            "experiment_path": experiment_path(spec, run, config),
        }
    )
    return TrainerConfig(
        run=RunIdentity(namespace=run.namespace, name=run.name, uid=run.uid),
        spec=resolved,
        paths=TrainerPaths(
            checkpoint_root=Path(mount),
            output_root=Path(mount),
            checkpoint_location=f"pvc://{config.checkpoints.claim_name}",
            dataset_root=config.huggingface_datasets.dataset_root(),
            pvc_mount_root=Path(PVC_MOUNT_ROOT),
        ),
        mlflow_tracking_uri=config.mlflow.tracking_uri,
        progress=ProgressTarget(kind="kubernetes", config_map=names.report_config_map(run.name)),
        training=TrainingOptions(collective_timeout_seconds=config.defaults.collective_timeout_seconds),
        attempt=attempt,
    )
