"""The connection to the cluster: which kubeconfig, context and namespace the SDK talks to.

The default is the current kubeconfig context and its namespace (like kubectl),
or the pod's service account and namespace when running inside a cluster
(kubetune.kube_client's precedence, shared with the operator and the trainer).
`configure(...)` overrides any of them for the rest of the process.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kubetune.api import GROUP, PLURAL, VERSION
from kubetune.sdk import errors

REQUEST_TIMEOUT_SECONDS = 30
FIELD_MANAGER = "kubetune-sdk"


@dataclass(frozen=True)
class Target:
    """Where runs live: unset fields come from the kubeconfig (or the in-cluster service account)."""

    namespace: str | None = None
    kubeconfig: str | None = None
    context: str | None = None


_target = Target()
_client: "RunsClient | None" = None


def configure(namespace: str | None = None, kubeconfig: str | os.PathLike | None = None, context: str | None = None) -> None:
    """Point the SDK at a namespace, kubeconfig file and/or context (None keeps the kubeconfig's default)."""
    global _target, _client
    _target = Target(namespace, os.fspath(kubeconfig) if kubeconfig else None, context)
    _client = None


def get_client() -> "RunsClient":
    """The client for the configured target, connected on first use."""
    global _client
    if _client is None:
        _client = connect(_target)
    return _client


def connect(target: Target) -> "RunsClient":
    """Connect as every part of Kubetune does (kubetune.kube_client); the target's namespace wins over the context's."""
    from kubernetes import client as k8s

    from kubetune import kube_client

    try:
        connection = kube_client.connect(target.kubeconfig, target.context)
    except kube_client.KubeconfigError as error:
        raise errors.KubeconfigError(
            f"{error}: pass kubeconfig= to kubetune.foundation_model.configure(), set KUBECONFIG, or use --kubeconfig"
        ) from None
    return RunsClient(k8s.CustomObjectsApi(connection.api_client), target.namespace or connection.namespace)


class RunsClient:
    """FineTuneRun objects in one namespace; Kubernetes API errors become kubetune.sdk.errors."""

    def __init__(self, custom_objects: Any, namespace: str):
        self.api = custom_objects
        self.namespace = namespace
        self._username: str | None = None

    def username(self) -> str | None:
        """Who the API server says we are (SelfSubjectReview), or None where the cluster does not say."""
        if self._username is None:
            from kubernetes import client as k8s
            from kubernetes.client.exceptions import ApiException

            with translate_errors("review", "", self.namespace):
                try:
                    review = k8s.AuthenticationV1Api(self.api.api_client).create_self_subject_review(
                        k8s.V1SelfSubjectReview(), _request_timeout=REQUEST_TIMEOUT_SECONDS
                    )
                except ApiException:  # an older or locked-down API server: runs are created without it
                    review = None
            user = review.status.user_info if review and review.status else None
            self._username = (user.username if user else "") or ""
        return self._username or None

    def in_namespace(self, namespace: str | None) -> "RunsClient":
        """The same connection, for another namespace (None or the same namespace: this client)."""
        if not namespace or namespace == self.namespace:
            return self
        other = RunsClient(self.api, namespace)
        other._username = self._username
        return other

    def _path(self) -> dict[str, str]:
        return {"group": GROUP, "version": VERSION, "namespace": self.namespace, "plural": PLURAL}

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"].get("name", "")
        with translate_errors("create", name, self.namespace):
            return self.api.create_namespaced_custom_object(
                **self._path(), body=body, field_manager=FIELD_MANAGER, field_validation="Strict",
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )

    def get(self, name: str) -> dict[str, Any]:
        with translate_errors("get", name, self.namespace):
            return self.api.get_namespaced_custom_object(**self._path(), name=name, _request_timeout=REQUEST_TIMEOUT_SECONDS)

    def list(self) -> list[dict[str, Any]]:
        with translate_errors("list", "", self.namespace):
            return self.api.list_namespaced_custom_object(**self._path(), _request_timeout=REQUEST_TIMEOUT_SECONDS)["items"]

    def patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the run (the client sends application/merge-patch+json)."""
        with translate_errors("update", name, self.namespace):
            return self.api.patch_namespaced_custom_object(
                **self._path(), name=name, body=patch, field_manager=FIELD_MANAGER, field_validation="Strict",
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )

    def delete(self, name: str) -> None:
        with translate_errors("delete", name, self.namespace):
            self.api.delete_namespaced_custom_object(
                **self._path(), name=name, propagation_policy="Background", _request_timeout=REQUEST_TIMEOUT_SECONDS
            )


@contextmanager
def translate_errors(verb: str, name: str, namespace: str) -> Iterator[None]:
    """Turns ApiException and connection failures inside the block into the SDK's errors."""
    try:
        yield
    except Exception as error:
        translated = translate(error, verb, name, namespace)
        if translated is None:
            raise
        raise translated from error


def translate(error: BaseException, verb: str, name: str, namespace: str) -> Exception | None:
    """The SDK error for a Kubernetes client error, or None to let it through unchanged."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(error, HTTPError):
        return errors.ClusterUnavailableError(f"cannot reach the Kubernetes API server: {error}")
    if not isinstance(error, ApiException):
        return None
    message, causes = errors.server_message(error.body)
    status = error.status or 0
    if status == 404:
        details_name = _details_name(error.body)
        return errors.RunNotFoundError(name, namespace) if name and details_name == name else errors.CrdNotInstalledError(namespace)
    if status == 409 and verb == "create":
        return errors.RunAlreadyExistsError(name, namespace)
    if status in (400, 409, 422):
        return errors.RunRejectedError(name, namespace, message or error.reason, causes)
    if status in (401, 403):
        return errors.AccessDeniedError(verb, namespace, message or error.reason)
    if status == 429 or status >= 500 or status == 0:
        return errors.ClusterUnavailableError(f"the Kubernetes API server answered {status}: {message or error.reason}")
    return None


def _details_name(body: str | bytes | None) -> str | None:
    import json

    try:
        return (json.loads(body or "").get("details") or {}).get("name")
    except (TypeError, ValueError, AttributeError):
        return None
