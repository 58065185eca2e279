"""How every part of Kubetune finds its Kubernetes API server, in one precedence order:

1. an explicit kubeconfig file and/or context (the SDK's configure(), the CLI's --kubeconfig/--context);
2. $KUBECONFIG, else ~/.kube/config, when such a file exists (as kubectl does);
3. the pod's ServiceAccount (in a cluster: the operator, the trainer, a notebook pod).

The operator, the trainer's progress reporter and the SDK all connect through `connect`. In a pod this
means a kubeconfig file baked into an image would win over the pod's ServiceAccount, as it would for
kubectl; Kubetune's images carry none.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class KubeconfigError(ValueError):
    """No usable kubeconfig, context or in-cluster ServiceAccount: a set-up problem, not a transient fault."""


@dataclass(frozen=True)
class Connection:
    api_client: Any  # kubernetes.client.ApiClient
    namespace: str  # the context's namespace, or the pod's, else "default"
    source: str  # the kubeconfig file used, or "in-cluster"


def connect(kubeconfig: str | os.PathLike | None = None, context: str | None = None) -> Connection:
    from kubernetes import client as k8s
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    path = os.fspath(kubeconfig) if kubeconfig else os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    if kubeconfig or context or _any_file_exists(path):
        if not _any_file_exists(path):
            raise KubeconfigError(f"kubeconfig {path} does not exist")
        try:
            api_client = config.new_client_from_config(config_file=path, context=context, persist_config=False)
        except ConfigException as error:
            raise KubeconfigError(f"cannot use kubeconfig {path}: {error}") from None
        return Connection(api_client, _context_namespace(path, context), path)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = k8s.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException as error:
            raise KubeconfigError(f"cannot use the pod's ServiceAccount: {error}") from None
        namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() if SERVICE_ACCOUNT_NAMESPACE.is_file() else "default"
        return Connection(k8s.ApiClient(configuration), namespace, "in-cluster")
    raise KubeconfigError(f"no kubeconfig at {path} and not running inside a cluster")


def _any_file_exists(kubeconfig: str) -> bool:
    return any(Path(p).expanduser().is_file() for p in kubeconfig.split(os.pathsep) if p)


def _context_namespace(kubeconfig: str, context: str | None) -> str:
    from kubernetes import config

    contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
    chosen = next((c for c in contexts if c["name"] == context), None) if context else active
    return ((chosen or {}).get("context") or {}).get("namespace") or "default"
