"""kubetune.foundation_model and the run commands against a real API server with the generated CRD.

The operator does not run here: tests write status through the status subresource,
as the operator would, and check what the SDK and CLI make of it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from textwrap import dedent

import pytest
from kubernetes import client as k8s

from kubetune.api import GROUP, PLURAL, VERSION
from kubetune.cli.main import main

pytestmark = pytest.mark.cluster

MODEL = "meta-llama/Llama-3.2-1B-Instruct"
TRAIN = "pvc://datasets/chat/train.jsonl"


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso(offset_seconds: float = 0) -> str:
    return iso(datetime.now(timezone.utc) + timedelta(seconds=offset_seconds))


def raw_run(kube_api, namespace, name) -> dict:
    return k8s.CustomObjectsApi(kube_api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


def test_create_makes_the_finetunerun(fm, kube_api, namespace):
    run = fm.create(
        model=MODEL, train_data_path=TRAIN, register_to="main.finetunes",
        training_duration="2ep", learning_rate=1e-5, eval_prompts=["Say hi"],
        custom_weights_path="an-earlier-run", compute={"pool": "h100", "gpus": 8},
    )
    assert re.fullmatch(r"llama-3-2-1b-instruct-[a-z0-9]{6}", run.name)
    assert run.namespace == namespace and run.status == fm.RunStatus.PENDING
    assert run.created_at is not None and [e.type for e in run.events] == ["CREATED"]

    stored = raw_run(kube_api, namespace, run.name)
    assert stored["spec"] == {
        "model": MODEL, "trainDataPath": TRAIN, "registerTo": "main.finetunes", "taskType": "CHAT_COMPLETION",
        "trainingDuration": "2ep", "learningRate": "1e-05", "evalPrompts": ["Say hi"],
        "customWeightsPath": "an-earlier-run", "compute": {"pool": "h100", "gpus": 8},
        "validateInputs": True, "suspend": False,
    }
    assert fm.get(run.name).learning_rate == 1e-5
    # Databricks' created_by: the user the API server authenticated.
    assert run.created_by and [r.name for r in fm.list(user_emails=[run.created_by])] == [run.name]
    assert fm.list(user_emails=["someone-else@example.com"]) == []


def test_bad_arguments_never_reach_the_cluster(fm, kube_api, namespace):
    with pytest.raises(fm.SpecError) as raised:
        fm.create(model=MODEL, train_data_path=TRAIN, register_to="main", name="bad-run")
    assert [p.field for p in raised.value.problems] == ["register_to"]
    assert fm.list() == []


def test_names_are_unique_per_namespace(fm, namespace):
    fm.create(model=MODEL, train_data_path=TRAIN, register_to="main.ft", name="support-bot")
    with pytest.raises(fm.RunAlreadyExistsError, match=f"'support-bot' already exists in namespace '{namespace}'"):
        fm.create(model=MODEL, train_data_path=TRAIN, register_to="main.ft", name="support-bot")


def test_get_a_missing_run_names_it_and_its_namespace(fm, namespace):
    with pytest.raises(fm.RunNotFoundError) as raised:
        fm.get("no-such-run")
    assert str(raised.value) == f"FineTuneRun 'no-such-run' not found in namespace '{namespace}'"


def test_list_filters_and_orders(fm, write_status):
    first = fm.create(model=MODEL, train_data_path=TRAIN, register_to="main.ft", name="first")
    time.sleep(1.1)  # creationTimestamp has one-second resolution
    second = fm.create(model=MODEL, train_data_path=TRAIN, register_to="main.ft", name="second")
    write_status("first", {"phase": "Succeeded", "mlflow": {"experimentId": "11"}})
    write_status("second", {"phase": "Queued"})

    assert [r.name for r in fm.list()] == ["second", "first"]
    assert [r.name for r in fm.list(statuses=["COMPLETED"])] == ["first"]
    assert [r.name for r in fm.list(statuses=["QUEUED", "RUNNING"])] == ["second"]
    assert [r.name for r in fm.list(limit=1)] == ["second"]
    assert [r.name for r in fm.list(after=second.created_at)] == ["second"]
    assert [r.name for r in fm.list(before=second.created_at)] == ["first"]
    assert [r.name for r in fm.list(experiment_id="11")] == ["first"]
    assert [r.name for r in fm.list([first, "second"])] == ["second", "first"]


def test_cancel_suspends_and_keeps_the_run(fm, kube_api, namespace, write_status):
    run = fm.create(model=MODEL, train_data_path=TRAIN, register_to="main.ft", name="to-cancel")
    write_status(run.name, {"phase": "Running", "progress": {"step": 5, "percent": 10}})
    assert fm.get(run).status == fm.RunStatus.RUNNING

    assert run.cancel() == 1
    assert raw_run(kube_api, namespace, run.name)["spec"]["suspend"] is True
    assert run.refresh().status == fm.RunStatus.TERMINATING
    assert fm.cancel([run]) == 0  # already being cancelled

    write_status(run.name, {"phase": "Cancelled", "events": [
        {"type": "CANCELED", "time": now_iso(), "message": "Cancelled by user; checkpoints kept."}]})
    assert fm.get(run.name).status == fm.RunStatus.STOPPED
    assert fm.cancel(run.name) == 0


def test_cancel_by_experiment_id(fm, kube_api, namespace, write_status):
    for name in ("exp-a", "exp-b", "other"):
        fm.create(model=MODEL, train_data_path=TRAIN, register_to="main.ft", name=name)
    write_status("exp-a", {"mlflow": {"experimentId": "7"}})
    write_status("exp-b", {"mlflow": {"experimentId": "7"}})
    assert fm.cancel(experiment_id="7") == 2
    assert [raw_run(kube_api, namespace, n)["spec"]["suspend"] for n in ("exp-a", "exp-b", "other")] == [True, True, False]


def test_delete(fm, namespace):
    run = fm.create(model=MODEL, train_data_path=TRAIN, register_to="main.ft", name="to-delete")
    assert fm.delete(run) == 1
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            fm.get("to-delete")
        except fm.RunNotFoundError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("run still there 10s after delete")
    with pytest.raises(fm.RunNotFoundError, match=f"'to-delete' not found in namespace '{namespace}'"):
        fm.delete("to-delete")


def test_events_checkpoints_and_registered_model_from_status(fm, write_status):
    run = fm.create(model=MODEL, train_data_path=TRAIN, register_to="main.ft", name="finished")
    created = run.created_at
    write_status("finished", {
        "phase": "Succeeded",
        "message": "Registered main.ft.finished version 1.",
        "startTime": iso(created + timedelta(seconds=5)),
        "completionTime": iso(created + timedelta(seconds=60)),
        "events": [
            {"type": "CREATED", "time": iso(created), "message": "Run created."},
            {"type": "STARTED", "time": iso(created + timedelta(seconds=5)), "message": ""},
            {"type": "TRAIN_UPDATED", "time": iso(created + timedelta(seconds=30)),
             "message": "[epoch=1/1][batch=28/56][ETA=1min] Train loss: 1.71"},
            {"type": "TRAIN_FINISHED", "time": iso(created + timedelta(seconds=55)), "message": ""},
            {"type": "COMPLETED", "time": iso(created + timedelta(seconds=60)), "message": ""},
        ],
        "checkpoints": [
            {"name": "ep1-ba56", "path": "pvc://ckpt/finished/ep1-ba56", "step": 56, "epoch": 1},
            {"name": "ep1-ba28", "path": "pvc://ckpt/finished/ep1-ba28", "step": 28, "epoch": 1},
        ],
        "registeredModel": {"name": "main.ft.finished", "version": "1"},
        "mlflow": {"experimentId": "3", "runId": "r-123"},
    })
    events = fm.get_events("finished")
    assert [e.type for e in events] == ["CREATED", "STARTED", "TRAIN_UPDATED", "TRAIN_FINISHED", "COMPLETED"]
    assert events[2].message.endswith("Train loss: 1.71") and events[-1].is_terminal_state()
    assert [c.name for c in fm.get_checkpoints(run)] == ["ep1-ba28", "ep1-ba56"]
    finished = run.refresh()
    assert finished.status == fm.RunStatus.COMPLETED and finished.details.startswith("Registered")
    assert (finished.experiment_id, finished.run_id) == ("3", "r-123")
    assert finished.registered_model.name == "main.ft.finished" and finished.registered_model.version == "1"
    assert finished.completed_at - finished.started_at == timedelta(seconds=55)


def test_follow_yields_events_until_the_run_ends(fm, write_status):
    run = fm.create(model=MODEL, train_data_path=TRAIN, register_to="main.ft", name="followed")
    history: list[dict] = [{"type": "CREATED", "time": iso(run.created_at), "message": "Run created."}]

    def operator():
        for phase, event in [
            ("Running", {"type": "STARTED", "time": now_iso(1), "message": ""}),
            ("Running", {"type": "TRAIN_UPDATED", "time": now_iso(2), "message": "Train loss: 2.0"}),
            ("Running", {"type": "TRAIN_UPDATED", "time": now_iso(3), "message": "Train loss: 1.5"}),
            ("Failed", {"type": "FAILED", "time": now_iso(4), "message": "CUDA out of memory"}),
        ]:
            time.sleep(0.4)
            history.append(event)
            write_status("followed", {"phase": phase, "events": list(history)})

    writer = threading.Thread(target=operator)
    writer.start()
    try:
        seen = [(e.type, e.message) for e in fm.get_events(run, follow=True, poll_seconds=0.1)]
    finally:
        writer.join()
    assert seen == [("CREATED", "Run created."), ("STARTED", ""), ("TRAIN_UPDATED", "Train loss: 2.0"),
                    ("TRAIN_UPDATED", "Train loss: 1.5"), ("FAILED", "CUDA out of memory")]
    assert fm.get(run).status == fm.RunStatus.FAILED


def test_cel_rejects_changing_the_model(fm):
    from kubetune.sdk.client import get_client

    fm.create(model=MODEL, train_data_path=TRAIN, register_to="main.ft", name="immutable")
    with pytest.raises(fm.RunRejectedError) as raised:
        get_client().patch("immutable", {"spec": {"model": "Qwen/Qwen2.5-0.5B"}})
    assert "spec.model cannot change after the run is created" in str(raised.value)
    assert fm.get("immutable").model == MODEL


def test_cel_rejects_what_the_sdk_would_have(fm, namespace):
    """A body that skipped the SDK's check (e.g. kubectl apply) is refused by the API server's rules."""
    from kubetune.sdk.client import get_client

    body = {"apiVersion": "kubetune.io/v1alpha1", "kind": "FineTuneRun", "metadata": {"name": "raw"},
            "spec": {"model": "gpt-17", "trainDataPath": TRAIN, "registerTo": "main.ft",
                     "compute": {"gpus": 2, "nodes": 1}}}
    with pytest.raises(fm.RunRejectedError) as raised:
        get_client().create(body)
    text = str(raised.value)
    assert f"'raw' in namespace '{namespace}' was rejected" in text
    assert "must be a supported model" in text and "set either gpus, or nodes and gpusPerNode" in text


# The CLI, against the same cluster.


def cli(kubeconfig, namespace, *args) -> int:
    return main([*args, "--kubeconfig", kubeconfig, "-n", namespace])


def test_cli_lifecycle(fm, kubeconfig, namespace, write_status, capsys, tmp_path):
    manifest = tmp_path / "run.yaml"
    manifest.write_text(dedent(f"""\
        apiVersion: kubetune.io/v1alpha1
        kind: FineTuneRun
        metadata:
          name: from-manifest
          labels: {{team: search}}
        spec:
          model: {MODEL}
          trainDataPath: {TRAIN}
          registerTo: main.ft
          trainingDuration: 3ep
        """))
    assert cli(kubeconfig, namespace, "create", "-f", str(manifest)) == 0
    assert "finetunerun.kubetune.io/from-manifest created" in capsys.readouterr().out
    stored = fm.get("from-manifest")
    assert stored.training_duration == "3ep" and stored.resource["metadata"]["labels"] == {"team": "search"}

    assert cli(kubeconfig, namespace, "create", "--model", MODEL, "--train-data-path", TRAIN,
               "--register-to", "main.ft", "--name", "from-flags", "--gpus", "4") == 0
    assert fm.get("from-flags").compute == {"gpus": 4}
    capsys.readouterr()

    write_status("from-flags", {"phase": "Running", "progress": {"percent": 42, "display": "42% ETA 3m", "step": 9},
                                "metrics": {"trainLoss": 1.25}})
    assert cli(kubeconfig, namespace, "list") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "PROGRESS", "LOSS", "MODEL", "AGE"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["from-flags"][:7] == ["from-flags", "RUNNING", "42%", "ETA", "3m", "1.25", MODEL]
    assert rows["from-manifest"][:5] == ["from-manifest", "PENDING", "-", "-", MODEL]

    assert cli(kubeconfig, namespace, "get", "from-flags", "-o", "json") == 0
    assert json.loads(capsys.readouterr().out)["status"]["progress"]["percent"] == 42
    assert cli(kubeconfig, namespace, "get", "from-flags") == 0
    assert "Status:            RUNNING (phase Running)" in capsys.readouterr().out

    assert cli(kubeconfig, namespace, "cancel", "from-flags") == 0
    assert "from-flags: cancelling" in capsys.readouterr().out
    assert fm.get("from-flags").suspended

    assert cli(kubeconfig, namespace, "delete", "from-manifest") == 0
    assert cli(kubeconfig, namespace, "get", "from-manifest") == 1
    assert f"FineTuneRun 'from-manifest' not found in namespace '{namespace}'" in capsys.readouterr().err


def test_cli_events_follow_until_the_end(fm, kubeconfig, namespace, write_status, capsys):
    run = fm.create(model=MODEL, train_data_path=TRAIN, register_to="main.ft", name="watched")
    write_status("watched", {"phase": "Running", "progress": {"percent": 50, "step": 28}})

    def finish():
        time.sleep(0.5)
        write_status("watched", {"phase": "Succeeded", "progress": {"percent": 100, "step": 56}, "events": [
            {"type": "CREATED", "time": iso(run.created_at), "message": "Run created."},
            {"type": "COMPLETED", "time": now_iso(), "message": "Registered main.ft.watched version 1."}]})

    writer = threading.Thread(target=finish)
    writer.start()
    try:
        code = cli(kubeconfig, namespace, "events", "watched", "--follow", "--interval", "0.1")
    finally:
        writer.join()
    out, err = capsys.readouterr()
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[1] for line in lines[:2]] == ["CREATED", "COMPLETED"]
    assert lines[1].endswith("COMPLETED         Registered main.ft.watched version 1.")
    assert out.rstrip().endswith("watched: COMPLETED")
    assert err == ""  # not a terminal: no progress line, only the event lines

    assert cli(kubeconfig, namespace, "events", "watched") == 0
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines()] == ["CREATED", "COMPLETED"]
