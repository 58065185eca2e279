"""The operator image, built here, runs the chart's Deployment on the test control plane and takes a run to Running.

The chart is installed for real (`helm install`, one watched namespace, its own peering). Where a kubelet
would start the Deployment's pod, the test starts the same container from the built image: the pod's
command and arguments, user, environment and volumes (the chart's ConfigMap at /etc/kubetune, an
emptyDir at /tmp), signed in the way a pod is, with the chart ServiceAccount's token, the cluster's CA
and KUBERNETES_SERVICE_HOST/PORT. The network is the host's (the control plane listens on loopback), so
the health port moves to a free one. Then a FineTuneRun is applied with `kubectl apply` and the operator
in the image must validate it, create its training Job and report it Running.
"""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from helpers.cluster import REPO_ROOT, kubectl, kubectl_binary, prebound_volume
from helpers.helm import CHART, VALUES_DIR, helm_binary, run_helm
from helpers.health import wait_healthy
from helpers.mlflow_server import free_port
from helpers.operator_driver import RunDriver, delete_runs_and_wait
from images.containers import Image, Mount, chart_tags, writable_folder
from kubetune.operator.access_rules import schema_name

pytestmark = [pytest.mark.images]

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def test_operator_image_is_the_chart_user_with_the_kubetune_entrypoint(operator_image: Image):
    config = operator_image.config
    assert config["User"] == "1000:1000"
    assert config["Entrypoint"] == ["kubetune"]
    assert config["Cmd"] == ["operator", "--config", "/etc/kubetune/config.yaml", "--liveness", "http://0.0.0.0:8080/healthz"]
    assert "PYTHONSAFEPATH=1" in config["Env"] and "PYTHONDONTWRITEBYTECODE=1" in config["Env"]


def test_operator_image_has_the_operator_and_no_torch(operator_image: Image):
    probe = (
        "import importlib.metadata as m, importlib.util as u, json; "
        "print(json.dumps({'modules': {n: u.find_spec(n) is not None for n in ('kopf', 'mlflow', 'kubernetes', 'torch', 'transformers')}, "
        "'dists': sorted(d.metadata['Name'].lower() for d in m.distributions())}))"
    )
    result = operator_image.run(["python", "-c", probe])
    assert result.returncode == 0, result.stdout
    found = json.loads(result.stdout.splitlines()[-1])
    assert found["modules"] == {"kopf": True, "mlflow": True, "kubernetes": True, "torch": False, "transformers": False}
    heavy = [d for d in found["dists"] if d in ("torch", "triton", "transformers") or d.startswith(("nvidia-", "cuda-"))]
    assert heavy == [] and "kubetune" in found["dists"], found["dists"]


def test_kubetune_runs_as_the_images_own_user_1000(operator_image: Image):
    result = operator_image.run(["sh", "-c", "id -u; id -g; kubetune --help"], user=None)
    assert result.returncode == 0, result.stdout
    uid, gid, *usage = result.stdout.splitlines()
    assert (uid, gid) == ("1000", "1000")
    assert "operator" in "\n".join(usage)


# ---------------------------------------------------------------- the chart's Deployment, run from the image


@pytest.fixture
def release(kubeconfig, kube_api, crd_installed, operator_image: Image):
    """The chart installed with the built image, watching one fresh namespace (with a volume for its checkpoint claim)."""
    helm = helm_binary()
    if helm is None:
        pytest.skip("helm is missing: run `make cluster-bins` or set HELM=")
    suffix = uuid.uuid4().hex[:6]
    name, namespace, runs_namespace = f"kti-{suffix}", f"kti-system-{suffix}", f"kti-runs-{suffix}"
    repository, tag = operator_image.tag.rsplit(":", 1)
    kubectl(kubeconfig, "create", "namespace", runs_namespace)
    kubectl(kubeconfig, "label", "namespace", runs_namespace, "kubetune.io/test=true")
    kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(prebound_volume(runs_namespace, "kubetune-checkpoints")))
    try:
        run_helm(
            helm, "install", name, str(CHART), "--namespace", namespace, "--create-namespace",
            "--values", str(VALUES_DIR / "pools.yaml"),
            "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
            "--set", f"watchNamespaces={{{runs_namespace}}}", "--set", f"peering.name={name}",
            "--set", "config.checkpoints.createClaim=true",
            kubeconfig=kubeconfig,
        )
        yield {"name": name, "namespace": namespace, "runs_namespace": runs_namespace}
    finally:
        delete_runs_and_wait(kube_api, runs_namespace, timeout=5)
        for args in (
            ["delete", "pv", f"{runs_namespace}-kubetune-checkpoints", "--wait=false"],
            ["patch", "finetuneruns.kubetune.io", "--all", "-n", runs_namespace, "--type=merge",
             "-p", '{"metadata":{"finalizers":null}}'],
        ):
            subprocess.run([kubectl_binary(), "--kubeconfig", kubeconfig, *args], capture_output=True, timeout=60)
        try:
            run_helm(helm, "uninstall", name, "--namespace", namespace, "--wait", kubeconfig=kubeconfig)
        finally:
            for ns in (runs_namespace, namespace):
                subprocess.run([kubectl_binary(), "--kubeconfig", kubeconfig, "delete", "namespace", ns, "--wait=false"],
                               capture_output=True, timeout=60)


