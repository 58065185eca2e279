"""The contract both sides import (kubetune.api): locations and their mounts, data rules, the checkpoint
layout, MLflow tags, and the one way every process finds its API server (kubetune.kube_client)."""

from pathlib import Path

import pytest
import yaml

from helpers.operator_factories import REF, make_config, make_spec
from kubetune import kube_client
from kubetune.api import checkpoints, data_rules, locations
from kubetune.api.mlflow_tags import run_filter, run_tags
from kubetune.api.spec import FineTuneRunSpec
from kubetune.operator.builders.training import build_training_job
from kubetune.operator.builders.validation import build_validation_job
from kubetune.operator.placement import resolve_placement


@pytest.mark.parametrize("value, kind, claim, local", [
    ("meta-llama/Llama-3.2-1B-Instruct", "hub_model", None, None),
    ("hf://acme/tiny", "hub_model", None, None),
    ("pvc://models/llama/3b", "pvc", "models", "/mnt/data/models/llama/3b"),
    ("/models/tiny", "local", None, "/models/tiny"),
    ("file:///models/tiny", "local", None, "/models/tiny"),
    ("s3://bucket/models/tiny", "object_store", None, None),
])
def test_model_forms(value, kind, claim, local):
    location = locations.parse_model(value)
    assert (location.kind, location.claim) == (kind, claim)
    assert location.local_path() == (Path(local) if local else None)


@pytest.mark.parametrize("value", ["acme/unknown-model", "llama3", "ftp://x/y", "pvc://Bad_Claim/x"])
def test_model_forms_refused(value):
    with pytest.raises(ValueError):
        locations.parse_model(value)


@pytest.mark.parametrize("value, kind, resolved", [
    ("earlier-run", "run_name", "/ck/earlier-run/checkpoints/latest"),
    ("pvc://weights/run/checkpoints/ep1-ba5", "pvc", "/mnt/data/weights/run/checkpoints/ep1-ba5"),
    ("/ck/run/checkpoints/latest", "local", "/ck/run/checkpoints/latest"),
    ("runs/x/checkpoints", "local", "runs/x/checkpoints"),
])
def test_custom_weights_forms(value, kind, resolved):
    assert locations.parse_custom_weights(value).kind == kind
    assert checkpoints.custom_weights_path(value, "/ck") == Path(resolved)


@pytest.mark.parametrize("value, run_id, name", [
    ("runs:/0a1b2c", "0a1b2c", None),
    ("runs:/0a1b2c/checkpoints", "0a1b2c", None),
    ("runs:/0a1b2c/checkpoints/latest", "0a1b2c", None),
    ("runs:/0a1b2c/checkpoints/ep2-ba300", "0a1b2c", "ep2-ba300"),
])
def test_mlflow_checkpoint_references(value, run_id, name):
    location = locations.parse_custom_weights(value)
    assert (location.kind, location.run_id, location.name) == ("mlflow_run", run_id, name)


@pytest.mark.parametrize("value", ["runs:/", "runs:/0a1b/model", "runs:/0a1b/checkpoints/ep2", "runs:/a b"])
def test_mlflow_references_to_anything_but_a_checkpoint_are_refused_with_the_forms(value):
    with pytest.raises(ValueError, match=r"runs:/RUN_ID/checkpoints/ep\{E\}-ba\{B\}"):
        locations.parse_custom_weights(value)


def test_object_store_custom_weights_that_cannot_be_read_are_the_users_error_naming_the_field(monkeypatch):
    """Read through fsspec (tests/trainer/test_object_store_inputs.py reads them from a real S3 server); a store
    that does not answer is a CheckpointNotFoundError naming the field and the URI, not a traceback."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    from s3fs import S3FileSystem

    # fsspec keeps one client per set of arguments and process, made for the environment it was first made in
    # (another test's S3 server): this test's environment needs a client of its own.
    S3FileSystem.clear_instance_cache()
    try:
        with pytest.raises(checkpoints.CheckpointNotFoundError, match="spec.customWeightsPath: s3://unreachable/ckpt: cannot read it"):
            checkpoints.custom_weights_path("s3://unreachable/ckpt", "/ck")
    finally:
        S3FileSystem.clear_instance_cache()


def test_every_pvc_input_is_one_read_only_mount_in_validation_and_training_pods():
    """The bug: pvc:// model and customWeightsPath were never mounted, only the data paths."""
    spec = FineTuneRunSpec.parse(make_spec(
        model="pvc://models/llama", trainDataPath="pvc://datasets/train.jsonl", evalDataPath="pvc://datasets/eval.jsonl",
        customWeightsPath="pvc://weights/earlier/checkpoints/latest",
    ))
    config = make_config()
    assert locations.claims(*spec.input_locations().values()) == ["datasets", "models", "weights"]
    training = build_training_job(REF, spec, config, resolve_placement(spec.compute, config), 0)["spec"]["template"]["spec"]
    validation = build_validation_job(REF, spec, config)["spec"]["template"]["spec"]
    for pod in (training, validation):
        claims = {v["name"]: v["persistentVolumeClaim"] for v in pod["volumes"] if v["name"].startswith("data-")}
        assert sorted(c["claimName"] for c in claims.values()) == ["datasets", "models", "weights"]
        assert all(c["readOnly"] for c in claims.values())
        for container in pod["containers"]:
            mounts = {m["mountPath"] for m in container["volumeMounts"] if m["name"] in claims}
            assert mounts == {"/mnt/data/datasets", "/mnt/data/models", "/mnt/data/weights"}


