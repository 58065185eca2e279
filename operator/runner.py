"""Start the operator: kopf settings, the API client, the handler registry, then kopf's event loop."""

import asyncio
import os
from dataclasses import dataclass

import kopf
from kubernetes.client import ApiClient

from kubetune import kube_client
from kubetune.operator.config import OperatorConfig
from kubetune.operator.handlers import QUIET_HANDLERS, build_registry
from kubetune.operator.kube import CHILD_CREATORS
from kubetune.operator.logs import configure_logging
from kubetune.operator.metrics import METRICS, serve

FINALIZER = "kubetune.io/operator"
WORKERS = 16  # reconcile threads: they wait on API calls, so enough that 20 new runs a second do not queue


@dataclass(frozen=True)
class RunOptions:
    namespaces: list[str]  # empty: cluster-wide
    standalone: bool = False
    peering_name: str | None = None
    liveness_endpoint: str | None = None
    metrics_endpoint: str | None = None  # http://HOST:PORT/metrics: Prometheus metrics (kubetune.operator.metrics)
    verbose: bool = False
    log_format: str = "text"  # kubetune.operator.logs.LOG_FORMATS


def configure_settings(settings: kopf.OperatorSettings) -> None:
    # Kubetune posts its own Events (one per status transition); kopf's log-to-Event copies would be noise.
    settings.posting.enabled = False
    settings.persistence.finalizer = FINALIZER
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.execution.max_workers = WORKERS


def run(config: OperatorConfig, options: RunOptions) -> None:
    # The resync timer (every run, every tick) and the child handlers (every Job, pod, report event) succeed
    # all the time; their success lines would drown the log. Their failures are still logged.
    configure_logging(options.log_format, options.verbose, quiet_handlers=QUIET_HANDLERS)
    # The registration step must fail fast while MLflow is down; the operator retries with its own backoff.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    configuration = kube_client.connect().api_client.configuration
    # one connection per reconcile thread and per child creator (kube.CHILD_CREATORS), none discarded
    configuration.connection_pool_maxsize = WORKERS + CHILD_CREATORS
    api = ApiClient(configuration)
    registry = build_registry(config, api)
    if options.metrics_endpoint:
        serve(options.metrics_endpoint, METRICS)

    # A registry of our own has none of kopf's default handlers. kopf's watches log in with the
    # credentials of the operator's own client, so both find the API server the same way.
    @kopf.on.login(registry=registry)
    def login(settings: kopf.OperatorSettings, **_):
        return connection_info(api.configuration, settings)

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



def connection_info(configuration, settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    """kopf's credentials from a kubernetes client Configuration (what kopf.login_via_client reads from the
    client's global default, which kubetune.kube_client never sets)."""
    # Client 36.0.1+ keeps the bearer token under BearerToken, older ones under authorization; the
    # getter runs the refresh hook of in-cluster tokens.
    header = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix("authorization")
    scheme, _, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        trust_env=settings.networking.trust_env,
    )
