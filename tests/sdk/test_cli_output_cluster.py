"""`kubetune list -o json|yaml|wide|name` and `-A`, `get -o name|wide`, and `events --follow` into a pipe,
against the real API server (the operator does not run: tests write status as it would)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from kubetune.cli.main import main

pytestmark = pytest.mark.cluster

MODEL = "meta-llama/Llama-3.2-1B-Instruct"
TRAIN = "pvc://datasets/chat/train.jsonl"
KUBETUNE = str(Path(sys.executable).with_name("kubetune"))


@pytest.fixture
def other_namespace(kube_api, namespace):
    core = k8s.CoreV1Api(kube_api)
    name = f"{namespace}-b"
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels={"kubetune.io/test": "true"})))
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


def create_run(fm, kubeconfig: str, namespace: str, name: str) -> None:
    fm.configure(namespace=namespace, kubeconfig=kubeconfig)
    fm.create(model=MODEL, train_data_path=TRAIN, register_to="main.ft", name=name)


def test_list_output_formats_and_all_namespaces(fm, kubeconfig, namespace, other_namespace, write_status, capsys):
    create_run(fm, kubeconfig, other_namespace, "there")
    create_run(fm, kubeconfig, namespace, "here")
    write_status("here", {"phase": "Succeeded", "restarts": 1,
                          "registeredModel": {"name": "main.ft.here", "version": "3"}, "message": "Registered."})
    ours = {namespace, other_namespace}

    def kubetune(*args: str) -> str:
        assert main([*args, "--kubeconfig", kubeconfig]) == 0
        return capsys.readouterr().out

    table = kubetune("list", "-A").splitlines()
    assert table[0].split() == ["NAMESPACE", "NAME", "STATUS", "PROGRESS", "LOSS", "MODEL", "AGE"]
    rows = {tuple(line.split()[:3]) for line in table[1:] if line.split()[0] in ours}
    assert rows == {(namespace, "here", "COMPLETED"), (other_namespace, "there", "PENDING")}

    for output, parse in (("json", json.loads), ("yaml", yaml.safe_load)):
        listed = parse(kubetune("list", "--all-namespaces", "-o", output))
        assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
        items = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in listed["items"] if i["metadata"]["namespace"] in ours}
        assert items == {(namespace, "here"), (other_namespace, "there")}
        assert all("managedFields" not in i["metadata"] for i in listed["items"])

    assert kubetune("list", "-n", namespace, "-o", "name") == "finetunerun.kubetune.io/here\n"
    assert json.loads(kubetune("list", "-n", namespace, "-s", "FAILED", "-o", "json"))["items"] == []

    wide = kubetune("list", "-n", namespace, "-o", "wide").splitlines()
    assert wide[0].split() == ["NAME", "STATUS", "PROGRESS", "LOSS", "MODEL", "AGE", "GPU-SECONDS", "QUEUE-WAIT-S",
                               "FIRST-STEP-S", "COST", "REGISTERED", "RESTARTS", "PREEMPTIONS", "MESSAGE"]
    assert wide[1].split()[:2] == ["here", "COMPLETED"] and wide[1].split()[-5:] == ["main.ft.here", "v3", "1", "0", "Registered."]
    # The same table from `get`, but for AGE, which may tick over a second between the two calls.
    age = wide[0].split().index("AGE")
    without_age = [line.split()[:age] + line.split()[age + 1:] for line in wide]
    got = kubetune("get", "here", "-n", namespace, "-o", "wide").splitlines()
    assert [line.split()[:age] + line.split()[age + 1:] for line in got] == without_age
    assert kubetune("get", "there", "-n", other_namespace, "-o", "name") == "finetunerun.kubetune.io/there\n"


def test_following_into_a_pipe_prints_plain_event_lines(fm, kubeconfig, namespace, write_status):
    run = fm.create(model=MODEL, train_data_path=TRAIN, register_to="main.ft", name="piped")
    created = run.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    write_status("piped", {"phase": "Failed", "message": "the trainer ran out of memory", "progress": {"percent": 40, "step": 4},
                           "events": [{"type": "CREATED", "time": created, "message": "Run created."},
                                      {"type": "FAILED", "time": created, "message": "the trainer ran out of memory"}]})
    result = subprocess.run(
        [KUBETUNE, "events", "piped", "--follow", "--interval", "0.1", "--kubeconfig", kubeconfig, "-n", namespace],
        capture_output=True, text=True, timeout=120, env={"PATH": str(Path(sys.executable).parent), "PYTHONSAFEPATH": "1"},
    )
    assert (result.returncode, result.stderr) == (1, "")  # the run failed: exit 1, and no progress line on a pipe
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines[:2]] == ["CREATED", "FAILED"]
    assert lines[2:] == ["piped: FAILED: the trainer ran out of memory"]
    assert "\r" not in result.stdout and "%" not in result.stdout
