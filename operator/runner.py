"""Start the operator: kopf settings, the API client, the handler registry, then kopf's event loop."""

import asyncio
import logging
import os
from dataclasses import dataclass

import kopf

from kubetune.operator.config import OperatorConfig
from kubetune.operator.handlers import build_registry

FINALIZER = "kubetune.io/operator"


@dataclass(frozen=True)
class RunOptions:
    namespaces: list[str]  # empty: cluster-wide
    standalone: bool = False
    peering_name: str | None = None
    liveness_endpoint: str | None = None
    verbose: bool = False


def configure_settings(settings: kopf.OperatorSettings) -> None:
    # Kubetune posts its own Events (one per status transition); kopf's log-to-Event copies would be noise.
    settings.posting.enabled = False
    settings.persistence.finalizer = FINALIZER
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.execution.max_workers = 8


def run(config: OperatorConfig, options: RunOptions) -> None:
    from kubernetes import config as kube_config

    logging.basicConfig(level=logging.DEBUG if options.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The registration step must fail fast while MLflow is down; the operator retries with its own backoff.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    api = kube_config.new_client_from_config() if os.environ.get("KUBECONFIG") else _in_cluster_client()
    registry = build_registry(config, api)

    # A registry of our own has none of kopf's default handlers: log in as the kubernetes client does
    # (KUBECONFIG, or the pod's ServiceAccount in a cluster).
    @kopf.on.login(registry=registry)
    def login(**kwargs):
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_):
        configure_settings(settings)

    asyncio.run(
        kopf.operator(
            registry=registry,
            standalone=options.standalone,
            peering_name=options.peering_name,
            liveness_endpoint=options.liveness_endpoint,
            clusterwide=not options.namespaces,
            namespaces=options.namespaces,
        )
    )


def _in_cluster_client():
    from kubernetes import client
    from kubernetes import config as kube_config

    try:
        kube_config.load_incluster_config()
    except kube_config.ConfigException:
        kube_config.load_kube_config()
    return client.ApiClient()