@pytest.mark.parametrize("model, template_accepts, expected", [
    ("meta-llama/Llama-3.2-1B-Instruct", None, True),
    ("mistralai/Mistral-7B-Instruct-v0.2", None, False),
    ("mistralai/Mistral-7B-Instruct-v0.2", True, False),  # the table's no is final
    ("/models/byo", None, True),
    ("/models/byo", False, False),  # a folder's template can refuse it
    ("meta-llama/Llama-3.2-1B-Instruct", False, False),
])
def test_one_system_role_rule(model, template_accepts, expected):
    assert data_rules.accepts_system_role(model, template_accepts) is expected


@pytest.mark.parametrize("given, model, folder_max, expected", [
    (None, "meta-llama/Llama-3.2-1B-Instruct", None, 8192),
    (None, "mistralai/Mistral-7B-v0.1", None, 8192),
    (None, "/models/byo", 2048, 2048),
    (None, "/models/byo", None, 8192),
    (512, "/models/byo", 2048, 512),
])
def test_one_context_length_default(given, model, folder_max, expected):
    assert data_rules.resolve_context_length(given, model, folder_max) == expected
    if given is None:
        assert FineTuneRunSpec.parse(make_spec(model=model)).effective_context_length(folder_max) == expected


def test_context_longer_than_the_models_is_refused_for_folders_too():
    with pytest.raises(ValueError, match="larger than /models/byo's maximum 2048"):
        data_rules.resolve_context_length(4096, "/models/byo", 2048)


def test_checkpoint_layout(tmp_path):
    run_dir = checkpoints.run_checkpoint_dir(tmp_path, "r")
    assert run_dir == tmp_path / "r" / "checkpoints"
    (run_dir / "ep1-ba5").mkdir(parents=True)
    assert checkpoints.latest_checkpoint(run_dir) is None and checkpoints.list_checkpoints(run_dir) == []
    checkpoints.mark_complete(run_dir / "ep1-ba5")
    checkpoints.point_latest(run_dir, "ep1-ba5")
    assert checkpoints.resolve_custom_weights("r", tmp_path) == run_dir / "ep1-ba5"
    assert checkpoints.parse_checkpoint_name("ep1-ba5") == (1, 5) and checkpoints.checkpoint_name(1, 5) == "ep1-ba5"


def test_mlflow_tags_and_their_filter():
    tags = run_tags("team-a", "chat", "uid-'1")
    assert tags == {"kubetune.run": "team-a/chat", "kubetune.run_uid": "uid-'1"}
    assert run_filter(tags) == "tags.`kubetune.run` = 'team-a/chat' and tags.`kubetune.run_uid` = 'uid-\\'1'"


def _kubeconfig(path: Path, server: str, namespace: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": namespace}}],
    }))
    return path


def test_one_precedence_for_the_api_server(tmp_path, monkeypatch):
    explicit = _kubeconfig(tmp_path / "explicit", "https://explicit:6443", "team-a")
    environment = _kubeconfig(tmp_path / "environment", "https://environment:6443", "team-b")
    monkeypatch.setenv("KUBECONFIG", str(environment))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")  # a kubeconfig file still wins, as for kubectl
    connection = kube_client.connect(explicit)
    assert (connection.api_client.configuration.host, connection.namespace) == ("https://explicit:6443", "team-a")
    connection = kube_client.connect()
    assert (connection.api_client.configuration.host, connection.namespace) == ("https://environment:6443", "team-b")
    with pytest.raises(kube_client.KubeconfigError, match="does not exist"):
        kube_client.connect(tmp_path / "missing")


def test_no_kubeconfig_and_no_cluster_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(kube_client.KubeconfigError, match="not running inside a cluster"):
        kube_client.connect()


def test_object_store_custom_weights_are_accepted_and_an_empty_hub_id_is_refused_at_admission():
    from kubetune.api.errors import SpecError

    assert FineTuneRunSpec.parse(make_spec(customWeightsPath="s3://bucket/ckpt")).custom_weights_path == "s3://bucket/ckpt"
    with pytest.raises(SpecError, match="spec.model: must be a supported model"):
        FineTuneRunSpec.parse(make_spec(model="hf://"))


def test_a_bare_name_that_is_a_checkpoint_folder_here_is_that_folder(tmp_path, monkeypatch):
    """Local mode: `customWeightsPath: ep2-ba8` next to the manifest is that folder, not a run named so."""
    folder = tmp_path / "ep2-ba8"
    folder.mkdir()
    checkpoints.mark_complete(folder)
    monkeypatch.chdir(tmp_path)
    assert checkpoints.resolve_custom_weights("ep2-ba8", tmp_path / "runs").resolve() == folder
