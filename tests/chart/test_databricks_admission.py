"""The chart's ValidatingAdmissionPolicy refuses unmapped Unity Catalog paths when a run is created, through
the real API server, and agrees with the operator's own mapping (kubetune.api.databricks_locations) on every
path form: whoever creates the run (kubectl, a GitOps tool, the SDK, the CLI) hears it before anything runs."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from helpers.cluster import kubectl_binary
from helpers.helm import databricks_policy
from kubetune.api.databricks_locations import DatabricksLocations, mapped_data_path

pytestmark = pytest.mark.cluster

MAPPING = {
    "volumes": {"main.default.chat": "pvc://datasets/chat", "main.raw.landing": "s3://bucket/landing"},
    "tables": {"main.default.chats": "pvc://datasets/delta/chats"},
}
# Every form a Databricks user writes, mapped or not, and the forms that are no Unity Catalog location at all.
PATHS = [
    "dbfs:/Volumes/main/default/chat/train.jsonl",
    "/Volumes/main/default/chat/sub/train.jsonl",
    "dbfs:/Volumes/main/raw/landing/x",
    "dbfs:/Volumes/main/default/other/train.jsonl",
    "/Volumes/main/other/chat/train.jsonl",
    "main.default.chats",
    "main.default.unmapped_table",
    "team.db.table",
    "pvc://datasets/train.jsonl",
    "s3://bucket/train.jsonl",
    "org/dataset/train",
    "./a.b.jsonl",
    "/data/train.jsonl",
]


def mapped_by_the_operator(path: str) -> bool:
    try:
        mapped_data_path(path, DatabricksLocations.model_validate(MAPPING))
    except ValueError:
        return False
    return True


@pytest.fixture
def policy(helm, kubeconfig, crd_installed, namespace):
    with databricks_policy(helm, kubeconfig, namespace, MAPPING):
        yield


def apply_run(kubeconfig: str, namespace: str, path: str) -> subprocess.CompletedProcess:
    run = {
        "apiVersion": "kubetune.io/v1alpha1", "kind": "FineTuneRun",
        "metadata": {"name": f"r-{uuid.uuid4().hex[:8]}", "namespace": namespace},
        "spec": {"model": "Qwen/Qwen2.5-0.5B", "trainDataPath": path, "registerTo": "main.team.model"},
    }
    return subprocess.run([kubectl_binary(), "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "-f", "-"],
                          input=json.dumps(run), capture_output=True, text=True, timeout=60)


def test_the_policy_refuses_exactly_what_the_operator_cannot_map(policy, kubeconfig, namespace):
    results = {path: apply_run(kubeconfig, namespace, path) for path in PATHS}
    admitted = {path: r.returncode == 0 for path, r in results.items()}
    assert admitted == {path: mapped_by_the_operator(path) for path in PATHS}, {p: r.stderr for p, r in results.items()}
    volume = results["dbfs:/Volumes/main/default/other/train.jsonl"].stderr
    assert "spec.trainDataPath: dbfs:/Volumes/main/default/other/train.jsonl is in the Unity Catalog volume main.default.other" in volume
    assert "databricks.volumes: {main.default.other: pvc://CLAIM/path or s3://bucket/prefix}" in volume
    table = results["team.db.table"].stderr
    assert "team.db.table is a Unity Catalog table" in table and "databricks.tables: {team.db.table:" in table


def test_runs_in_namespaces_the_release_does_not_watch_are_left_to_their_own_operator(policy, kubeconfig, kubectl, namespace):
    other = f"{namespace}-x"[:63]
    kubectl("create", "namespace", other)
    try:
        assert apply_run(kubeconfig, other, "team.db.table").returncode == 0
    finally:
        kubectl("delete", "namespace", other, "--wait=false")
