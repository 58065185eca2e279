"""Drive FineTuneRuns on the test cluster the way users, kwok pods and the trainer do."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

from helpers import cluster
from helpers.operator_factories import trainer_config_of
from kubetune.api import GROUP, PLURAL, VERSION
from kubetune.api.progress import REPORT_KEY, TrainerReport
from kubetune.api.trainer_config import TrainerConfig
from kubetune.operator import names
from kubetune.trainer.progress import KubernetesReporter

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "multinode.yaml"
EXIT_CODE = cluster.POD_EXIT_CODE_ANNOTATION


def example_run(name: str, **spec: object) -> dict:
    """examples/multinode.yaml under another name, with spec fields replaced."""
    manifest = yaml.safe_load(EXAMPLE.read_text())
    manifest["metadata"]["name"] = name
    manifest["spec"].update(spec)
    return manifest


class RunDriver:
    def __init__(self, api, kubeconfig: str, namespace: str):
        self.api, self.kubeconfig, self.namespace = api, kubeconfig, namespace
        self.custom = k8s.CustomObjectsApi(api)
        self.core = k8s.CoreV1Api(api)
        self.batch = k8s.BatchV1Api(api)

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return cluster.kubectl(self.kubeconfig, "-n", self.namespace, *args, input=input)

    def apply(self, manifest: dict[str, Any]) -> str:
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))  # JSON: no YAML 1.1/1.2 number surprises
        return manifest["metadata"]["name"]

    def get(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def tags(self, name: str) -> dict[str, str]:
        """The MLflow tags the trainer puts on its run for this FineTuneRun (what registration checks)."""
        from kubetune.api.mlflow_tags import run_tags

        return run_tags(self.namespace, name, self.get(name)["metadata"]["uid"])

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.5)

    def wait_phase(self, name: str, phase: str, timeout: float = 60) -> dict[str, Any]:
        def reached():
            status = self.status(name)
            return status if status.get("phase") == phase else None

        try:
            return self.wait_for(f"{name} phase {phase}", reached, timeout)
        except AssertionError as error:
            raise AssertionError(f"{error}; status: {yaml.safe_dump(self.status(name))}") from None

    def jobs(self, name: str) -> list[Any]:
        return self.batch.list_namespaced_job(self.namespace, label_selector=f"kubetune.io/run={name}").items

    def trainer_config(self, job: str) -> TrainerConfig:
        """The trainer configuration a training Job gives its pods (its template's annotation)."""
        manifest = self.api.sanitize_for_serialization(self.batch.read_namespaced_job(job, self.namespace))
        return trainer_config_of(manifest)

    def pods(self, job: str) -> list[Any]:
        return self.core.list_namespaced_pod(self.namespace, label_selector=f"batch.kubernetes.io/job-name={job}").items

    def wait_pods_running(self, job: str, count: int, timeout: float = 60) -> list[Any]:
        def running():
            pods = [p for p in self.pods(job) if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
            return pods if len(pods) == count else None

        return self.wait_for(f"{count} running pods of {job}", running, timeout)

    def finish_pods(self, job: str, exit_code: int, only: int | None = None, message: str | None = None) -> None:
        """kwok ends an annotated pod with that exit code and termination message (hack/kwok/stages.yaml)."""
        pods = sorted(self.pods(job), key=lambda p: p.metadata.name)
        annotations = {EXIT_CODE: str(exit_code)}
        if message is not None:
            annotations[cluster.POD_TERMINATION_MESSAGE_ANNOTATION] = message
        for pod in pods if only is None else pods[only : only + 1]:
            self.core.patch_namespaced_pod(pod.metadata.name, self.namespace, {"metadata": {"annotations": annotations}})

    def report(self, name: str, report: TrainerReport) -> None:
        """Send the report exactly as the trainer's rank 0 does (KubernetesReporter into the run's report
        ConfigMap), with the admin's client instead of the pod's token."""
        KubernetesReporter(self.namespace, names.report_config_map(name), core=self.core).report(report)

    def write_raw_report(self, name: str, raw: Any) -> None:
        """Write the report ConfigMap around the trainer's code (a forged or broken trainer): any JSON value."""
        data = {REPORT_KEY: json.dumps(raw)}
        self.core.patch_namespaced_config_map(names.report_config_map(name), self.namespace, {"data": data})

    def events(self, name: str) -> list[Any]:
        items = self.core.list_namespaced_event(self.namespace, field_selector=f"involvedObject.name={name}").items
        return sorted(items, key=lambda e: e.metadata.creation_timestamp)


def delete_runs_and_wait(api, namespace: str, timeout: float = 30) -> None:
    custom = k8s.CustomObjectsApi(api)
    runs = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    for run in runs:
        try:
            custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, run["metadata"]["name"])
        except k8s.ApiException as error:
            if error.status != 404:
                raise
    deadline = time.monotonic() + timeout
    while custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]:
        if time.monotonic() > deadline:
            return
        time.sleep(0.5)
