"""The checkpoint volume's claim."""

from kubetune.operator import names
from kubetune.operator.builders.common import Manifest
from kubetune.operator.config import OperatorConfig


def build_checkpoint_claim(namespace: str, config: OperatorConfig) -> Manifest:
    """The shared checkpoint claim, created when missing if configured; never owned by a run, never deleted."""
    storage = config.checkpoints
    spec: Manifest = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": storage.size}}}
    if storage.storage_class_name is not None:
        spec["storageClassName"] = storage.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": storage.claim_name,
            "namespace": namespace,
            "labels": {names.MANAGED_BY_LABEL: names.MANAGED_BY},
        },
        "spec": spec,
    }
