"""Fixtures for the Helm chart's tests (helpers.helm does the work).

helm        (session) the helm binary ($HELM, else .cluster/bin/helm); skips with instructions when missing
render      (function) render(*values_files, set={...}) -> the objects `helm template` renders;
            raises helpers.helm.HelmError carrying helm's message when rendering fails
kubeconfig, kube_api, kubectl and namespace (for the `cluster` tests) come from tests/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers.helm import CHART, RELEASE, RELEASE_NAMESPACE, helm_binary, run_helm


@pytest.fixture(scope="session")
def helm() -> Path:
    path = helm_binary()
    if path is None:
        pytest.skip(
            "helm is missing: run `make cluster-bins` (builds .cluster/bin/helm at the version pinned in "
            "hack/versions.env) or point HELM= at a helm 3 binary"
        )
    return path


@pytest.fixture
def render(helm):
    def _render(*values: Path, set: dict[str, str] | None = None, namespace: str = RELEASE_NAMESPACE) -> list[dict]:
        args = ["template", RELEASE, str(CHART), "--namespace", namespace]
        for path in values:
            args += ["--values", str(path)]
        for key, value in (set or {}).items():
            args += ["--set", f"{key}={value}"]
        return [doc for doc in yaml.safe_load_all(run_helm(helm, *args)) if doc]

    return _render
