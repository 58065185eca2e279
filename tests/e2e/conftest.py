"""Fixtures for end-to-end tests: the real operator, MLflow and control plane (helpers.operator_fixtures),
plus a kubeconfig that carries a ServiceAccount's token instead of the admin's certificate.

kube_api, namespace, mlflow_uri, operator_config, operator, runs   see helpers.operator_fixtures
service_account_kubeconfig  (function) service_account_kubeconfig(name) -> Path of a kubeconfig
                            authenticating as ServiceAccount `name` of the test namespace
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers.operator_fixtures import (  # noqa: F401 - pytest registers the fixtures it finds here
    kube_api,
    namespace,
    operator,
    operator_config,
    pytest_runtest_makereport,
    runs,
)


@pytest.fixture
def service_account_kubeconfig(kubectl, namespace, tmp_path):
    """A short-lived token from the TokenRequest API (`kubectl create token`), for the test cluster's server."""

    def write(service_account: str) -> Path:
        token = kubectl("create", "token", service_account, "-n", namespace, "--duration=15m").strip()
        admin = json.loads(kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json"))
        cluster = admin["clusters"][0]
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": service_account, "user": {"token": token}}],
            "contexts": [
                {
                    "name": service_account,
                    "context": {"cluster": cluster["name"], "user": service_account, "namespace": namespace},
                }
            ],
            "current-context": service_account,
        }
        path = tmp_path / f"{service_account}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    return write
