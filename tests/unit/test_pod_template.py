"""compute.podTemplate is an allow-list: what an expert may add reaches the training pods after Kubetune's own,
everything else is refused with the field and the rule, and the CRD carries the same refusals."""

import json

import pytest
from kubernetes import client as k8s

from helpers.operator_factories import REF, make_config, make_spec
from kubetune.api import pod_template, pod_template_rules
from kubetune.api.crd import build_crd
from kubetune.api.errors import SpecError
from kubetune.api.pod_template import Container, PodSpec, PodTemplate, TemplateMetadata, Volume, VolumeProjection
from kubetune.api.spec import FineTuneRunSpec
from kubetune.operator.builders.training import build_training_job, check_pod_template, merge_pod_template
from kubetune.operator.config import ConfigError, OperatorConfig
from kubetune.operator.placement import resolve_placement

PREFIX = "spec.compute.podTemplate"


def problems(template: dict) -> list[str]:
    with pytest.raises(SpecError) as caught:
        FineTuneRunSpec.parse(make_spec(compute={"pool": "h100", "gpus": 16, "podTemplate": template}))
    return [str(p) for p in caught.value.problems]


def training_pod(template: dict | None = None, config=None, **spec_fields) -> dict:
    config = config or make_config()
    compute = {"pool": "h100", "gpus": 16, **({"podTemplate": template} if template else {})}
    spec = FineTuneRunSpec.parse(make_spec(compute=compute, **spec_fields))
    return build_training_job(REF, spec, config, resolve_placement(spec.compute, config), 0)["spec"]["template"]


def _fields(model) -> tuple[set[str], set[str]]:
    """(allowed, refused) camelCase fields of a pod template model."""
    allowed, refused = set(), set()
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        (refused if pod_template.REFUSED in extra else allowed).add(field.alias or name)
    return allowed, refused


@pytest.mark.parametrize(
    "model, kubernetes_model, allowed",
    [
        (
            PodSpec,
            k8s.V1PodSpec,
            {"affinity", "tolerations", "topologySpreadConstraints", "priorityClassName", "imagePullSecrets", "volumes", "containers"},
        ),
        (Container, k8s.V1Container, {"name", "env", "envFrom", "volumeMounts"}),
        (
            Volume,
            k8s.V1Volume,
            {"name", "configMap", "secret", "emptyDir", "persistentVolumeClaim", "ephemeral", "projected", "downwardAPI"},
        ),
        (VolumeProjection, k8s.V1VolumeProjection, {"configMap", "secret", "downwardAPI"}),
    ],
)
def test_every_kubernetes_field_is_decided(model, kubernetes_model, allowed):
    """A field a Kubernetes release adds fails this test until it is allowed or refused with a reason."""
    ours, refused = _fields(model)
    assert ours == allowed
    assert ours | refused == set(kubernetes_model.attribute_map.values())