def deployment_of(kubeconfig: str, release: dict) -> dict:
    deployments = json.loads(kubectl(kubeconfig, "get", "deployments", "-n", release["namespace"], "-o", "json"))["items"]
    [deployment] = [d for d in deployments if d["metadata"]["name"].startswith(release["name"])]
    return deployment


def pod_identity(kubeconfig: str, release: dict, service_account: str, folder: Path) -> tuple[Path, dict[str, str]]:
    """What a kubelet gives the pod to reach the API server: the token folder and the service's address."""
    token = kubectl(kubeconfig, "create", "token", service_account, "-n", release["namespace"], "--duration=1h").strip()
    admin = json.loads(kubectl(kubeconfig, "config", "view", "--raw", "--minify", "--flatten", "-o", "json"))
    cluster = admin["clusters"][0]["cluster"]
    server = urllib.parse.urlsplit(cluster["server"])
    writable_folder(folder)
    (folder / "token").write_text(token)
    (folder / "ca.crt").write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    (folder / "namespace").write_text(release["namespace"])
    return folder, {"KUBERNETES_SERVICE_HOST": server.hostname, "KUBERNETES_SERVICE_PORT": str(server.port)}


def container_volumes(kubeconfig: str, pod_spec: dict, container: dict, namespace: str, folder: Path) -> list[Mount]:
    """Each of the container's volume mounts backed by a host folder with what the kubelet would put there."""
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    mounts = []
    for mount in container["volumeMounts"]:
        volume, host = volumes[mount["name"]], folder / mount["name"]
        if "configMap" in volume:
            data = json.loads(kubectl(kubeconfig, "get", "configmap", volume["configMap"]["name"], "-n", namespace, "-o", "json"))["data"]
            host.mkdir(parents=True)
            for file_name, text in data.items():
                (host / file_name).write_text(text)
        elif "emptyDir" in volume:
            writable_folder(host)  # fsGroup 1000
        else:
            raise AssertionError(f"no host folder for the operator's volume {volume}: teach this test about it")
        mounts.append(Mount(host, mount["mountPath"], read_only=mount.get("readOnly", False)))
    return mounts


@pytest.mark.cluster
def test_chart_deployment_from_the_image_takes_a_run_to_running(operator_image: Image, release, kubeconfig, kube_api, tmp_path):
    deployment = deployment_of(kubeconfig, release)
    pod_spec = deployment["spec"]["template"]["spec"]
    [container] = pod_spec["containers"]
    assert container["image"] == operator_image.tag
    security = pod_spec["securityContext"]
    user = f"{security['runAsUser']}:{security['runAsGroup']}"
    assert user == operator_image.config["User"]
    assert container["command"][0] == operator_image.config["Entrypoint"][0]

    # The pod's command line; only the health port moves (host network).
    port = free_port()
    liveness = "--liveness=http://0.0.0.0:8080/healthz"
    assert liveness in container["args"], container["args"]
    args = [f"--liveness=http://0.0.0.0:{port}/healthz" if a == liveness else a for a in container["args"]]
    assert f"--namespace={release['runs_namespace']}" in args and f"--peering={release['name']}" in args

    mounts = container_volumes(kubeconfig, pod_spec, container, release["namespace"], tmp_path / "volumes")
    token_folder, service = pod_identity(kubeconfig, release, pod_spec["serviceAccountName"], tmp_path / "serviceaccount")
    mounts.append(Mount(token_folder, operator_image.resolve(SERVICE_ACCOUNT_DIR), read_only=True))
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env |= {e["name"]: "kubetune-operator-0" for e in container["env"] if e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"}
    env |= service

    operator = operator_image.start([*container["command"], *args], log=tmp_path / "operator.log",
                                    user=user, mounts=mounts, env=env)
    runs = RunDriver(kube_api, kubeconfig, release["runs_namespace"])
    try:
        wait_healthy(f"http://127.0.0.1:{port}/healthz", lambda: operator.process.poll() is not None, operator.logs, timeout=120)

        manifest = yaml.safe_load((REPO_ROOT / "examples" / "multinode.yaml").read_text())
        manifest["metadata"]["name"] = "chat"
        manifest["spec"]["compute"] = {"pool": "cpu", "gpus": 0}  # the simulated CPU pool: away from the GPU tests
        # The chart's default access rule: a namespace registers only into the schema named after it.
        manifest["spec"]["registerTo"] = f"main.{schema_name(release['runs_namespace'])}"
        runs.kubectl("apply", "-f", "-", input=json.dumps(manifest))  # JSON: "5e-6" stays a string
        runs.wait_phase("chat", "Validating", timeout=90)
        runs.wait_pods_running("chat-validate", 1)
        runs.finish_pods("chat-validate", 0)
        status = runs.wait_phase("chat", "Running", timeout=90)
        [pod] = runs.wait_pods_running("chat-train-0", 1)

        true = {c["type"] for c in status["conditions"] if c["status"] == "True"}
        assert {"SpecValid", "InputsValidated"} <= true, status["conditions"]
        [trainer] = pod.spec.containers
        assert trainer.image == chart_tags()["trainer"]  # the image the build script tags for the trainer
        assert trainer.command[0] == "torchrun"
        logs = operator.logs()
        assert "Traceback" not in logs and "Forbidden" not in logs, logs[-6000:]
    except BaseException:
        print(operator.logs()[-20000:])
        raise
    finally:
        try:
            delete_runs_and_wait(kube_api, release["runs_namespace"])  # the operator removes its finalizers
        finally:
            operator.stop()
