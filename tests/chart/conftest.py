"""Fixtures for the Helm chart's tests (helpers.helm does the work).

render      (function) render(*values_files, set={...}) -> the objects `helm template` renders;
            raises helpers.helm.HelmError carrying helm's message when rendering fails
helm, kubeconfig, kube_api, kubectl and namespace (for the `cluster` tests) come from tests/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers.helm import CHART, RELEASE, RELEASE_NAMESPACE, run_helm


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