ATTACKS = [
    ({"spec": {"initContainers": [{"name": "x", "image": "busybox", "securityContext": {"privileged": True}}]}},
     f"{PREFIX}.spec.initContainers: is not allowed in a pod template: the training pods run only Kubetune's trainer"),
    ({"spec": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}},
     f"{PREFIX}.spec.volumes.0.hostPath: is not allowed in a pod template: it reaches the node"),
    ({"spec": {"nodeName": "kubetune-h100-0"}}, f"{PREFIX}.spec.nodeName: is not allowed in a pod template: placement is the node pool's"),
    ({"spec": {"priorityClassName": "system-node-critical"}}, f"{PREFIX}.spec.priorityClassName: must not be a system priority class"),
    ({"spec": {"containers": [{"name": "trainer", "env": [{"name": "HOME", "value": "/"}]}]}},
     f"{PREFIX}.spec.containers.0.env.0.name: must not be a variable Kubetune sets or relies on"),
    ({"spec": {"containers": [{"name": "trainer", "env": [{"name": "torch_elastic_shutdown_timeout", "value": "1"}]}]}},
     f"{PREFIX}.spec.containers.0.env.0.name: must not be a variable Kubetune sets"),
    ({"spec": {"containers": [{"name": "trainer", "env": [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]}]}},
     f"{PREFIX}.spec.containers.0.env.0.name: must not be a variable Kubetune sets"),
    ({"spec": {"hostNetwork": True}}, f"{PREFIX}.spec.hostNetwork: is not allowed in a pod template: it reaches the node"),
    ({"spec": {"hostPID": True}}, f"{PREFIX}.spec.hostPID: is not allowed"),
    ({"spec": {"securityContext": {"runAsUser": 0}}}, f"{PREFIX}.spec.securityContext: is not allowed in a pod template: Kubetune sets the pods' security context"),
    ({"spec": {"serviceAccountName": "default"}}, f"{PREFIX}.spec.serviceAccountName: is not allowed in a pod template: the trainer's identity"),
    ({"spec": {"runtimeClassName": "runc"}}, f"{PREFIX}.spec.runtimeClassName: is not allowed"),
    ({"spec": {"schedulerName": "mine"}}, f"{PREFIX}.spec.schedulerName: is not allowed in a pod template: placement is the node pool's"),
    ({"spec": {"nodeSelector": {"kubernetes.io/hostname": "x"}}}, f"{PREFIX}.spec.nodeSelector: is not allowed"),
    ({"spec": {"containers": [{"name": "trainer", "securityContext": {"privileged": True}}]}},
     f"{PREFIX}.spec.containers.0.securityContext: is not allowed in a pod template: Kubetune owns the trainer container's"),
    ({"spec": {"containers": [{"name": "trainer", "image": "evil"}]}}, f"{PREFIX}.spec.containers.0.image: is not allowed"),
    ({"spec": {"containers": [{"name": "sidecar"}]}}, f"{PREFIX}.spec.containers.0.name: Input should be 'trainer'"),
    ({"spec": {"volumes": [{"name": "x", "csi": {"driver": "d"}}]}}, f"{PREFIX}.spec.volumes.0.csi: is not allowed in a pod template: an inline CSI volume"),
    ({"spec": {"volumes": [{"name": "x", "nfs": {"server": "s", "path": "/"}}]}}, f"{PREFIX}.spec.volumes.0.nfs: is not allowed"),
    ({"spec": {"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]}},
     f"{PREFIX}.spec.volumes.0.projected.sources.0.serviceAccountToken: is not allowed in a pod template: the trainer's identity"),
    ({"spec": {"volumes": [{"name": "checkpoints", "emptyDir": {}}]}}, f"{PREFIX}.spec.volumes.0.name: must not be one of Kubetune's volumes"),
    ({"spec": {"volumes": [{"name": "data-0", "emptyDir": {}}]}}, f"{PREFIX}.spec.volumes.0.name: must not be one of Kubetune's volumes"),
    ({"spec": {"volumes": [{"name": "two", "emptyDir": {}, "secret": {"secretName": "s"}}]}}, f"{PREFIX}.spec.volumes.0: a volume needs exactly one source"),
    ({"spec": {"containers": [{"name": "trainer", "volumeMounts": [{"name": "trainer-config", "mountPath": "/x"}]}]}},
     f"{PREFIX}.spec: volumeMount 'trainer-config': every volumeMount must name one of podTemplate.spec.volumes"),
    ({"spec": {"volumes": [{"name": "v", "emptyDir": {}}],
               "containers": [{"name": "trainer", "volumeMounts": [{"name": "v", "mountPath": "/etc/kubetune"}]}]}},
     f"{PREFIX}.spec.containers.0.volumeMounts.0.mountPath: must be a normalised absolute path"),
    ({"spec": {"volumes": [{"name": "v", "emptyDir": {}}],
               "containers": [{"name": "trainer", "volumeMounts": [{"name": "v", "mountPath": "/x", "mountPropagation": "Bidirectional"}]}]}},
     f"{PREFIX}.spec.containers.0.volumeMounts.0.mountPropagation: is not allowed in a pod template: mount propagation"),
    ({"spec": {"containers": [{"name": "trainer", "envFrom": [{"secretRef": {"name": "s"}}]}]}},
     f"{PREFIX}.spec.containers.0.envFrom.0.prefix: is required"),
    ({"spec": {"containers": [{"name": "trainer", "envFrom": [{"prefix": "MLFLOW_", "secretRef": {"name": "s"}}]}]}},
     f"{PREFIX}.spec.containers.0.envFrom.0.prefix: is required and must keep every variable it makes out of Kubetune's"),
    ({"metadata": {"labels": {"kubetune.io/run": "other"}}}, f"{PREFIX}.metadata.labels: kubetune.io/run: must not set Kubetune's"),
    ({"metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/trainer": "unconfined"}}},
     f"{PREFIX}.metadata.annotations: container.apparmor.security.beta.kubernetes.io/trainer: must not set"),
    ({"metadata": {"name": "x"}}, f"{PREFIX}.metadata.name: is not a FineTuneRun field"),
]


