"""Helm for the chart tests: find the binary, run it, pick objects out of what it rendered.

    CHART, VALUES_DIR, RELEASE, RELEASE_NAMESPACE
    helm_binary() -> Path | None      $HELM, else .cluster/bin/helm (hack/cluster-bins.sh)
    run_helm(helm, *args, kubeconfig=None) -> stdout; raises HelmError(stderr)
    find(objects, kind, name=None, namespace=None) -> list[dict]
    one(objects, kind, name=None, namespace=None) -> dict (asserts exactly one)
    databricks_policy(helm, kubeconfig, watched, mapping)   (context manager) the chart's Unity Catalog policy, applied
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path

import yaml

from helpers.cluster import CLUSTER_DIR, REPO_ROOT, kubectl_binary

CHART = REPO_ROOT / "charts" / "kubetune"
# The chart tests' values overrides, and the release `helm template` renders them as.
VALUES_DIR = REPO_ROOT / "tests" / "chart" / "values"
RELEASE = "kt"
RELEASE_NAMESPACE = "kubetune-system"


class HelmError(RuntimeError):
    """helm exited non-zero; the message is its stderr."""


def helm_binary() -> Path | None:
    candidate = Path(os.environ.get("HELM") or CLUSTER_DIR / "bin" / "helm")
    return candidate if os.access(candidate, os.X_OK) else None


def run_helm(helm: Path, *args: str, kubeconfig: str | None = None, timeout: float = 180) -> str:
    # Helm's own cache and config stay out of the user's home.
    env = dict(
        os.environ,
        HELM_CACHE_HOME=str(CLUSTER_DIR / "helm" / "cache"),
        HELM_CONFIG_HOME=str(CLUSTER_DIR / "helm" / "config"),
        HELM_DATA_HOME=str(CLUSTER_DIR / "helm" / "data"),
    )
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
    result = subprocess.run([str(helm), *args], capture_output=True, text=True, env=env, timeout=timeout)
    if result.returncode != 0:
        raise HelmError(result.stderr.strip() or result.stdout.strip())
    return result.stdout


def find(objects: list[dict], kind: str, name: str | None = None, namespace: str | None = None) -> list[dict]:
    """The rendered objects of a kind (and name, and namespace, when given)."""
    return [
        o
        for o in objects
        if o["kind"] == kind
        and (name is None or o["metadata"]["name"] == name)
        and (namespace is None or o["metadata"].get("namespace") == namespace)
    ]


def one(objects: list[dict], kind: str, name: str | None = None, namespace: str | None = None) -> dict:
    found = find(objects, kind, name, namespace)
    assert len(found) == 1, f"expected one {kind} {name or ''} {namespace or ''}, found {len(found)}"
    return found[0]


@contextlib.contextmanager
def databricks_policy(helm: Path, kubeconfig: str, watched: str, mapping: dict, timeout: float = 60):
    """The chart's ValidatingAdmissionPolicy for Unity Catalog paths (templates/databricks-locations.yaml),
    rendered with `mapping` (config.databricks) for a release watching only the namespace `watched`, applied
    to the cluster, and loaded by the API server (an unmapped table is refused) before this yields; removed
    after. Only `watched` is touched: other tests' runs are not."""
    from helpers.cluster import kubectl

    args = ["template", RELEASE, str(CHART), "--namespace", f"{watched}-op"[:63],
            "--set", "config.mlflow.trackingUri=http://mlflow:5000", "--set", f"watchNamespaces[0]={watched}"]
    for kind in ("volumes", "tables"):
        for name, target in mapping.get(kind, {}).items():
            args += ["--set", f"config.databricks.{kind}.{name.replace('.', chr(92) + '.')}={target}"]
    objects = [doc for doc in yaml.safe_load_all(run_helm(helm, *args)) if doc]
    manifest = "\n---\n".join(yaml.safe_dump(one(objects, kind)) for kind in POLICY_KINDS)
    kubectl(kubeconfig, "apply", "-f", "-", input=manifest)
    try:
        deadline = time.monotonic() + timeout  # the API server loads a new policy within seconds
        probe = {"apiVersion": "kubetune.io/v1alpha1", "kind": "FineTuneRun",
                 "metadata": {"name": "policy-probe", "namespace": watched},
                 "spec": {"model": "Qwen/Qwen2.5-0.5B", "trainDataPath": "no.such.table", "registerTo": "main.team.model"}}
        while True:
            answer = subprocess.run([kubectl_binary(), "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "-f", "-"],
                                    input=json.dumps(probe), capture_output=True, text=True, timeout=60)
            if "is a Unity Catalog table" in answer.stderr:
                break
            assert time.monotonic() < deadline, f"the policy never refused an unmapped table: {answer.stderr or 'admitted'}"
            time.sleep(1)
        yield
    finally:
        kubectl(kubeconfig, "delete", "--ignore-not-found", "-f", "-", input=manifest)


POLICY_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
