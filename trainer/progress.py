"""Progress reports from the trainer to whoever watches the run (rank 0 only).

`ProgressReporter.report(TrainerReport)` is the whole interface. A JSON file
(local mode, tests) or the run's report ConfigMap (in a cluster; the pod's
ServiceAccount may only patch that one object, never the FineTuneRun: the operator
reads the report, folds it into the run's status and decides the phase itself).
Routine reports are throttled; stage changes and new checkpoints always go out. A
failed report is logged and dropped: progress reporting never stops training.
"""

import json
import logging
import os
import time
from pathlib import Path
from typing import Protocol

from kubetune.api.progress import REPORT_KEY, TrainerReport
from kubetune.api.redaction import redact_strings
from kubetune.api.trainer_config import ProgressTarget, RunIdentity

log = logging.getLogger(__name__)


class ProgressReporter(Protocol):
    def report(self, report: TrainerReport) -> None: ...


class NullReporter:
    def report(self, report: TrainerReport) -> None: ...


def report_json(report: TrainerReport) -> dict:
    """The report as sent, its credentials masked: it lands in a ConfigMap and the run's status, which many can read."""
    return redact_strings(report.model_dump(mode="json", by_alias=True, exclude_none=True))


class FileReporter:
    """Writes the latest report to a JSON file atomically (temp file + os.replace): readers never see half."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def report(self, report: TrainerReport) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(report_json(report), indent=2))
        os.replace(temp, self.path)


class KubernetesReporter:
    """Patches the report, as JSON, into REPORT_KEY of the run's report ConfigMap (ProgressTarget.config_map).

    Credentials as kubetune.kube_client.connect finds them: in a pod, its ServiceAccount token;
    elsewhere the kubeconfig that kubectl would use — e.g. one holding a token of the run's trainer
    ServiceAccount, which the end-to-end test uses. `core` (a CoreV1Api) replaces that login.
    """

    def __init__(self, namespace: str, config_map: str, core=None):
        if core is None:
            from kubernetes import client  # lazy: local mode never needs the client

            from kubetune.kube_client import connect

            core = client.CoreV1Api(connect().api_client)
        self.core, self.namespace, self.config_map = core, namespace, config_map

    def report(self, report: TrainerReport) -> None:
        data = {REPORT_KEY: json.dumps(report_json(report))}
        self.core.patch_namespaced_config_map(self.config_map, self.namespace, {"data": data})


class ThrottledReporter:
    """At most one routine report per `min_interval_s`; a new stage, a new checkpoint or `force` always passes.

    Failures are logged and swallowed. The last report held back is sent by `flush()`.
    """

    def __init__(self, inner: ProgressReporter, min_interval_s: float, clock=time.monotonic):
        self.inner = inner
        self.min_interval_s = min_interval_s
        self.clock = clock
        self._last_sent: TrainerReport | None = None
        self._last_time = float("-inf")
        self._pending: TrainerReport | None = None

    def report(self, report: TrainerReport, force: bool = False) -> None:
        if force or self._is_news(report) or self.clock() - self._last_time >= self.min_interval_s:
            self._send(report)
        else:
            self._pending = report

    def flush(self) -> None:
        if self._pending is not None:
            self._send(self._pending)

    def _is_news(self, report: TrainerReport) -> bool:
        last = self._last_sent
        return last is None or last.stage != report.stage or len(last.checkpoints) != len(report.checkpoints)

    def _send(self, report: TrainerReport) -> None:
        self._pending = None
        try:
            self.inner.report(report)
        except Exception as error:  # noqa: BLE001 - a status write must never crash training
            log.warning("progress report failed (training continues): %s", error)
            return
        self._last_sent = report
        self._last_time = self.clock()


def build_reporter(target: ProgressTarget, run: RunIdentity, is_main: bool) -> ThrottledReporter:
    inner: ProgressReporter = NullReporter()
    if is_main and target.kind == "file":
        inner = FileReporter(target.path)  # type: ignore[arg-type]
    elif is_main and target.kind == "kubernetes":
        try:
            inner = KubernetesReporter(run.namespace, target.config_map)  # type: ignore[arg-type]
        except Exception as error:  # noqa: BLE001 - no in-cluster config: train anyway, unreported
            log.warning("cannot report progress to the cluster (training continues): %s", error)
    return ThrottledReporter(inner, target.min_interval_s)
