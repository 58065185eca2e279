"""Every pvc:// input of a run (model folder, train and eval data, custom weights) is mounted read-only at
/mnt/data/<claim> in the validation pod and in every training pod, where the trainer and `kubetune
validate-data` read it (kubetune.api.locations), on the real control plane."""

import pytest
from kubernetes import client as k8s

from helpers import cluster
from helpers.operator_driver import example_run

pytestmark = pytest.mark.cluster

CLAIMS = ("models", "datasets", "weights")


@pytest.fixture
def input_claims(kube_api, namespace):
    """Bound claims for the inputs (the test cluster has no provisioner: each gets a pre-bound volume)."""
    core = k8s.CoreV1Api(kube_api)
    volumes = [cluster.prebound_volume(namespace, claim) for claim in CLAIMS]
    for claim, volume in zip(CLAIMS, volumes):
        core.create_persistent_volume(volume)
        core.create_namespaced_persistent_volume_claim(namespace, {
            "metadata": {"name": claim},
            "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": volume["metadata"]["name"],
                     "resources": {"requests": {"storage": "1Ti"}}},
        })
    yield CLAIMS
    for volume in volumes:
        core.delete_persistent_volume(volume["metadata"]["name"])


def mounted_claims(pod_spec) -> dict[str, dict[str, str]]:
    """{claim: {container: mount path}} for the read-only claim volumes of a pod spec."""
    by_volume = {v.name: v.persistent_volume_claim.claim_name for v in pod_spec.volumes
                 if v.persistent_volume_claim and v.persistent_volume_claim.read_only}
    found: dict[str, dict[str, str]] = {}
    for container in pod_spec.containers:
        for mount in container.volume_mounts or []:
            if mount.name in by_volume and mount.read_only:
                found.setdefault(by_volume[mount.name], {})[container.name] = mount.mount_path
    return found


def test_pvc_model_data_and_custom_weights_are_mounted_in_validation_and_training_pods(runs, input_claims):
    name = runs.apply(example_run(
        "from-claims",
        model="pvc://models/llama-3b",
        trainDataPath="pvc://datasets/chat/train.jsonl",
        evalDataPath="pvc://datasets/chat/eval.jsonl",
        customWeightsPath="pvc://weights/earlier/checkpoints/latest",
        validateInputs=True,
    ))
    expected = {claim: f"/mnt/data/{claim}" for claim in CLAIMS}

    [validation] = runs.wait_for("the validation pod", lambda: runs.pods(f"{name}-validate") or None)
    containers = {c.name: c for c in validation.spec.containers}
    assert set(containers) == {"validate-train", "validate-eval", "validate-weights", "plan-memory"}  # a folder on h100
    for claim, paths in mounted_claims(validation.spec).items():
        assert paths == {c: expected[claim] for c in containers}, claim
    assert set(mounted_claims(validation.spec)) == set(CLAIMS)
    command = containers["validate-train"].command
    assert command[command.index("--model") + 1] == "pvc://models/llama-3b"

    runs.finish_pods(f"{name}-validate", 0)
    pods = runs.wait_pods_running(f"{name}-train-0", 2)
    for pod in pods:
        assert mounted_claims(pod.spec) == {claim: {"trainer": expected[claim]} for claim in CLAIMS}
