"""What every child shares: metadata with the run as owner, restricted security, the trainer's volumes."""

from dataclasses import dataclass
from typing import Any

from kubetune.api import API_VERSION, KIND
from kubetune.api.locations import PVC_MOUNT_ROOT, claims
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


def scratch_env() -> list[Manifest]:
    """The root filesystem is read-only: caches and home live in the /tmp emptyDir."""
    return [
        {"name": "HOME", "value": "/tmp"},
        {"name": "HF_HOME", "value": "/tmp/hf"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]


def secret_env_from(config: OperatorConfig) -> list[Manifest]:
    """Credentials by reference only: the operator never reads the Secret."""
    secret = config.mlflow.credentials_secret
    return [{"secretRef": {"name": secret}}] if secret else []


def input_volumes(spec: FineTuneRunSpec) -> tuple[list[Manifest], list[Manifest]]:
    """Read-only volumes for every claim the run reads (data, model folder, custom weights), each mounted
    at /mnt/data/<claim>, where every side reads pvc://CLAIM/path."""
    names = claims(*spec.input_locations().values())
    volumes = [
        {"name": f"data-{i}", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        for i, claim in enumerate(names)
    ]
    mounts = [
        {"name": f"data-{i}", "mountPath": f"{PVC_MOUNT_ROOT}/{claim}", "readOnly": True}
        for i, claim in enumerate(names)
    ]
    return volumes, mounts


def image_pull_secrets(config: OperatorConfig) -> list[Manifest]:
    return [{"name": s} for s in config.images.pull_secrets]


def placement_fields(node_selector: dict[str, str], tolerations: list[Any]) -> Manifest:
    fields: Manifest = {}
    if node_selector:
        fields["nodeSelector"] = dict(node_selector)
    if tolerations:
        fields["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in tolerations]
    return fields
