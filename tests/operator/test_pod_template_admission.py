"""compute.podTemplate on the real API server: the attacker's manifests from issue 10 are refused at `kubectl
apply`, naming the field and the rule; an expert's allowed additions reach the training pods, and affinity
cannot take them out of their pool."""

import json
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from helpers.operator_driver import example_run

pytestmark = [pytest.mark.cluster, pytest.mark.security]

FIELD = "spec.compute.podTemplate.spec"
# The attack, the field the API server names, and the start of its message (the words between the two, e.g.
# `Forbidden:` or `Invalid value: …:`, vary with the Kubernetes release).
ATTACKS = {
    "privileged root init container": (
        {"initContainers": [{"name": "x", "image": "busybox", "securityContext": {"privileged": True, "runAsUser": 0}}]},
        f"{FIELD}.initContainers",
        "initContainers is not allowed in a pod template: the training pods run only Kubetune's trainer container",
    ),
    "the node's filesystem": (
        {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]},
        f"{FIELD}.volumes[0].hostPath",
        "hostPath is not allowed in a pod template: it reaches the node",
    ),
    "a chosen node": ({"nodeName": "kubetune-h100-0"}, f"{FIELD}.nodeName", "nodeName is not allowed in a pod template: placement is the node pool's"),
    "a system priority": ({"priorityClassName": "system-node-critical"}, f"{FIELD}.priorityClassName", "priorityClassName must not be a system priority class"),
    "Kubetune's env replaced": (
        {"containers": [{"name": "trainer", "env": [{"name": "TORCH_ELASTIC_SHUTDOWN_TIMEOUT", "value": "1"}]}]},
        f"{FIELD}.containers[0].env[0].name",
        "env name must not be a variable Kubetune sets or relies on",
    ),
    "the host network": ({"hostNetwork": True}, f"{FIELD}.hostNetwork", "hostNetwork is not allowed in a pod template: it reaches the node"),
    "root": ({"securityContext": {"runAsUser": 0}}, f"{FIELD}.securityContext", "securityContext is not allowed in a pod template: Kubetune sets"),
    "another identity": ({"serviceAccountName": "default"}, f"{FIELD}.serviceAccountName", "serviceAccountName is not allowed in a pod template: the trainer's identity"),
    "a privileged trainer": (
        {"containers": [{"name": "trainer", "securityContext": {"privileged": True}}]},
        f"{FIELD}.containers[0].securityContext",
        "securityContext is not allowed in a pod template: Kubetune owns the trainer container's",
    ),
    "a mount over Kubetune's": (
        {"volumes": [{"name": "v", "emptyDir": {}}], "containers": [{"name": "trainer", "volumeMounts": [{"name": "v", "mountPath": "/etc/kubetune"}]}]},
        f"{FIELD}.containers[0].volumeMounts[0].mountPath",
        "mountPath must be a normalised absolute path",
    ),
    "a sidecar": ({"containers": [{"name": "sidecar"}]}, f"{FIELD}.containers[0].name", 'supported values: "trainer"'),
}


def test_the_crd_with_its_cel_rules_is_accepted(kubeconfig, kube_api):
    """CEL rules that do not compile or cost too much make the API server refuse the whole CRD."""
    from helpers.cluster import kubectl

    crd = json.loads(kubectl(kubeconfig, "get", "crd", "finetuneruns.kubetune.io", "-o", "json"))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    pod = schema["properties"]["spec"]["properties"]["compute"]["properties"]["podTemplate"]["properties"]["spec"]
    assert {"rule": "!has(self.initContainers)"}.items() <= pod["x-kubernetes-validations"][0].items()


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_the_attackers_pod_template_is_refused_at_apply(kubeconfig, namespace, kube_api, attack):
    from helpers.cluster import kubectl

    template, field, message = ATTACKS[attack]
    manifest = example_run("attack", compute={"pool": "h100", "gpus": 8, "podTemplate": {"spec": template}})
    with pytest.raises(AssertionError) as refused:
        kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-", input=json.dumps(manifest))  # JSON: "5e-6" stays a string
    error = str(refused.value)
    assert f"{field}: " in error and message in error, error
    runs = k8s.CustomObjectsApi(kube_api).list_namespaced_custom_object("kubetune.io", "v1alpha1", namespace, "finetuneruns")
    assert runs["items"] == []


