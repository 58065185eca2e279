"""Fixtures for the operator on the real test control plane (kwok GPU pools) with a real MLflow server.

They live in helpers.operator_fixtures (shared with tests/e2e); see its docstring:
kube_api, namespace, mlflow_uri, operator_config, operator, runs.
"""

from helpers.operator_fixtures import (  # noqa: F401 - pytest registers the fixtures it finds here
    kube_api,
    namespace,
    operator,
    operator_config,
    pytest_runtest_makereport,
    runs,
)
