"""The trainer's identity: a ServiceAccount that may only read and patch its own run's status."""

from kubetune.api import GROUP, PLURAL
from kubetune.operator import names
from kubetune.operator.builders.common import Manifest, RunRef, metadata


def build_service_account(run: RunRef) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(run, names.trainer_service_account(run.name), names.TRAINER),
        # Only the training pods mount the token (they opt in); nothing else gets it by accident.
        "automountServiceAccountToken": False,
    }


def build_role(run: RunRef) -> Manifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": metadata(run, names.trainer_role(run.name), names.TRAINER),
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": [f"{PLURAL}/status"],
                "resourceNames": [run.name],
                "verbs": ["get", "patch"],
            }
        ],
    }


def build_role_binding(run: RunRef) -> Manifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(run, names.trainer_role(run.name), names.TRAINER),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": names.trainer_role(run.name)},
        "subjects": [
            {"kind": "ServiceAccount", "name": names.trainer_service_account(run.name), "namespace": run.namespace}
        ],
    }