@pytest.mark.parametrize("template, expected", ATTACKS, ids=[a[1].split(": ")[0].removeprefix(PREFIX + ".") for a in ATTACKS])
def test_refused_before_any_job_names_field_and_rule(template, expected):
    assert any(p.startswith(expected) for p in problems(template)), problems(template)


@pytest.mark.parametrize("name", ["HOME", "home", "PATH", "RANK", "WORLD_SIZE", "MASTER_ADDR", "LD_PRELOAD", "PYTHONPATH",
                                  "KUBERNETES_SERVICE_HOST", "MLFLOW_TRACKING_URI", "CUDA_VISIBLE_DEVICES", "https_proxy",
                                  "KUBETUNE_ANYTHING", "TORCHELASTIC_RUN_ID"])
def test_reserved_env_names(name):
    assert pod_template_rules.is_reserved_env(name)


@pytest.mark.parametrize("name", ["NCCL_DEBUG", "HF_TOKEN", "WANDB_API_KEY", "OMP_NUM_THREADS", "TEAM_SETTING"])
def test_free_env_names(name):
    assert not pod_template_rules.is_reserved_env(name)


@pytest.mark.parametrize("prefix, safe", [("TEAM_", True), ("X_", True), ("", False), ("H", False), ("HF_H", False),
                                          ("NV", False), ("MLFLOW_X_", False), ("P", False), ("R", False), ("CUDA", False)])
def test_env_from_prefix_keeps_every_variable_out_of_kubetunes(prefix, safe):
    assert pod_template_rules.env_prefix_is_safe(prefix) is safe


@pytest.mark.parametrize("path, safe", [("/data", True), ("/opt/models", True), ("/var/cache/x", True),
                                        ("/tmp", False), ("/tmp/x", False), ("/etc", False), ("/", False), ("/mnt", False),
                                        ("/mnt/data/x", False), ("/dev/termination-log", False), ("/data/../tmp", False),
                                        ("/data/", False), ("//data", False), ("data", False), ("/checkpoints", False)])
def test_mount_paths(path, safe):
    assert pod_template_rules.mount_path_is_safe(path) is safe


def test_kubetunes_own_env_volumes_and_mounts_are_reserved():
    """Whatever the builders put in a training pod (data claims included), a podTemplate cannot add or shadow."""
    pod = training_pod(trainDataPath="pvc://datasets/t.jsonl")["spec"]
    [trainer] = pod["containers"]
    assert trainer["env"] and all(pod_template_rules.is_reserved_env(e["name"]) for e in trainer["env"])
    names = [v["name"] for v in pod["volumes"]]
    assert "data-0" in names
    assert all(n in pod_template_rules.RESERVED_VOLUME_NAMES or n.startswith(pod_template_rules.RESERVED_VOLUME_PREFIX) for n in names)
    assert all(not pod_template_rules.mount_path_is_safe(m["mountPath"]) for m in trainer["volumeMounts"])


