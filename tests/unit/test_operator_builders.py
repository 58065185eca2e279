import pytest

from helpers.operator_factories import REF, make_config, make_spec, trainer_config_of
from kubetune.api.errors import SpecError
from kubetune.api.pod_template import PodTemplate
from kubetune.api.spec import FineTuneRunSpec
from kubetune.operator.builders.access import build_report_config_map, build_role, build_role_binding, build_service_account
from kubetune.operator.builders.storage import build_checkpoint_claim
from kubetune.operator.builders.trainer_config import build_trainer_config, resolve_custom_weights
from kubetune.operator.builders.kueue import queue_name
from kubetune.operator.builders.training import build_training_job, build_workers_service, merge_pod_template
from kubetune.operator.builders.validation import build_validation_job
from kubetune.operator.placement import resolve_placement

CONFIG = make_config()


def training_job(attempt=0, queue=None, **spec_overrides):
    spec = FineTuneRunSpec.parse(make_spec(**spec_overrides))
    return build_training_job(REF, spec, CONFIG, resolve_placement(spec.compute, CONFIG), attempt, queue)


def trainer_container(job):
    [container] = job["spec"]["template"]["spec"]["containers"]
    return container


class TestTrainingJob:
    def test_indexed_job_one_pod_per_node_and_operator_owned_retries(self):
        spec = training_job()["spec"]
        assert (spec["completionMode"], spec["completions"], spec["parallelism"], spec["backoffLimit"]) == ("Indexed", 2, 2, 0)
        actions = {r["action"] for r in spec["podFailurePolicy"]["rules"]}
        assert actions == {"FailJob"}
        assert spec["template"]["spec"]["restartPolicy"] == "Never"

    def test_the_pools_grace_period_is_the_trainers_time_to_checkpoint_on_sigterm(self):
        config = make_config(pools={"h100": {"gpusPerNode": 8, "terminationGracePeriodSeconds": 120}}, defaults={"pool": "h100"})
        spec = FineTuneRunSpec.parse(make_spec())
        job = build_training_job(REF, spec, config, resolve_placement(spec.compute, config), 0)
        pod = job["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] == 120
        # torchrun waits this long for its workers after SIGTERM before killing them (30 s unless told).
        assert {"name": "TORCH_ELASTIC_SHUTDOWN_TIMEOUT", "value": "110"} in trainer_container(job)["env"]
        template = {"spec": {"terminationGracePeriodSeconds": 1}}
        with pytest.raises(SpecError, match=r"spec.compute.podTemplate.spec.terminationGracePeriodSeconds: is not allowed"):
            FineTuneRunSpec.parse(make_spec(compute={"podTemplate": template}))

    def test_the_collective_timeout_reaches_the_trainer(self):
        config = make_config(defaults={"pool": "h100", "collectiveTimeoutSeconds": 600})
        trainer = build_trainer_config(REF, FineTuneRunSpec.parse(make_spec()), config, 0)
        assert trainer.training.collective_timeout_seconds == 600

    @pytest.mark.parametrize("attempt", [0, 3])
    def test_deterministic_name_and_torchrun_rendezvous_on_pod_zero(self, attempt):
        job = training_job(attempt)
        assert job["metadata"]["name"] == f"chat-train-{attempt}"
        pod = job["spec"]["template"]["spec"]
        assert pod["subdomain"] == "chat-workers"
        command = trainer_container(job)["command"]
        assert command[:5] == [
            "torchrun",
            "--nnodes=2",
            "--nproc-per-node=8",
            "--node-rank=$(JOB_COMPLETION_INDEX)",
            f"--master-addr=chat-train-{attempt}-0.chat-workers",
        ]
        assert command[-3:] == ["kubetune.trainer", "--config", "/etc/kubetune/trainer.yaml"]

    def test_one_node_rendezvouses_inside_its_pod_without_a_service(self):
        job = training_job(compute={"pool": "h100", "gpus": 8})
        assert "subdomain" not in job["spec"]["template"]["spec"]
        command = trainer_container(job)["command"]
        assert command[1] == "--nnodes=1" and "--master-addr=127.0.0.1" in command

    def test_pool_placement_and_gpu_requests(self):
        job = training_job()
        pod = job["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"kubetune.io/pool": "h100"}
        assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        resources = trainer_container(job)["resources"]
        assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "8"
        assert resources["requests"]["cpu"] == "90"

    def test_restricted_security_and_token_only_in_training_pods(self):
        job = training_job()
        pod = job["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 1000
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        security = trainer_container(job)["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["readOnlyRootFilesystem"] is True
        assert pod["serviceAccountName"] == "chat-trainer" and pod["automountServiceAccountToken"] is True

    def test_volumes_shared_memory_checkpoints_config_and_pvc_data(self):
        job = training_job(trainDataPath="pvc://datasets/chat/train.jsonl", evalDataPath="pvc://datasets/chat/eval.jsonl")
        volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
        assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Gi"}
        assert volumes["checkpoints"]["persistentVolumeClaim"] == {"claimName": "kubetune-checkpoints"}
        # the trainer's configuration is the pod's own annotation, mounted by the downward API
        annotation = "metadata.annotations['kubetune.io/trainer-config']"
        assert volumes["trainer-config"] == {
            "name": "trainer-config",
            "downwardAPI": {"items": [{"path": "trainer.yaml", "fieldRef": {"fieldPath": annotation}}]},
        }
        assert volumes["data-0"]["persistentVolumeClaim"] == {"claimName": "datasets", "readOnly": True}
        mounts = {m["name"]: m for m in trainer_container(job)["volumeMounts"]}
        assert mounts["data-0"] == {"name": "data-0", "mountPath": "/mnt/data/datasets", "readOnly": True}
        assert mounts["checkpoints"]["mountPath"] == "/checkpoints"

    def test_secrets_only_by_reference(self):
        assert trainer_container(training_job())["envFrom"] == [{"secretRef": {"name": "mlflow-credentials"}}]

    @pytest.mark.parametrize("queue, suspended", [(None, False), ("team-queue", True)])
    def test_kueue_label_and_suspension(self, queue, suspended):
        job = training_job(queue=queue)
        assert job["spec"]["suspend"] is suspended
        assert job["metadata"]["labels"].get("kueue.x-k8s.io/queue-name") == queue

    def test_owned_by_the_run(self):
        [owner] = training_job()["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("FineTuneRun", "chat", "uid-1", True)


@pytest.mark.parametrize(
    "labels, configured, expected",
    [({}, None, None), ({}, "default-q", "default-q"), ({"kueue.x-k8s.io/queue-name": "mine"}, "default-q", "mine")],
)
def test_queue_name_prefers_the_runs_label(labels, configured, expected):
    assert queue_name(labels, make_config(kueue={"queueName": configured})) == expected


def test_pod_template_override_adds_but_cannot_weaken_security():
    """The allow-list itself is tests/unit/test_pod_template.py; here: additions join, Kubetune's fields stay."""
    base = training_job()["spec"]["template"]
    override = PodTemplate.model_validate({
        "metadata": {"annotations": {"team": "nlp"}},
        "spec": {
            "volumes": [{"name": "extra", "emptyDir": {}}],
            "containers": [{"name": "trainer", "env": [{"name": "NCCL_DEBUG", "value": "INFO"}]}],
        },
    })
    merged = merge_pod_template(base, override)
    assert merged["metadata"]["annotations"] == {**base["metadata"]["annotations"], "team": "nlp"}
    assert merged["spec"]["securityContext"]["runAsUser"] == 1000
    assert merged["spec"]["volumes"][-1] == {"name": "extra", "emptyDir": {}}
    assert {"name": "NCCL_DEBUG", "value": "INFO"} in merged["spec"]["containers"][0]["env"]


def test_workers_service_is_headless_and_publishes_not_ready_pods():
    spec = build_workers_service(REF)["spec"]
    assert spec["clusterIP"] == "None" and spec["publishNotReadyAddresses"] is True
    assert spec["selector"] == {"kubetune.io/run": "chat", "kubetune.io/component": "trainer"}


@pytest.mark.parametrize("attempt", [0, 3])
def test_workers_service_selects_every_training_pod_of_every_attempt(attempt):
    """torchrun's rendezvous host resolves only if the Service selects the pods the Job makes."""
    selector = build_workers_service(REF)["spec"]["selector"]
    job = training_job(attempt=attempt)
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert job["spec"]["template"]["spec"]["subdomain"] == "chat-workers"


def test_trainer_role_allows_only_patching_its_own_report():
    """No FineTuneRun permission at all: the phase and the registered model are the operator's alone."""
    [rule] = build_role(REF)["rules"]
    assert rule == {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["chat-report"],
        "verbs": ["patch"],
    }
    report = build_report_config_map(REF)
    assert report["metadata"]["name"] == "chat-report" and "data" not in report  # the trainer fills it
    assert report["metadata"]["ownerReferences"][0]["uid"] == REF.uid
    binding = build_role_binding(REF)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "chat-trainer", "namespace": "team-a"}]
    assert build_service_account(REF)["automountServiceAccountToken"] is False


class TestValidationJob:
    def test_one_container_per_input_on_the_validation_pool_without_gpus(self):
        spec = FineTuneRunSpec.parse(make_spec(evalDataPath="s3://bucket/eval.jsonl", taskType="INSTRUCTION_FINETUNE"))
        job = build_validation_job(REF, spec, CONFIG)
        assert job["metadata"]["name"] == "chat-validate"
        pod = job["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"kubetune.io/pool": "cpu"}
        assert pod["automountServiceAccountToken"] is False
        commands = [c["command"] for c in pod["containers"]]
        assert commands == [
            ["kubetune", "validate-data", path, "--task-type", "INSTRUCTION_FINETUNE", "--model", spec.model]
            for path in ("s3://bucket/train.jsonl", "s3://bucket/eval.jsonl")
        ]
        assert all("nvidia.com/gpu" not in str(c["resources"]) for c in pod["containers"])


class TestTrainerConfig:
    def test_each_attempts_job_carries_a_loadable_trainer_config(self):
        loaded = trainer_config_of(training_job(attempt=2, customWeightsPath="earlier-run"))
        assert (loaded.run.name, loaded.run.namespace, loaded.attempt) == ("chat", "team-a", 2)
        assert (loaded.progress.kind, loaded.progress.config_map) == ("kubernetes", "chat-report")
        assert loaded.spec.custom_weights_path == "/checkpoints/earlier-run/checkpoints/latest"
        assert loaded.spec.experiment_path == "/Users/team-a/chat"
        assert str(loaded.run_checkpoint_dir) == "/checkpoints/chat/checkpoints"

    @pytest.mark.parametrize(
        "path, expected",
        [
            ("run-1", "/ck/run-1/checkpoints/latest"),
            ("/ck/run-1/checkpoints/ep2-ba300", "/ck/run-1/checkpoints/ep2-ba300"),
            ("s3://bucket/weights", "s3://bucket/weights"),
            (None, None),
        ],
    )
    def test_custom_weights_run_names_resolve_to_that_runs_latest(self, path, expected):
        assert resolve_custom_weights(path, "/ck") == expected


def test_checkpoint_claim_is_not_owned_by_any_run():
    claim = build_checkpoint_claim("team-a", CONFIG)
    assert "ownerReferences" not in claim["metadata"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


@pytest.mark.parametrize("weights, reads_checkpoints", [
    ("earlier-run", True), ("/checkpoints/earlier/checkpoints/ep1-ba5", True), ("pvc://weights/run/checkpoints/latest", False),
])
def test_validation_checks_custom_weights_before_any_gpu(weights, reads_checkpoints):
    spec = FineTuneRunSpec.parse(make_spec(customWeightsPath=weights))
    pod = build_validation_job(REF, spec, CONFIG)["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    command = containers["validate-weights"]["command"]
    assert command[:2] == ["kubetune", "validate-weights"] and command[-2:] == ["--checkpoint-root", "/checkpoints"]
    assert command[2] == ("/checkpoints/earlier-run/checkpoints/latest" if weights == "earlier-run" else weights)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert ("checkpoints" in volumes) is reads_checkpoints
    if reads_checkpoints:
        assert volumes["checkpoints"]["persistentVolumeClaim"] == {"claimName": "kubetune-checkpoints", "readOnly": True}
        mount = next(m for m in containers["validate-weights"]["volumeMounts"] if m["name"] == "checkpoints")
        assert mount == {"name": "checkpoints", "mountPath": "/checkpoints", "readOnly": True}


def test_validation_asks_the_configured_mlflow_server_about_a_runs_reference_for_the_runs_namespace():
    config = CONFIG.model_copy(update={"mlflow": CONFIG.mlflow.model_copy(update={"tracking_uri": "http://mlflow:5000"})})
    spec = FineTuneRunSpec.parse(make_spec(customWeightsPath="runs:/0a1b2c/checkpoints/ep1-ba5"))
    pod = build_validation_job(REF, spec, config)["spec"]["template"]["spec"]
    command = next(c["command"] for c in pod["containers"] if c["name"] == "validate-weights")
    assert command == ["kubetune", "validate-weights", "runs:/0a1b2c/checkpoints/ep1-ba5", "--checkpoint-root", "/checkpoints",
                       "--namespace", REF.namespace, "--mlflow-tracking-uri", "http://mlflow:5000"]
    assert any(v["name"] == "checkpoints" for v in pod["volumes"])  # the referenced run's folder is on that volume


def test_no_weights_container_without_custom_weights():
    pod = build_validation_job(REF, FineTuneRunSpec.parse(make_spec()), CONFIG)["spec"]["template"]["spec"]
    assert "validate-weights" not in [c["name"] for c in pod["containers"]]


class TestHuggingFaceDatasetMirror:
    CONFIG = make_config(huggingfaceDatasets={"mirror": "pvc://hf-mirror/datasets", "offline": True})

    def pods(self, train_data_path):
        spec = FineTuneRunSpec.parse(make_spec(trainDataPath=train_data_path))
        validation = build_validation_job(REF, spec, self.CONFIG)["spec"]["template"]["spec"]
        training = build_training_job(REF, spec, self.CONFIG, resolve_placement(spec.compute, self.CONFIG), 0)["spec"]["template"]["spec"]
        return spec, validation, training

    def test_a_hub_dataset_is_read_from_the_mirror_mounted_read_only_and_nothing_asks_the_hub(self):
        spec, validation, training = self.pods("acme/chats/train")
        for pod in (validation, training):
            [volume] = [v for v in pod["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == "hf-mirror"]
            assert volume["persistentVolumeClaim"]["readOnly"] is True
            container = pod["containers"][0]
            assert {"name": "HF_DATASETS_OFFLINE", "value": "1"} in container["env"]
            assert {"name": volume["name"], "mountPath": "/mnt/data/hf-mirror", "readOnly": True} in container["volumeMounts"]
        command = next(c["command"] for c in validation["containers"] if c["name"] == "validate-train")
        assert command[-2:] == ["--dataset-root", "/mnt/data/hf-mirror/datasets"]
        trainer = build_trainer_config(REF, spec, self.CONFIG, 0)
        assert str(trainer.paths.dataset_root) == "/mnt/data/hf-mirror/datasets"

    def test_runs_that_read_no_hub_dataset_do_not_mount_the_mirror(self):
        _, validation, training = self.pods("pvc://datasets/train.jsonl")
        for pod in (validation, training):
            assert all(v.get("persistentVolumeClaim", {}).get("claimName") != "hf-mirror" for v in pod["volumes"])
        assert "--dataset-root" not in next(c["command"] for c in validation["containers"] if c["name"] == "validate-train")

    def test_the_mirror_must_be_a_claim(self):
        with pytest.raises(ValueError, match="must be pvc://CLAIM/path"):
            make_config(huggingfaceDatasets={"mirror": "/data/hf"})
