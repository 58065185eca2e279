"""Start the operator: kopf settings, the API client, the handler registry, then kopf's event loop."""

import asyncio
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

import kopf

from kubetune import kube_client
from kubetune.api.redaction import redact
from kubetune.operator.config import OperatorConfig
from kubetune.operator.handlers import QUIET_HANDLERS, build_registry
from kubetune.operator.metrics import METRICS, serve

FINALIZER = "kubetune.io/operator"
KOPF_OBJECT_LOGGER = "kopf.objects"  # kopf's per-object logger: handler outcomes, "[ns/name] ..." lines
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True)
class RunOptions:
    namespaces: list[str]  # empty: cluster-wide
    standalone: bool = False
    peering_name: str | None = None
    liveness_endpoint: str | None = None
    metrics_endpoint: str | None = None  # http://HOST:PORT/metrics: Prometheus metrics (kubetune.operator.metrics)
    verbose: bool = False


def configure_settings(settings: kopf.OperatorSettings) -> None:
    # Kubetune posts its own Events (one per status transition); kopf's log-to-Event copies would be noise.
    settings.posting.enabled = False
    settings.persistence.finalizer = FINALIZER
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.execution.max_workers = 8


class QuietSuccess(logging.Filter):
    """Drop kopf's INFO line "Timer 'id' succeeded." / "Handler 'id' succeeded." for the given handler ids.

    kopf 1.45 has no setting for it (kopf/_core/actions/execution.py logs every success at INFO).
    Failures, retries, warnings and every other handler's lines pass; so does a handler's
    "is invoked." DEBUG line with --verbose.
    """

    def __init__(self, handler_ids: Iterable[str]):
        super().__init__()
        ids = "|".join(re.escape(i) for i in handler_ids)
        self._success = re.compile(rf"(Timer|Handler) '({ids})' succeeded\.")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.INFO and self._success.fullmatch(record.getMessage()))


class RedactingFormatter(logging.Formatter):
    """Every line with its credentials masked (kubetune.api.redaction), tracebacks included: kopf, the kubernetes
    client and MLflow put URIs and error texts from anywhere into the operator's log."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def redact_logs(fmt: str = LOG_FORMAT) -> None:
    """Give every handler of the root logger (where kopf's and the clients' loggers end up) the redacting formatter."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(RedactingFormatter(fmt))


def quiet_routine_successes(handler_ids: Iterable[str] = QUIET_HANDLERS) -> QuietSuccess:
    """Install QuietSuccess on kopf's per-object logger (once); returns the installed filter."""
    logger = logging.getLogger(KOPF_OBJECT_LOGGER)
    for installed in list(logger.filters):
        if isinstance(installed, QuietSuccess):
            logger.removeFilter(installed)
    quiet = QuietSuccess(handler_ids)
    logger.addFilter(quiet)
    return quiet


def run(config: OperatorConfig, options: RunOptions) -> None:
    logging.basicConfig(level=logging.DEBUG if options.verbose else logging.INFO, format=LOG_FORMAT)
    redact_logs()
    # The resync timer (every run, every tick) and the child handlers (every Job, pod, report event) succeed
    # all the time; their success lines would drown the log. Their failures are still logged.
    quiet_routine_successes()
    # The registration step must fail fast while MLflow is down; the operator retries with its own backoff.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    api = kube_client.connect().api_client
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
