"""`helm install` into the test control plane, then the real operator completes a run holding only the
chart's ServiceAccount permissions: proof that the chart's RBAC (and so operator/rbac.py) is sufficient.

kwok pods run no containers, so the operator runs as a local process, started with the command and
arguments of the installed Deployment and a kubeconfig carrying a TokenRequest token of the chart's
ServiceAccount. The run's pods are simulated (sim.kubetune.io/exit-code), its progress is reported as
the trainer does, and the model is registered for real in the MLflow server of tests/helpers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from helpers.cluster import REPO_ROOT, kubectl, kubectl_binary, prebound_volume
from helpers.helm import CHART, VALUES_DIR, run_helm
from helpers.health import wait_healthy
from helpers.mlflow_server import logged_export
from kubetune.api.progress import CheckpointRef, TrainerReport
from kubetune.operator.access_rules import schema_name

pytestmark = [pytest.mark.cluster, pytest.mark.mlflow]



RESTRICTED = ("pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/enforce-version=latest")


@dataclass
class Release:
    name: str
    namespace: str  # the operator's
    run_namespace: str  # the one namespace it watches
    service_account: str
    notes: str


@pytest.fixture(scope="module")
def release(helm, kubeconfig):
    suffix = uuid.uuid4().hex[:6]
    rel = Release(f"kt-{suffix}", f"kt-chart-{suffix}", f"kt-runs-{suffix}", f"kt-{suffix}-kubetune", "")
    # Both namespaces enforce the restricted Pod Security Standard: every pod the chart and the operator
    # make must be admitted there (the run below gets its pods; the Deployment gets its pod).
    for namespace in (rel.run_namespace, rel.namespace):
        kubectl(kubeconfig, "create", "namespace", namespace)
        kubectl(kubeconfig, "label", "namespace", namespace, "kubetune.io/test=true", *RESTRICTED)
    kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(prebound_volume(rel.run_namespace, "kubetune-checkpoints")))
    output = run_helm(
        helm, "install", rel.name, str(CHART), "--namespace", rel.namespace, "--create-namespace",
        "--values", str(VALUES_DIR / "pools.yaml"),
        "--set", f"watchNamespaces={{{rel.run_namespace}}}",
        "--set", f"peering.name={rel.name}",
        "--set", "config.checkpoints.createClaim=true",
        kubeconfig=kubeconfig,
    )
    rel.notes = output
    try:
        yield rel
    finally:
        subprocess.run([kubectl_binary(), "--kubeconfig", kubeconfig, "delete", "pv", f"{rel.run_namespace}-kubetune-checkpoints", "--wait=false"],
                       capture_output=True)
        try:
            run_helm(helm, "uninstall", rel.name, "--namespace", rel.namespace, "--wait", kubeconfig=kubeconfig)
        finally:
            for ns in (rel.run_namespace, rel.namespace):
                subprocess.run([kubectl_binary(), "--kubeconfig", kubeconfig, "delete", "namespace", ns, "--wait=false"],
                               capture_output=True)


def service_account_kubeconfig(admin_kubeconfig: str, release: Release, path: Path) -> Path:
    """A kubeconfig that authenticates as the chart's ServiceAccount with a TokenRequest token."""
    token = kubectl(admin_kubeconfig, "create", "token", release.service_account, "-n", release.namespace,
                    "--duration=1h").strip()
    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    cluster = admin["clusters"][0]["cluster"]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": cluster}],
        "users": [{"name": release.service_account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "test", "user": release.service_account,
                                               "namespace": release.namespace}}],
        "current-context": "sa",
    }))
    path.chmod(0o600)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def operator_command(admin_kubeconfig: str, release: Release, config: Path, port: int) -> list[str]:
    """The installed Deployment's command line, with the config file and health port of this machine."""
    deployment = json.loads(kubectl(admin_kubeconfig, "get", "deployment", release.service_account,
                                    "-n", release.namespace, "-o", "json"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    command = [str(Path(sys.executable).with_name(container["command"][0])), *container["command"][1:]]
    replacements = {
        "--config=/etc/kubetune/config.yaml": f"--config={config}",
        "--liveness=http://0.0.0.0:8080/healthz": f"--liveness=http://127.0.0.1:{port}/healthz",
    }
    args = [replacements.get(arg, arg) for arg in container["args"]]
    assert set(replacements) <= set(container["args"]), container["args"]
    return command + args


def test_install_shows_what_to_apply_next(release):
    assert "STATUS: deployed" in release.notes
    assert f"these namespaces: {release.run_namespace}" in release.notes
    assert "the operator creates the claim \"kubetune-checkpoints\"" in release.notes


def test_service_account_is_denied_what_the_operator_does_not_use(kubeconfig, release):
    def can_i(*args: str) -> str:
        result = subprocess.run(
            [kubectl_binary(), "--kubeconfig", kubeconfig, "auth", "can-i", *args,
             f"--as=system:serviceaccount:{release.namespace}:{release.service_account}"],
            capture_output=True, text=True,
        )
        return result.stdout.strip()

    assert can_i("patch", "finetuneruns.kubetune.io/status", "-n", release.run_namespace) == "yes"
    assert can_i("create", "jobs.batch", "-n", release.run_namespace) == "yes"
    assert can_i("get", "secrets", "-n", release.run_namespace) == "no"
    assert can_i("create", "jobs.batch", "-n", "default") == "no"  # namespaced mode: only the watched namespace
    assert can_i("delete", "persistentvolumeclaims", "-n", release.run_namespace) == "no"  # checkpoints outlive runs
    assert can_i("create", "pods", "-n", release.run_namespace) == "no"


@pytest.mark.security
def test_the_operator_pod_is_admitted_in_a_restricted_namespace(kubeconfig, release):
    def pods() -> list[str]:
        listing = kubectl(kubeconfig, "get", "pods", "-n", release.namespace, "-o", "name")
        return listing.split()

    deadline = time.monotonic() + 60
    while not pods() and time.monotonic() < deadline:
        time.sleep(1)
    refused = kubectl(kubeconfig, "get", "events", "-n", release.namespace, "--field-selector=reason=FailedCreate", "-o", "name")
    assert pods(), f"the Deployment's pod was not created: {refused}"
    assert refused.strip() == ""


@pytest.mark.security
def test_service_account_may_do_exactly_what_operator_rbac_declares(kubeconfig, release):
    """What the installed ServiceAccount may do in a watched namespace, beyond what every ServiceAccount may do,
    is exactly operator/rbac.py: a verb nothing calls shows up here."""
    from helpers.permissions import beyond_every_service_account, declared
    from kubetune.operator import rbac

    user = f"system:serviceaccount:{release.namespace}:{release.service_account}"
    rules = [rule.to_manifest() for rule in rbac.CLUSTER_RULES + rbac.NAMESPACED_RULES]
    assert beyond_every_service_account(kubeconfig, release.run_namespace, user) == declared(rules)


def report(**fields: object) -> TrainerReport:
    return TrainerReport.model_validate({"updatedAt": datetime.now(UTC).isoformat(), **fields})


def test_operator_completes_a_run_with_the_chart_permissions(kubeconfig, kube_api, release, mlflow_uri, tmp_path):
    from helpers.operator_driver import RunDriver, delete_runs_and_wait

    configmap = json.loads(kubectl(kubeconfig, "get", "configmap", f"{release.service_account}-config",
                                   "-n", release.namespace, "-o", "json"))
    config = yaml.safe_load(configmap["data"]["config.yaml"])
    assert config["namespaces"] == [release.run_namespace]

    config["mlflow"]["trackingUri"] = mlflow_uri
    config["reconcile"] = {"resyncIntervalSeconds": 1, "registrationBackoffSeconds": 1,
                           "registrationBackoffMaxSeconds": 4}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    command = operator_command(kubeconfig, release, config_path, port)
    assert f"--namespace={release.run_namespace}" in command and f"--peering={release.name}" in command
    env = {**os.environ, "KUBECONFIG": str(service_account_kubeconfig(kubeconfig, release, tmp_path / "sa.kubeconfig")),
           "PYTHONSAFEPATH": "1"}
    log_path = tmp_path / "operator.log"
    with open(log_path, "wb") as log:
        operator = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    runs = RunDriver(kube_api, kubeconfig, release.run_namespace)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/healthz", lambda: operator.poll() is not None,
                     lambda: log_path.read_text(errors="replace"))
        _complete_a_run(runs, mlflow_uri, tmp_path)
        logs = log_path.read_text(errors="replace")
        assert "Forbidden" not in logs and " 403" not in logs, logs[-5000:]
    except BaseException:
        print(log_path.read_text(errors="replace")[-20000:])
        raise
    finally:
        if operator.poll() is None:
            delete_runs_and_wait(kube_api, release.run_namespace)  # the runs carry the operator's finalizer
            os.killpg(operator.pid, signal.SIGTERM)
            try:
                operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(operator.pid, signal.SIGKILL)


def _complete_a_run(runs, mlflow_uri: str, tmp_path: Path) -> None:
    import mlflow

    manifest = yaml.safe_load((REPO_ROOT / "examples" / "multinode.yaml").read_text())
    manifest["metadata"]["name"] = "chat"
    # The chart's default access rule: the run namespace's own schema (unique: the session's MLflow server is shared).
    registered = f"main.{schema_name(runs.namespace)}.chat"
    manifest["spec"]["registerTo"] = registered
    manifest["spec"]["compute"] = {"pool": "a10g", "gpus": 2}  # two 1-GPU nodes: multi-node, away from h100 tests
    name = runs.apply(manifest)

    runs.wait_phase(name, "Validating", timeout=60)
    runs.wait_pods_running("chat-validate", 1)
    runs.finish_pods("chat-validate", 0)
    runs.wait_phase(name, "Running", timeout=60)
    runs.wait_pods_running("chat-train-0", 2)

    run_id, export = logged_export(mlflow_uri, tmp_path, runs.tags(name))
    runs.report(name, report(stage="MODEL_INITIALIZED", mlflowRunId=run_id))
    runs.report(name, report(stage="TRAINING", epoch=1, totalEpochs=2, step=5, totalSteps=10, trainLoss=1.5,
                             mlflowRunId=run_id))
    checkpoint = CheckpointRef(name="ep2-ba10", path="/checkpoints/chat/checkpoints/ep2-ba10", step=10, epoch=2)
    runs.report(name, report(stage="TRAIN_FINISHED", step=10, totalSteps=10, checkpoints=[checkpoint],
                             mlflowRunId=run_id, exportUri=export))
    runs.finish_pods("chat-train-0", 0)
    status = runs.wait_phase(name, "Succeeded", timeout=120)

    assert status["registeredModel"] == {"name": registered, "version": "1"}
    version = mlflow.MlflowClient(mlflow_uri).get_model_version(registered, "1")
    assert version.run_id == run_id and version.source == export
    reasons = [e.reason for e in runs.events(name)]
    assert "ModelRegistered" in reasons and "RunSucceeded" in reasons
