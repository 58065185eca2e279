"""Databricks' Unity Catalog locations mapped by one model (kubetune.api.databricks_locations): the operator
configuration's `databricks` section and local mode's file. Mapped, every pod reads the mapped location;
unmapped, the run is refused at admission before anything is created, saying how to map it. Object-store
credentials reach the pods only as Secret references."""

import json

import pytest
import yaml

from helpers.operator_factories import NOW, make_config, make_run, make_spec, trainer_config_of
from kubetune.api.databricks_locations import DatabricksLocations, map_spec_locations, mapped_data_path
from kubetune.api.errors import SpecError
from kubetune.api.spec import FineTuneRunSpec
from kubetune.operator import conditions as c
from kubetune.operator.builders.common import RunRef
from kubetune.operator.builders.training import build_training_job
from kubetune.operator.builders.validation import build_validation_job
from kubetune.operator.config import ConfigError, OperatorConfig
from kubetune.operator.placement import resolve_placement
from kubetune.operator.reconcile import Observed, decide

MAPPING = {
    "volumes": {"main.default.chat": "pvc://datasets/chat", "main.raw.files": "s3://bucket/volumes/raw/"},
    "tables": {"main.default.chat_table": "s3://bucket/delta/chat_table"},
}
CONFIG = make_config(databricks=MAPPING)


@pytest.mark.parametrize("path,mapped", [
    ("dbfs:/Volumes/main/default/chat/train.jsonl", "pvc://datasets/chat/train.jsonl"),
    ("/Volumes/main/default/chat/train.jsonl", "pvc://datasets/chat/train.jsonl"),
    ("/Volumes/main/default/chat", "pvc://datasets/chat"),
    ("dbfs:/Volumes/main/raw/files/a/b.jsonl", "s3://bucket/volumes/raw/a/b.jsonl"),
    ("main.default.chat_table", "s3://bucket/delta/chat_table"),
    ("s3://other/train.jsonl", "s3://other/train.jsonl"),
    ("org/dataset/train", "org/dataset/train"),
])
def test_every_databricks_form_maps_to_its_configured_location(path, mapped):
    assert mapped_data_path(path, DatabricksLocations.model_validate(MAPPING)) == mapped


@pytest.mark.parametrize("path,how", [
    ("dbfs:/Volumes/main/default/other/train.jsonl", r"databricks\.volumes \(main\.default\.other: pvc://CLAIM/prefix"),
    ("/Volumes/main/default/other/train.jsonl", r"databricks\.volumes \(main\.default\.other:"),
    ("main.default.other_table", r"databricks\.tables \(main\.default\.other_table: the Delta table's folder"),
])
def test_an_unmapped_form_is_refused_saying_how_to_map_it(path, how):
    with pytest.raises(ValueError, match=how):
        mapped_data_path(path, DatabricksLocations.model_validate(MAPPING))
    with pytest.raises(ValueError, match="KUBETUNE_DATABRICKS_LOCATIONS"):
        mapped_data_path(path, None)


@pytest.mark.parametrize("mapping,problem", [
    ({"volumes": {"main.default": "pvc://datasets/x"}}, "three-part Unity Catalog name"),
    ({"tables": {"main.default.t": "org/dataset/train"}}, "must be pvc://CLAIM/path, an object-store URI or a local path"),
    ({"volumes": {"main.default.v": "s3://key:secret@bucket/x"}}, "credentials"),
    ({"catalogs": {}}, "config.databricks.catalogs"),
])
def test_the_operator_refuses_a_bad_mapping_at_start(tmp_path, mapping, problem):
    config = make_config().model_dump(by_alias=True, exclude_none=True, mode="json")
    path = tmp_path / "operator.yaml"
    path.write_text(yaml.safe_dump({**config, "databricks": mapping}))
    with pytest.raises(ConfigError, match=problem):
        OperatorConfig.load(path)


