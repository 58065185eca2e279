"""What every child shares: metadata with the run as owner, restricted security, the trainer's volumes."""

from dataclasses import dataclass
from typing import Any

from kubetune.api import API_VERSION, KIND
from kubetune.api.locations import PVC_MOUNT_ROOT, Location, claims
from kubetune.api.errors import SpecProblem
from kubetune.api.spec import FineTuneRunSpec
from kubetune.operator import names
from kubetune.operator.config import OperatorConfig

Manifest = dict[str, Any]
USER_ID = 1000


@dataclass(frozen=True)
class RunRef:
    """The identity of the FineTuneRun that owns the children."""

    name: str
    namespace: str
    uid: str


def owner_reference(run: RunRef) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": run.name,
        "uid": run.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(run: RunRef, name: str, component: str, attempt: int | None = None, **extra_labels: str) -> Manifest:
    return {
        "name": name,
        "namespace": run.namespace,
        "labels": {**names.labels(run.name, component, attempt), **extra_labels},
        "ownerReferences": [owner_reference(run)],
    }


def pod_security_context() -> Manifest:
    """Pod Security Standards 'restricted'."""
    return {
        "runAsNonRoot": True,
        "runAsUser": USER_ID,
        "runAsGroup": USER_ID,
        "fsGroup": USER_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def scratch_env(config: OperatorConfig) -> list[Manifest]:
    """The root filesystem is read-only: caches and home live in the /tmp emptyDir. Offline, nothing asks the hub."""
    return [
        {"name": "HOME", "value": "/tmp"},
        {"name": "HF_HOME", "value": "/tmp/hf"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        *config.huggingface_datasets.env(),
    ]


def secret_env_from(config: OperatorConfig) -> list[Manifest]:
    """Credentials by reference only: the operator never reads the Secret."""
    secret = config.mlflow.credentials_secret
    return [{"secretRef": {"name": secret}}] if secret else []


def storage_env_from(spec: FineTuneRunSpec, pool_name: str, config: OperatorConfig) -> list[Manifest]:
    """Object-store credentials by reference: the pool's storage Secret, then the run's (later envFrom wins).
    Kubetune's MLflow Secret (secret_env_from) comes after both."""
    pool_secret = config.pools[pool_name].storage_credentials_secret
    run_secret = spec.storage_credentials.secret_name if spec.storage_credentials else None
    return [{"secretRef": {"name": name}} for name in (pool_secret, run_secret) if name]


def input_volumes(spec: FineTuneRunSpec, config: OperatorConfig) -> tuple[list[Manifest], list[Manifest]]:
    """Read-only volumes for every claim the run reads (data, model folder, custom weights, the Hugging Face
    dataset mirror when it reads a hub dataset), each mounted at /mnt/data/<claim>, where every side reads
    pvc://CLAIM/path."""
    names = claims(*spec.input_locations().values(), dataset_mirror(spec, config))
    volumes = [
        {"name": f"data-{i}", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        for i, claim in enumerate(names)
    ]
    mounts = [
        {"name": f"data-{i}", "mountPath": f"{PVC_MOUNT_ROOT}/{claim}", "readOnly": True}
        for i, claim in enumerate(names)
    ]
    return volumes, mounts


def dataset_mirror(spec: FineTuneRunSpec, config: OperatorConfig) -> Location | None:
    """The configured Hugging Face dataset mirror, when the run reads a hub dataset (org/name/split)."""
    reads_hub_datasets = any(loc.kind == "huggingface" for loc in spec.input_locations().values())
    return config.huggingface_datasets.mirror_location() if reads_hub_datasets else None


def image_pull_secrets(config: OperatorConfig) -> list[Manifest]:
    return [{"name": s} for s in config.images.pull_secrets]


def placement_fields(node_selector: dict[str, str], tolerations: list[Any]) -> Manifest:
    fields: Manifest = {}
    if node_selector:
        fields["nodeSelector"] = dict(node_selector)
    if tolerations:
        fields["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in tolerations]
    return fields


def allow_list_problems(field: str, wanted: str | None, allowed: list[str], what: str, setting: str) -> list[SpecProblem]:
    """`wanted` (None: not asked for) must be one of `allowed`, the operator configuration's `setting`; an
    empty list allows none."""
    if wanted is None or wanted in allowed:
        return []
    choice = f"one of {sorted(allowed)}" if allowed else f"unset: this operator allows no {what}"
    return [SpecProblem(field, f"must be {choice} (the operator configuration's {setting})", wanted)]
