"""What can go wrong talking to the cluster, as exceptions a user can act on.

User errors (a missing run, a rejected spec) and transient faults (the API server
is unreachable or overloaded) are different types, so callers can retry only
what is worth retrying.
"""

import json


class KubetuneError(Exception):
    """Base class of the SDK's errors."""


class RunNotFoundError(KubetuneError, LookupError):
    def __init__(self, name: str, namespace: str):
        self.name, self.namespace = name, namespace
        super().__init__(f"FineTuneRun {name!r} not found in namespace {namespace!r}")


class RunAlreadyExistsError(KubetuneError, ValueError):
    def __init__(self, name: str, namespace: str):
        self.name, self.namespace = name, namespace
        super().__init__(f"FineTuneRun {name!r} already exists in namespace {namespace!r}; choose another name")


class RunRejectedError(KubetuneError, ValueError):
    """The API server refused the object (422 Invalid: schema or CEL rules, 400 Bad Request)."""

    def __init__(self, name: str, namespace: str, message: str, causes: list[str]):
        self.name, self.namespace, self.causes = name, namespace, causes
        detail = "".join(f"\n  - {c}" for c in causes)
        super().__init__(f"FineTuneRun {name!r} in namespace {namespace!r} was rejected: {message}{detail}")


class AccessDeniedError(KubetuneError, PermissionError):
    def __init__(self, verb: str, namespace: str, message: str):
        self.namespace = namespace
        super().__init__(f"not allowed to {verb} FineTuneRuns in namespace {namespace!r}: {message}")


class KubeconfigError(KubetuneError, ValueError):
    """No usable kubeconfig or context: a set-up problem, not a transient fault."""


class ClusterUnavailableError(KubetuneError, ConnectionError):
    """A transient fault: the API server could not be reached or answered 5xx/429. Retrying may help."""


class CrdNotInstalledError(KubetuneError, LookupError):
    def __init__(self, namespace: str):
        super().__init__(
            f"the FineTuneRun API (kubetune.io/v1alpha1) is not served by this cluster (namespace {namespace!r}): "
            "install the CRD with `kubectl apply -f crds/` or the Helm chart"
        )


def server_message(body: str | bytes | None) -> tuple[str, list[str]]:
    """The Status object's message and its causes ("field: message") from an API error body."""
    try:
        status = json.loads(body or "")
    except (TypeError, ValueError):
        return (body.decode() if isinstance(body, bytes) else (body or "")).strip(), []
    if not isinstance(status, dict):
        return str(status), []
    causes = [
        f"{c['field']}: {c.get('message', '')}" if c.get("field") else c.get("message", "")
        for c in (status.get("details") or {}).get("causes") or []
    ]
    return status.get("message", ""), causes
