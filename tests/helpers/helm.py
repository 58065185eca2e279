"""Helm for the chart tests: find the binary, run it, pick objects out of what it rendered.

    CHART, VALUES_DIR, RELEASE, RELEASE_NAMESPACE
    helm_binary() -> Path | None      $HELM, else .cluster/bin/helm (hack/cluster-bins.sh)
    run_helm(helm, *args, kubeconfig=None) -> stdout; raises HelmError(stderr)
    find(objects, kind, name=None, namespace=None) -> list[dict]
    one(objects, kind, name=None, namespace=None) -> dict (asserts exactly one)
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from helpers.cluster import CLUSTER_DIR, REPO_ROOT

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
