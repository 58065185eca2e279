"""The operator's only door to the API server: read the run and its children, ensure children, write status.

The run's Jobs, pods and report come from kopf indexes (handlers.py); the list calls here are the fallback
for a Job this operator just created that its index has not seen yet.

Every API fault is sorted here: conflicts, throttling and server errors become
kopf.TemporaryError (retry); a child the API server rejects (a bad pod template
override) becomes ChildRejected, which fails the run.
"""

import json
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import kopf
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from kubetune.api import GROUP, PLURAL, VERSION
from kubetune.api.redaction import redact
from kubetune.operator import names
from kubetune.operator.conditions import Transition
from kubetune.operator.logs import about_run

COMPONENT = "kubetune-operator"
# A run's objects that do not depend on each other are created at once: its training children were four
# round trips before the Job. Bounded across all runs, beside the reconcile threads' own connections.
CHILD_CREATORS = 8
_creators = ThreadPoolExecutor(CHILD_CREATORS, thread_name_prefix="create")
log = logging.getLogger(__name__)


class ChildRejected(Exception):
    """The API server refused a child object (400/422): the run's spec cannot produce a valid object."""


def _temporary(error: ApiException, doing: str) -> kopf.TemporaryError:
    return kopf.TemporaryError(f"{doing}: HTTP {error.status} {error.reason}", delay=2)


