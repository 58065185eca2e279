"""The trainer's identity: a ServiceAccount that may only patch its own run's report ConfigMap.

Every container of a training pod holds its token, so it gets nothing the operator owns: no FineTuneRun, no
status. The operator reads the report as untrusted input (kubetune.operator.status_io.parse_report).
"""

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
                # What KubernetesReporter calls (kubetune.trainer.progress), on that one object.
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": [names.report_config_map(run.name)],
                "verbs": ["patch"],
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


def build_report_config_map(run: RunRef) -> Manifest:
    """Created without data: the trainer fills it, and ensuring it again (a new attempt) leaves the report alone."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(run, names.report_config_map(run.name), names.REPORT),
    }
