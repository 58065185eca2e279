"""Databricks' run fields and helpers on a FineTuneRun read by the SDK, and Databricks' path forms classified."""

import copy
import pickle
from datetime import datetime, timedelta, timezone

import pytest

from helpers.run_objects import make_run
from kubetune.api.locations import classify_data_path, databricks_form, parse_custom_weights, parse_data_path
from kubetune.api.progress import CheckpointRef
from kubetune.sdk.databricks_types import CheckpointPath, ObjectList, TrainConfig
from kubetune.sdk.run import TrainingRun
from kubetune.sdk.status import RunStatus
from kubetune.sdk.timeutil import format_eta

CHECKPOINTS = [
    {"name": "ep1-ba10", "path": "/checkpoints/r/checkpoints/ep1-ba10", "step": 10, "epoch": 1},
    {"name": "ep2-ba20", "path": "/checkpoints/r/checkpoints/ep2-ba20", "step": 20, "epoch": 2},
]


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_run_fields_databricks_has():
    eta = datetime.now(timezone.utc) + timedelta(minutes=30, seconds=30)
    run = TrainingRun.from_resource(make_run(
        "r", phase="Running", experimentPath="/Users/team/exp", learningRate="1e-05",
        events=[("STARTED", "2025-01-01T00:01:00Z", ""), ("TRAIN_UPDATED", "2025-01-01T00:02:00Z", "x")],
        status={"checkpoints": CHECKPOINTS, "progress": {"step": 20, "percent": 42, "eta": iso(eta)},
                "mlflow": {"experimentPath": "/Shared/renamed", "experimentId": "3"}},
    ))
    assert run.save_folder == "/checkpoints/r/checkpoints"
    assert run.formatted_eta == "30min"
    assert run.run_progress == "RUNNING ■■■■□□□□□□(42%)"
    assert run.experiment_path == "/Shared/renamed"  # the operator's record wins over what was submitted
    assert run.submitted_experiment_path == "/Users/team/exp"
    assert run.formatted_events.split("<br>")[0] == "<nobr>CREATED 2025-01-01 00:00:00+00:00</nobr>"
    config = run.submitted_config
    assert isinstance(config, TrainConfig)
    assert (config.model, config.learning_rate, config.save_folder) == (run.model, 1e-05, run.save_folder)
    assert config.experiment_tracker == {"mlflow": {"experiment_path": "/Users/team/exp", "model_registry_path": "main.finetunes"}}
    assert TrainConfig.from_dict({**config.__dict__}) == config


def test_fields_before_training_and_after_it():
    pending = TrainingRun.from_resource(make_run("r"))
    assert (pending.save_folder, pending.formatted_eta, pending.run_progress) == (None, None, "PENDING")
    with pytest.raises(ValueError, match="no MLflow experiment"):
        pending.experiment_path
    done = TrainingRun.from_resource(make_run("r", phase="Succeeded", status={"checkpoints": CHECKPOINTS}))
    assert done.run_progress == "COMPLETED" and done.formatted_eta is None


@pytest.mark.parametrize("seconds,text", [(30, "30s"), (90, "1min"), (3 * 3600 + 5, "3hr"), (2 * 86400 + 7, "2d"), (-5, None)])
def test_eta_reads_as_databricks_writes_it(seconds, text):
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert format_eta(now + timedelta(seconds=seconds), now) == text


def test_a_checkpoint_is_its_path_string_with_kubetune_extras():
    path = CheckpointPath(CheckpointRef.model_validate(CHECKPOINTS[1]))
    assert isinstance(path, str) and path == "/checkpoints/r/checkpoints/ep2-ba20"
    assert (path.name, path.step, path.epoch) == ("ep2-ba20", 20, 2)
    assert path.endswith("ep2-ba20") and f"{path}/model" == "/checkpoints/r/checkpoints/ep2-ba20/model"
    for again in (pickle.loads(pickle.dumps(path)), copy.deepcopy(path)):
        assert again == path and again.step == 20