def read_run(api: ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as error:
        if error.status == 404:
            return None
        raise _temporary(error, f"reading FineTuneRun {namespace}/{name}") from error


def read_config_map(api: ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return api.sanitize_for_serialization(client.CoreV1Api(api).read_namespaced_config_map(name, namespace))
    except ApiException as error:
        if error.status == 404:
            return None
        raise _temporary(error, f"reading ConfigMap {namespace}/{name}") from error


def _plain(api: ApiClient, items: list[Any]) -> list[dict[str, Any]]:
    return [api.sanitize_for_serialization(item) for item in items]


def list_jobs(api: ApiClient, namespace: str, run: str) -> list[dict[str, Any]]:
    return _list_of_run(client.BatchV1Api(api).list_namespaced_job, api, namespace, run, "Jobs")


def list_pods(api: ApiClient, namespace: str, run: str) -> list[dict[str, Any]]:
    return _list_of_run(client.CoreV1Api(api).list_namespaced_pod, api, namespace, run, "pods")


def list_job_events(api: ApiClient, namespace: str, job: dict[str, Any]) -> list[dict[str, Any]]:
    """The Events about one Job (by its uid: a Job of the same name from before is not this one)."""
    selector = f"involvedObject.kind=Job,involvedObject.uid={job['metadata']['uid']}"
    try:
        items = client.CoreV1Api(api).list_namespaced_event(namespace, field_selector=selector).items
    except ApiException as error:
        raise _temporary(error, f"listing the Events of Job {job['metadata']['name']}") from error
    return _plain(api, items)


def list_workloads(api: ApiClient, namespace: str, job_uid: str) -> list[dict[str, Any]]:
    """Kueue's Workloads of one Job (Kueue labels them with the Job's uid); none where Kueue's API is not
    served or the operator may not read it (a chart from before this permission)."""
    try:
        found = client.CustomObjectsApi(api).list_namespaced_custom_object(
            "kueue.x-k8s.io", "v1beta2", namespace, "workloads", label_selector=f"kueue.x-k8s.io/job-uid={job_uid}"
        )
    except ApiException as error:
        if error.status in (403, 404):
            return []
        raise _temporary(error, f"listing the Kueue Workloads of a Job in {namespace}") from error
    return found.get("items") or []


def _list_of_run(list_namespaced, api: ApiClient, namespace: str, run: str, what: str) -> list[dict[str, Any]]:
    """The run's children of one kind (by the run label), as plain dicts."""
    try:
        items = list_namespaced(namespace, label_selector=names.run_selector(run)).items
    except ApiException as error:
        raise _temporary(error, f"listing {what} of {run}") from error
    return _plain(api, items)


def _create_function(api: ApiClient, kind: str):
    core, batch, rbac = client.CoreV1Api(api), client.BatchV1Api(api), client.RbacAuthorizationV1Api(api)
    return {
        "ServiceAccount": core.create_namespaced_service_account,
        "ConfigMap": core.create_namespaced_config_map,
        "Service": core.create_namespaced_service,
        "PersistentVolumeClaim": core.create_namespaced_persistent_volume_claim,
        "Job": batch.create_namespaced_job,
        "Role": rbac.create_namespaced_role,
        "RoleBinding": rbac.create_namespaced_role_binding,
    }[kind]


def ensure_all(api: ApiClient, manifests: list[dict[str, Any]]) -> list[bool]:
    """ensure() each manifest: every one but the Jobs at once, then the Jobs in order (a Job's pods need the
    others: its ServiceAccount, the Role the trainer uses). The first error is raised once all have finished."""
    others = [m for m in manifests if m["kind"] != "Job"]
    outcomes = list(_creators.map(lambda m: _attempt(ensure, api, m), others)) if len(others) > 1 else [
        _attempt(ensure, api, m) for m in others
    ]
    error = next((o for o in outcomes if isinstance(o, BaseException)), None)
    if error is not None:
        raise error
    created = iter(outcomes)
    return [ensure(api, m) if m["kind"] == "Job" else next(created) for m in manifests]


def _attempt(call, *args):
    """call(*args), or the exception it raised (so that every creation finishes before any error is raised)."""
    try:
        return call(*args)
    except Exception as error:  # noqa: BLE001 (re-raised by the caller)
        return error


def ensure(api: ApiClient, manifest: dict[str, Any]) -> bool:
    """Create the object unless it exists (one that exists is left as it is: the report ConfigMap is the trainer's
    to write, and nothing else a run has changes after creation). True when this call created it."""
    kind, namespace, name = manifest["kind"], manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    try:
        _create_function(api, kind)(namespace, manifest)
        return True
    except ApiException as error:
        if error.status == 409:
            return False
        if error.status in (400, 422):
            raise ChildRejected(f"the API server rejected {kind} {name}: {_api_message(error)}") from error
        raise _temporary(error, f"creating {kind} {namespace}/{name}") from error


def delete_job(api: ApiClient, namespace: str, name: str) -> None:
    """Deleting the Job stops its pods; the garbage collector removes them in the background."""
    try:
        client.BatchV1Api(api).delete_namespaced_job(name, namespace, propagation_policy="Background")
    except ApiException as error:
        if error.status != 404:
            raise _temporary(error, f"deleting Job {namespace}/{name}") from error


def write_status(api: ApiClient, run: dict[str, Any], status: dict[str, Any]) -> str:
    """A merge patch of status, guarded by the resourceVersion we decided on: a stale decision is a conflict.
    Returns the run's resourceVersion after the write."""
    meta = run["metadata"]
    body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status}
    try:
        written = client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
            GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], body
        )
        return written["metadata"]["resourceVersion"]
    except ApiException as error:
        raise _temporary(error, f"writing the status of {meta['namespace']}/{meta['name']}") from error


def emit_event(api: ApiClient, run: dict[str, Any], transition: Transition, now: datetime) -> None:
    """A core/v1 Event on the run, its message redacted; best effort, like every controller's event recorder."""
    meta = run["metadata"]
    stamp = now.isoformat().replace("+00:00", "Z")
    event = {
        "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": run["apiVersion"],
            "kind": run["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "type": transition.type,
        "reason": transition.reason,
        "message": redact(transition.message)[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    try:
        client.CoreV1Api(api).create_namespaced_event(meta["namespace"], event)
    except ApiException as error:  # the status already holds the transition; an Event lost is a log line lost
        log.warning(
            "could not post Event %s on %s/%s: HTTP %s", transition.reason, meta["namespace"], meta["name"], error.status,
            extra=about_run(meta["namespace"], meta["name"]),
        )


def _api_message(error: ApiException) -> str:
    try:
        return json.loads(error.body).get("message", error.reason)
    except (TypeError, ValueError):
        return str(error.reason)
