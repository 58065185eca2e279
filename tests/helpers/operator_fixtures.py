"""Fixtures for the real `kubetune operator` on the test control plane (kwok pools) with a real MLflow server.

Shared by the layers that run the operator (tests/operator, tests/e2e): a layer's conftest.py
imports them by name, so pytest registers them for that folder only.

kube_api               (session) the shared client (tests/conftest.py), with the FineTuneRun CRD applied
namespace              (function) the shared fresh namespace plus a pre-bound volume for the checkpoint claim
mlflow_uri             (session, helpers.mlflow_server) the session's one real MLflow tracking server
operator_config        (session) examples/operator-config.yaml with short intervals and the test MLflow
operator               (function) `kubetune operator --standalone --namespace NS` as a subprocess
runs                   (function) a RunDriver: apply, wait, inject trainer reports, finish pods
pytest_runtest_makereport  (hook) keeps each phase's report on the item, so `operator` prints its log on failure
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import cluster
from helpers.mlflow_server import free_port
from helpers.operator_factories import ALLOW_EVERY_TARGET

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def kube_api(kube_api, crd_installed):
    """The shared client, once the CRD is installed and the simulated GPU pools are there."""
    if not cluster.has_simulated_pools(kube_api):
        pytest.skip("the cluster has no simulated GPU pools (hack/kwok/nodes.yaml)")
    return kube_api


@pytest.fixture(scope="session")
def operator_config(tmp_path_factory, mlflow_uri) -> Path:
    path = tmp_path_factory.mktemp("operator") / "operator.yaml"
    path.write_text(yaml.safe_dump(operator_config_data(mlflow_uri)))
    return path


def operator_config_data(mlflow_uri: str) -> dict:
    """examples/operator-config.yaml with short intervals and the test MLflow (tests/kueue adds to it)."""
    config = yaml.safe_load((REPO / "examples" / "operator-config.yaml").read_text())
    config["mlflow"]["trackingUri"] = mlflow_uri
    config["reconcile"] = {
        "resyncIntervalSeconds": 1,
        "registrationBackoffSeconds": 1,
        "registrationBackoffMaxSeconds": 4,
    }
    config["defaults"]["restartBackoff"] = {"initialSeconds": 1, "maxSeconds": 2}
    config["access"] = ALLOW_EVERY_TARGET  # tests/operator/test_access.py puts the real default back
    return config


def with_resync(operator_config: Path, seconds: float, folder: Path, **defaults) -> Path:
    """A copy of the tests' operator configuration with another resync interval (for a module's override),
    and other `defaults` where given."""
    config = yaml.safe_load(operator_config.read_text())
    config["reconcile"]["resyncIntervalSeconds"] = seconds
    config["defaults"].update(defaults)
    path = folder / "operator.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def namespace(namespace, kube_api):
    """The shared fresh namespace plus a volume pre-bound to its checkpoint claim."""
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(kube_api)
    volume = cluster.prebound_volume(namespace, "kubetune-checkpoints")
    core.create_persistent_volume(volume)
    try:
        yield namespace
    finally:
        try:
            core.delete_persistent_volume(volume["metadata"]["name"])
        except k8s.ApiException as error:
            if error.status != 404:
                raise


class OperatorProcess:
    """The real `kubetune operator` command; start, kill (a crash) and start again."""

    def __init__(self, kubeconfig: str, config: Path, namespace: str, log_dir: Path):
        # The same liveness endpoint the chart's probes call, on a free loopback port.
        self.liveness_url = f"http://127.0.0.1:{free_port()}/healthz"
        self.metrics_url = f"http://127.0.0.1:{free_port()}/metrics"  # Prometheus metrics, as the chart serves them
        self.command = [
            str(Path(sys.executable).with_name("kubetune")),
            "operator",
            "--config",
            str(config),
            "--standalone",
            "--namespace",
            namespace,
            "--liveness",
            self.liveness_url,
            "--metrics",
            self.metrics_url,
        ]
        self.env = {**os.environ, "KUBECONFIG": kubeconfig, "PYTHONSAFEPATH": "1"}
        self.log_dir = log_dir
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_dir / f"operator-{self.starts}.log", "wb")
        self.process = subprocess.Popen(
            self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        log.close()

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, like a node failure under the operator."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("operator-*.log")))


@pytest.fixture
def operator(kubeconfig, kube_api, operator_config, namespace, tmp_path, request):
    from helpers.operator_driver import delete_runs_and_wait

    process = OperatorProcess(kubeconfig, operator_config, namespace, tmp_path)
    process.start()
    try:
        yield process
    finally:
        if process.process.poll() is None:
            # The runs carry the operator's finalizer: delete them while it still runs.
            delete_runs_and_wait(kube_api, namespace)
        process.stop()
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
            print(process.logs()[-6000:])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def runs(kube_api, kubeconfig, namespace, operator):
    from helpers.operator_driver import RunDriver

    return RunDriver(kube_api, kubeconfig, namespace)