def test_an_unmapped_volume_fails_the_run_at_admission_creating_nothing():
    run = make_run(make_spec(trainDataPath="/Volumes/main/default/other/train.jsonl", evalDataPath="main.x.y"))
    plan = decide(run, Observed(), CONFIG, NOW)
    assert plan.status.phase == "Failed" and not plan.create
    assert c.find(plan.status.conditions, c.FAILED).reason == c.INVALID_SPEC
    assert "spec.trainDataPath" in plan.status.message and "databricks.volumes (main.default.other:" in plan.status.message
    assert "spec.evalDataPath" in plan.status.message and "databricks.tables (main.x.y:" in plan.status.message


def test_a_mapped_volume_and_table_are_what_the_validation_step_reads_and_mounts():
    run = make_run(make_spec(trainDataPath="dbfs:/Volumes/main/default/chat/train.jsonl", evalDataPath="main.default.chat_table"))
    plan = decide(run, Observed(), CONFIG, NOW)
    assert plan.status.phase == "Validating", plan.status.message
    (job,) = plan.create
    pod = job["spec"]["template"]["spec"]
    commands = {ct["name"]: ct["command"] for ct in pod["containers"]}
    assert commands["validate-train"][2] == "pvc://datasets/chat/train.jsonl"
    assert commands["validate-eval"][2] == "s3://bucket/delta/chat_table"
    assert {"name": "data-0", "persistentVolumeClaim": {"claimName": "datasets", "readOnly": True}} in pod["volumes"]


def test_the_trainer_config_carries_the_mapped_paths():
    run = make_run(make_spec(trainDataPath="/Volumes/main/default/chat/train.jsonl", validateInputs=False))
    plan = decide(run, Observed(), CONFIG, NOW)
    (job,) = [m for m in plan.create if m["kind"] == "Job"]
    trainer_config = trainer_config_of(job).dump()
    assert "pvc://datasets/chat/train.jsonl" in trainer_config
    assert "/Volumes/main" not in trainer_config


def test_a_manifest_with_databricks_forms_is_a_valid_spec_and_mapping_rewrites_only_data_paths():
    spec = FineTuneRunSpec.parse(make_spec(trainDataPath="/Volumes/main/default/chat/t.jsonl", evalDataPath="main.default.chat_table"))
    mapped = map_spec_locations(spec, DatabricksLocations.model_validate(MAPPING))
    assert (mapped.train_data_path, mapped.eval_data_path) == ("pvc://datasets/chat/t.jsonl", "s3://bucket/delta/chat_table")
    assert mapped.model_copy(update={"train_data_path": spec.train_data_path, "eval_data_path": spec.eval_data_path}) == spec
    with pytest.raises(SpecError, match="spec.trainDataPath"):
        map_spec_locations(spec, None)


def test_storage_credentials_reach_the_pods_as_secret_references_only():
    config = make_config(pools={
        **make_config().model_dump(by_alias=True, exclude_none=True, mode="json")["pools"],
        "cpu": {"nodeSelector": {"kubetune.io/pool": "cpu"}, "gpusPerNode": 0, "storageCredentialsSecret": "pool-s3"},
    })
    spec = FineTuneRunSpec.parse(make_spec(
        model="s3://bucket/models/tiny", customWeightsPath="s3://bucket/runs/a/checkpoints/latest",
        compute={"pool": "cpu", "gpus": 0}, storageCredentials={"secretName": "team-s3"},
    ))
    run = RunRef("chat", "team-a", "uid-1")
    validation = build_validation_job(run, spec, config)["spec"]["template"]["spec"]
    training = build_training_job(run, spec, config, resolve_placement(spec.compute, config), 0)["spec"]["template"]["spec"]
    for pod in (validation, training):
        for container in pod["containers"]:
            refs = [source["secretRef"]["name"] for source in container["envFrom"]]
            assert refs[:2] == ["pool-s3", "team-s3"], refs  # the run's after the pool's: its keys win
    rendered = json.dumps([validation, training])
    assert "AWS_" not in rendered and "secretKeyRef" not in rendered


def test_a_run_without_storage_credentials_gets_the_pools_or_none():
    spec = FineTuneRunSpec.parse(make_spec(compute={"pool": "cpu", "gpus": 0}))
    pod = build_validation_job(RunRef("chat", "team-a", "uid-1"), spec, make_config())["spec"]["template"]["spec"]
    assert all("pool-s3" not in json.dumps(ct.get("envFrom", [])) for ct in pod["containers"])