EXPERT = {
    "metadata": {"labels": {"team": "nlp"}, "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}},
    "spec": {
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
        "tolerations": [{"key": "team", "operator": "Equal", "value": "nlp", "effect": "NoSchedule"}],
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}],
        "priorityClassName": "research-high",
        "imagePullSecrets": [{"name": "team-registry"}],
        "volumes": [
            {"name": "cache", "emptyDir": {"sizeLimit": "10Gi"}},
            {"name": "models", "persistentVolumeClaim": {"claimName": "team-models", "readOnly": True}},
            {"name": "tls", "projected": {"sources": [{"secret": {"name": "ca"}}, {"configMap": {"name": "c"}}]}},
        ],
        "containers": [{
            "name": "trainer",
            "env": [{"name": "NCCL_DEBUG", "value": "INFO"}, {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}],
            "envFrom": [{"prefix": "TEAM_", "configMapRef": {"name": "team-settings"}}],
            "volumeMounts": [{"name": "cache", "mountPath": "/cache"}, {"name": "models", "mountPath": "/models", "readOnly": True}],
        }],
    },
}
ALLOWS_RESEARCH = make_config(podTemplate={"allowedPriorityClasses": ["research-high"]}, images={"pullSecrets": ["ours"]})


def test_an_experts_additions_come_after_kubetunes_which_stay():
    plain = training_pod(config=ALLOWS_RESEARCH)
    pod = training_pod(EXPERT, config=ALLOWS_RESEARCH)
    spec, ours = pod["spec"], plain["spec"]
    assert pod["metadata"]["labels"] == {**plain["metadata"]["labels"], "team": "nlp"}
    assert pod["metadata"]["annotations"].keys() == {*plain["metadata"]["annotations"], *EXPERT["metadata"]["annotations"]}
    assert EXPERT["metadata"]["annotations"].items() <= pod["metadata"]["annotations"].items()
    assert spec["affinity"] == EXPERT["spec"]["affinity"]
    assert spec["nodeSelector"] == ours["nodeSelector"] == {"kubetune.io/pool": "h100"}  # the pool stays
    assert spec["tolerations"] == [*ours["tolerations"], *EXPERT["spec"]["tolerations"]]
    assert spec["topologySpreadConstraints"] == EXPERT["spec"]["topologySpreadConstraints"]
    assert spec["priorityClassName"] == "research-high"
    assert spec["imagePullSecrets"] == [{"name": "ours"}, {"name": "team-registry"}]
    assert spec["volumes"][: len(ours["volumes"])] == ours["volumes"]
    assert [v["name"] for v in spec["volumes"][len(ours["volumes"]):]] == ["cache", "models", "tls"]
    [trainer], [kubetunes] = spec["containers"], ours["containers"]
    assert trainer["env"] == [*kubetunes["env"], *EXPERT["spec"]["containers"][0]["env"]]
    # Among envFrom sources the last wins: Kubetune's credentials Secret goes last.
    assert trainer["envFrom"] == [{"prefix": "TEAM_", "configMapRef": {"name": "team-settings"}}, *kubetunes["envFrom"]]
    assert trainer["volumeMounts"] == [*kubetunes["volumeMounts"], *EXPERT["spec"]["containers"][0]["volumeMounts"]]
    for field in ("securityContext", "serviceAccountName", "automountServiceAccountToken", "subdomain", "restartPolicy",
                  "terminationGracePeriodSeconds"):
        assert spec[field] == ours[field]
    for field in ("image", "command", "resources", "securityContext"):
        assert trainer[field] == kubetunes[field]


def test_every_allowed_pod_field_reaches_the_pod():
    allowed, _ = _fields(PodSpec)
    assert allowed <= set(training_pod(EXPERT, config=ALLOWS_RESEARCH)["spec"])
    assert set(EXPERT["spec"]) == allowed


