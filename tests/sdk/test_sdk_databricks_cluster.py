"""Databricks' functions and run fields that kubetune.foundation_model adds, read from runs on a real API server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from helpers.helm import databricks_policy

pytestmark = pytest.mark.cluster

MODEL = "meta-llama/Llama-3.2-1B-Instruct"
TRAIN = "pvc://datasets/chat/train.jsonl"
CHECKPOINTS = [
    {"name": "ep1-ba10", "path": "/checkpoints/ckpt/checkpoints/ep1-ba10", "step": 10, "epoch": 1},
    {"name": "ep2-ba20", "path": "/checkpoints/ckpt/checkpoints/ep2-ba20", "step": 20, "epoch": 2},
]


def test_get_checkpoints_returns_path_strings(fm, write_status):
    run = fm.create(model=MODEL, train_data_path=TRAIN, register_to="main.ft", name="ckpt")
    assert fm.get_checkpoints(run) == []
    write_status(run.name, {"phase": "Running", "checkpoints": list(reversed(CHECKPOINTS))})

    paths = fm.get_checkpoints(run)
    assert paths == [c["path"] for c in CHECKPOINTS] and all(isinstance(p, str) for p in paths)
    assert [(p.name, p.step) for p in paths] == [("ep1-ba10", 10), ("ep2-ba20", 20)]
    assert fm.get(run).save_folder == "/checkpoints/ckpt/checkpoints"
    assert run.refresh().get_checkpoints() == paths


def test_run_fields_from_status(fm, write_status):
    fm.create(model=MODEL, train_data_path=TRAIN, register_to="main.ft", name="fields", experiment_path="/Users/a/exp")
    eta = datetime.now(timezone.utc) + timedelta(hours=2, minutes=5)
    write_status("fields", {
        "phase": "Running", "startTime": "2025-01-01T00:00:00Z",
        "progress": {"step": 5, "percent": 30, "eta": eta.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "mlflow": {"experimentPath": "/Users/a/exp", "experimentId": "4", "runId": "abc"},
    })
    run = fm.get("fields")
    assert run.status == fm.RunStatus.RUNNING and not run.status.is_terminal()
    assert run.formatted_eta == "2hr"
    assert run.run_progress == "RUNNING ■■■□□□□□□□(30%)"
    assert run.experiment_path == "/Users/a/exp" and run.submitted_config.model == MODEL
    assert "<nobr>CREATED " in run.formatted_events


def test_list_takes_finetuning_runs_and_returns_an_object_list(fm):
    for name in ("one", "two", "three"):
        fm.create(model=MODEL, train_data_path=TRAIN, register_to="main.ft", name=name)
    chosen = fm.list(finetuning_runs=["one", "three"])
    assert sorted(r.name for r in chosen) == ["one", "three"]
    assert sorted(r.name for r in fm.list(training_runs=["two"])) == ["two"]
    assert isinstance(chosen, fm.ObjectList) and chosen.data == chosen
    assert [e.type for e in fm.get_events("one")] == ["CREATED"]
    with pytest.raises(TypeError, match="not both"):
        fm.list(training_runs=["one"], finetuning_runs=["two"])


def test_get_models_lists_the_supported_models(fm):
    models = fm.get_models()
    assert MODEL in [m.name for m in models]
    assert all(m.max_context_length > 0 and m.display_name for m in models)


@pytest.mark.parametrize("path,problem", [
    ("dbfs:/Volumes/main/default/chat/train.jsonl", "is in the Unity Catalog volume main.default.chat, which this cluster does not map"),
    ("/Volumes/main/default/chat/train.jsonl", "is in the Unity Catalog volume main.default.chat, which this cluster does not map"),
    ("main.default.chat", "is a Unity Catalog table, which this cluster does not map"),
])
def test_unmapped_unity_catalog_data_is_refused_before_anything_runs(fm, helm, kubeconfig, namespace, path, problem):
    """Only the cluster knows its mapping: the chart's admission policy refuses the create, and the SDK says why."""
    with databricks_policy(helm, kubeconfig, namespace, {"volumes": {"main.other.vol": "pvc://data/vol"}}):
        with pytest.raises(fm.RunRejectedError, match=problem):
            fm.create(model=MODEL, train_data_path=path, register_to="main.ft", name="uc-run")
    assert fm.list() == []
