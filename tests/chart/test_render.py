"""`helm lint` and `helm template` for the default values and realistic overrides."""

from __future__ import annotations

import pytest
import yaml

from helpers.cluster import REPO_ROOT
from helpers.helm import CHART, RELEASE_NAMESPACE, VALUES_DIR, find, one, run_helm
from kubetune.operator.config import OperatorConfig

FULLNAME = "kt-kubetune"
KIND_VALUES = REPO_ROOT / "hack" / "kind" / "values.yaml"


def operator_config(objects: list[dict]) -> OperatorConfig:
    """The rendered ConfigMap's config.yaml, validated as the operator will read it."""
    configmap = one(objects, "ConfigMap", f"{FULLNAME}-config", RELEASE_NAMESPACE)
    return OperatorConfig.model_validate(yaml.safe_load(configmap["data"]["config.yaml"]))


def operator_container(objects: list[dict]) -> dict:
    deployment = one(objects, "Deployment", FULLNAME, RELEASE_NAMESPACE)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize(
    "values",
    [[], [VALUES_DIR / "namespaced.yaml", VALUES_DIR / "pools.yaml", VALUES_DIR / "kueue.yaml"], [KIND_VALUES]],
    ids=["defaults", "namespaced-pools-kueue", "kind"],
)
def test_helm_lint_passes(helm, values):
    args = ["lint", "--strict", str(CHART)]
    for path in values:
        args += ["--values", str(path)]
    assert "0 chart(s) failed" in run_helm(helm, *args)


def test_defaults_render_cluster_wide_operator(render):
    objects = render()
    assert {o["kind"] for o in objects} == {
        "ServiceAccount", "ConfigMap", "ClusterRole", "ClusterRoleBinding", "Deployment", "ClusterKopfPeering", "Service",
        "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    }
    config = operator_config(objects)
    assert config.namespaces == [] and config.defaults.pool in config.pools
    container = operator_container(objects)
    assert container["command"] == ["kubetune", "operator"]
    assert container["args"] == [
        "--config=/etc/kubetune/config.yaml",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--metrics=http://0.0.0.0:9090/metrics",
        "--peering=kubetune",
        "--log-format=json",
    ]
    assert container["image"] == "ghcr.io/kubetune/operator:0.1.0"
    assert one(objects, "ClusterKopfPeering", "kubetune")
    binding = one(objects, "ClusterRoleBinding", FULLNAME)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NAMESPACE}]
    assert binding["roleRef"]["name"] == FULLNAME


def test_operator_pod_is_restricted_and_probed(render):
    deployment = one(render(), "Deployment", FULLNAME)
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/kubetune"]["readOnly"] is True and "/tmp" in mounts
    # No Secret is read into the pod's spec as a value.
    assert "secretKeyRef" not in yaml.safe_dump(deployment)


def test_namespaced_mode_gets_a_role_and_peering_per_namespace(render):
    objects = render(VALUES_DIR / "namespaced.yaml")
    namespaces = ["team-a", "team-b"]
    assert operator_config(objects).namespaces == namespaces
    assert operator_container(objects)["args"][-2:] == ["--namespace=team-a", "--namespace=team-b"]
    for ns in namespaces:
        one(objects, "Role", FULLNAME, ns)
        binding = one(objects, "RoleBinding", FULLNAME, ns)
        assert binding["subjects"][0]["namespace"] == RELEASE_NAMESPACE
        one(objects, "KopfPeering", "kubetune", ns)
    assert not find(objects, "ClusterKopfPeering")
    # Nothing namespaced is granted cluster-wide: no runs or Jobs outside the watched namespaces.
    cluster_role = one(objects, "ClusterRole", FULLNAME)
    assert not {"finetuneruns", "jobs", "pods"} & {res for r in cluster_role["rules"] for res in r["resources"]}


def test_multiple_pools_become_the_operator_config(render):
    config = operator_config(render(VALUES_DIR / "pools.yaml"))
    assert sorted(config.pools) == ["a10g", "cpu", "h100"]
    assert config.pools["h100"].gpus_per_node == 8
    assert config.pools["h100"].tolerations[0].key == "nvidia.com/gpu"
    assert config.pools["cpu"].gpus_per_node == 0
    assert (config.defaults.pool, config.defaults.validation_pool, config.defaults.max_restarts) == ("h100", "cpu", 2)


def test_kueue_default_queue(render):
    assert operator_config(render(VALUES_DIR / "kueue.yaml")).kueue.queue_name == "team-queue"


def test_mlflow_credentials_are_references(render):
    objects = render(VALUES_DIR / "mlflow-credentials.yaml")
    mlflow = operator_config(objects).mlflow
    assert (mlflow.tracking_uri, mlflow.registry_uri) == ("https://mlflow.example.com", "https://mlflow-registry.example.com")
    assert mlflow.credentials_secret == "mlflow-credentials"
    assert operator_container(objects)["envFrom"] == [{"secretRef": {"name": "kubetune-operator-mlflow"}}]
    assert not find(objects, "Secret")


def test_existing_checkpoint_claim(render):
    checkpoints = operator_config(render(VALUES_DIR / "existing-claim.yaml")).checkpoints
    assert (checkpoints.claim_name, checkpoints.mount_path, checkpoints.create_claim) == (
        "shared-checkpoints", "/mnt/checkpoints", False,
    )


def test_kind_values_configure_a_cpu_pool_and_local_images(render):
    objects = render(KIND_VALUES)
    config = operator_config(objects)
    assert list(config.pools) == ["cpu"] and config.pools["cpu"].gpus_per_node == 0
    assert config.images.trainer == "kubetune/trainer:e2e"
    assert operator_container(objects)["image"] == "kubetune/operator:e2e"


def test_config_change_restarts_the_operator(render):
    def checksum(objects):
        return one(objects, "Deployment", FULLNAME)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum(render()) != checksum(render(VALUES_DIR / "kueue.yaml"))