@pytest.mark.parametrize("allowed, expected", [
    ([], "must be unset: this operator allows no priority class"),
    (["batch-low"], "must be one of ['batch-low']"),
])
def test_a_priority_class_must_be_one_the_operator_allows(allowed, expected):
    config = make_config(podTemplate={"allowedPriorityClasses": allowed})
    spec = FineTuneRunSpec.parse(make_spec(compute={"pool": "h100", "podTemplate": {"spec": {"priorityClassName": "research-high"}}}))
    with pytest.raises(SpecError, match=rf"{PREFIX}.spec.priorityClassName: {expected}".replace("[", r"\[").replace("]", r"\]")):
        check_pod_template(spec, config)
    with pytest.raises(SpecError):  # the builder refuses it too: no such pod even if the check was skipped
        build_training_job(REF, spec, config, resolve_placement(spec.compute, config), 0)
    check_pod_template(spec, make_config(podTemplate={"allowedPriorityClasses": ["research-high"]}))


def test_the_operator_configuration_never_allows_system_priority_classes(tmp_path):
    config = make_config().model_dump(by_alias=True, mode="json", exclude_none=True)
    config["podTemplate"] = {"allowedPriorityClasses": ["system-node-critical"]}
    path = tmp_path / "operator.yaml"
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="config.podTemplate.allowedPriorityClasses: must not be a system priority class"):
        OperatorConfig.load(path)


def _rules(node: dict) -> dict[str, str]:
    return {r.get("fieldPath", ""): r["message"] for r in node.get("x-kubernetes-validations", [])}


def test_the_crd_refuses_the_same_fields_naming_them():
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    template = spec["properties"]["compute"]["properties"]["podTemplate"]
    pod = template["properties"]["spec"]
    _, refused = _fields(PodSpec)
    rules = _rules(pod)
    assert {path.removeprefix(".") for path in rules if path} == refused
    assert rules[".initContainers"].startswith("initContainers is not allowed in a pod template: the training pods run only")
    container = pod["properties"]["containers"]["items"]
    assert {p.removeprefix(".") for p in _rules(container)} == _fields(Container)[1]
    assert pod["properties"]["containers"]["maxItems"] == 1
    assert container["properties"]["name"]["enum"] == ["trainer"]
    volume = pod["properties"]["volumes"]["items"]
    assert ".hostPath" in _rules(volume) and ".name" in _rules(volume)
    env = container["properties"]["env"]["items"]
    assert _rules(env)[".name"].startswith("env name must not be a variable Kubetune sets")


def test_kubetunes_labels_win_even_over_a_template_that_skipped_validation():
    unchecked = PodTemplate.model_construct(metadata=TemplateMetadata.model_construct(labels={"kubetune.io/run": "other", "x": "y"}))
    merged = merge_pod_template(training_pod(), unchecked)
    assert merged["metadata"]["labels"]["kubetune.io/run"] == "chat" and merged["metadata"]["labels"]["x"] == "y"


def test_a_priority_class_the_operator_does_not_allow_fails_the_run_before_any_job():
    from helpers.operator_factories import NOW, make_run
    from kubetune.operator import conditions as c
    from kubetune.operator.reconcile import Observed, decide

    template = {"spec": {"priorityClassName": "research-high"}}
    spec = make_spec(compute={"pool": "h100", "gpus": 8, "podTemplate": template})
    refused = decide(make_run(spec), Observed(), make_config(), NOW)
    assert refused.create == [] and refused.status.phase == "Failed"
    failed = c.find(refused.status.conditions, c.FAILED)
    assert failed.reason == c.INVALID_SPEC and "priorityClassName" in failed.message
    allowed = decide(make_run(spec), Observed(), ALLOWS_RESEARCH, NOW)
    assert allowed.status.phase != "Failed"