def test_a_checkpoint_says_where_it_is_for_a_user_and_where_mlflow_lists_it():
    ref = CheckpointRef.model_validate({**CHECKPOINTS[1], "location": "pvc://kubetune-checkpoints/r/checkpoints/ep2-ba20",
                                        "mlflowUri": "runs:/abc/checkpoints/ep2-ba20"})
    path = CheckpointPath(ref)
    assert path == "pvc://kubetune-checkpoints/r/checkpoints/ep2-ba20"  # a customWeightsPath, unlike the pod's mount path
    assert path.mlflow_uri == "runs:/abc/checkpoints/ep2-ba20"
    assert pickle.loads(pickle.dumps(path)).mlflow_uri == path.mlflow_uri


def test_object_lists_are_lists_with_databricks_helpers():
    runs = ObjectList([TrainingRun(name="a", status=RunStatus.RUNNING)], {"name": "Name", "run_progress": "Status"})
    assert runs == [runs[0]] and runs.data is runs
    assert "<td>a</td>" in runs._repr_html_()
    pandas = pytest.importorskip("pandas")
    assert isinstance(runs.to_pandas(), pandas.DataFrame) and list(runs.to_pandas().columns) == ["Name", "Status"]


@pytest.mark.parametrize("path,kind,parts", [
    ("dbfs:/Volumes/main/default/chat/train.jsonl", "uc_volume", ("main", "default", "chat", "/train.jsonl")),
    ("/Volumes/main/default/chat/train.jsonl", "uc_volume", ("main", "default", "chat", "/train.jsonl")),
    ("/Volumes/main/default/chat", "uc_volume", ("main", "default", "chat", "/")),
    ("main.default.chat_table", "uc_table", ("main", "default", "chat_table", None)),
    ("org/dataset/train", "huggingface", ("org/dataset", "train")),
    ("dataset/train", "huggingface", ("dataset", "train")),
    ("data/train.jsonl", "local", ("data/train.jsonl",)),
    ("/data/train.jsonl", "local", ("/data/train.jsonl",)),
    ("s3://bucket/train.jsonl", "object_store", ()),
    ("pvc://datasets/train.jsonl", "pvc", ("datasets", "/train.jsonl")),
])
def test_paths_are_classified_as_databricks_classifies_them(path, kind, parts):
    location = classify_data_path(path)
    assert location.kind == kind
    found = {
        "uc_volume": (location.catalog, location.schema, location.name, location.path),
        "uc_table": (location.catalog, location.schema, location.name, location.path),
        "huggingface": (location.repo, location.split),
        "local": (location.path,),
        "object_store": (),
        "pvc": (location.claim, location.path),
    }[kind]
    assert found == parts


@pytest.mark.parametrize("path,message", [
    ("dbfs:/Volumes/main/default/chat/train.jsonl", "Unity Catalog volume main.default.chat.*pass pvc://CLAIM/path"),
    ("/Volumes/main/default/chat/train.jsonl", "Unity Catalog volume main.default.chat"),
    ("main.default.chat", "Unity Catalog table.*Delta table's folder"),
    ("main.chat", "CATALOG.SCHEMA.TABLE"),
    ("dbfs:/tmp/train.jsonl", "only Unity Catalog volumes"),
    ("/databricks/mlflow-tracking/1/abc/artifacts/x", "reads it as dbfs:/databricks/mlflow-tracking"),
    ("dbfs:/Volumes/main", "only Unity Catalog volumes"),
])
def test_unmapped_databricks_forms_are_refused_saying_what_to_use(path, message):
    with pytest.raises(ValueError, match=message):
        parse_data_path(path)


def test_databricks_custom_weights_paths_are_refused():
    with pytest.raises(ValueError, match="earlier run here: its name"):
        parse_custom_weights("/databricks/mlflow-tracking/1/abc/artifacts/ep1-ba2")
    assert parse_custom_weights("an-earlier-run").kind == "run_name"


def test_absolute_databricks_paths_mean_dbfs():
    assert databricks_form("/Volumes/a/b/c/x") == "dbfs:/Volumes/a/b/c/x"
    assert databricks_form("/databricks/x") == "dbfs:/databricks/x"
    assert databricks_form("/data/x") == "/data/x"