PRIORITY_CLASS = f"kubetune-test-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def priority_class(kube_api):
    scheduling = k8s.SchedulingV1Api(kube_api)
    scheduling.create_priority_class(k8s.V1PriorityClass(metadata=k8s.V1ObjectMeta(name=PRIORITY_CLASS), value=1000))
    try:
        yield PRIORITY_CLASS
    finally:
        scheduling.delete_priority_class(PRIORITY_CLASS)


@pytest.fixture(scope="module")
def operator_config(operator_config, priority_class, tmp_path_factory) -> Path:
    config = yaml.safe_load(operator_config.read_text())
    config["podTemplate"] = {"allowedPriorityClasses": [priority_class]}
    path = tmp_path_factory.mktemp("pod-template") / "operator.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def expert_template(node: str) -> dict:
    return {
        "metadata": {"labels": {"team": "nlp"}, "annotations": {"example.com/owner": "nlp"}},
        "spec": {
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}},
            "tolerations": [{"key": "team", "operator": "Equal", "value": "nlp", "effect": "NoSchedule"}],
            "priorityClassName": PRIORITY_CLASS,
            "volumes": [{"name": "cache", "emptyDir": {}}, {"name": "settings", "configMap": {"name": "team-settings", "optional": True}}],
            "containers": [{
                "name": "trainer",
                "env": [{"name": "NCCL_DEBUG", "value": "INFO"}],
                "envFrom": [{"prefix": "TEAM_", "configMapRef": {"name": "team-settings", "optional": True}}],
                "volumeMounts": [{"name": "cache", "mountPath": "/cache"}, {"name": "settings", "mountPath": "/settings"}],
            }],
        },
    }


def test_an_experts_additions_reach_the_pods_within_the_pool(runs):
    inside = runs.apply(example_run("inside", validateInputs=False, compute={"pool": "h100", "gpus": 8, "podTemplate": expert_template("kubetune-h100-1")}))
    [pod] = runs.wait_pods_running("inside-train-0", 1)
    assert pod.spec.node_name == "kubetune-h100-1"
    assert pod.spec.node_selector == {"kubetune.io/pool": "h100"}
    assert pod.metadata.labels["team"] == "nlp" and pod.metadata.labels["kubetune.io/run"] == inside
    assert pod.metadata.annotations["example.com/owner"] == "nlp"
    assert pod.spec.priority_class_name == PRIORITY_CLASS and pod.spec.priority == 1000
    assert [t.key for t in pod.spec.tolerations][:2] == ["nvidia.com/gpu", "team"]
    [trainer] = pod.spec.containers
    env = [e.name for e in trainer.env]
    assert env.index("NCCL_DEBUG") > env.index("TORCH_ELASTIC_SHUTDOWN_TIMEOUT")
    assert [e.prefix for e in trainer.env_from][0] == "TEAM_" and trainer.env_from[-1].secret_ref.name == "mlflow-credentials"
    assert {"/cache", "/settings", "/etc/kubetune", "/checkpoints"} <= {m.mount_path for m in trainer.volume_mounts}
    assert trainer.security_context.allow_privilege_escalation is False and pod.spec.security_context.run_as_non_root

    # Affinity narrows placement within the pool, never out of it: a node of another pool is unschedulable.
    outside = runs.apply(example_run("outside", validateInputs=False, compute={"pool": "h100", "gpus": 8, "podTemplate": expert_template("kubetune-a10g-0")}))
    status = runs.wait_for("outside unschedulable", lambda: (s := runs.status(outside)).get("message", "").find("cannot be scheduled") >= 0 and s)
    assert status["phase"] == "Queued"
    assert all(p.spec.node_name is None for p in runs.pods("outside-train-0"))
