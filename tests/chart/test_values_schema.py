"""values.schema.json rejects bad values before anything reaches the cluster (checked through helm itself)."""

from __future__ import annotations

import json

import pytest

from helpers.helm import CHART, HelmError
from kubetune.operator.config import OperatorConfig

SCHEMA = json.loads((CHART / "values.schema.json").read_text())


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"config.pools.gpu.gpusPerNode": "-1"}, "gpusPerNode"),
        ({"config.pools.gpu.sharedMemory": "lots"}, "sharedMemory"),
        ({"config.mlflow.trackingUri": "null"}, "trackingUri"),
        ({"config.mlflow.trackingUri": '""'}, "trackingUri"),
        ({"config.mlflow.credentialsSecret": "Not_A_Secret_Name"}, "credentialsSecret"),
        ({"config.pools.Big-GPUs.gpusPerNode": "8"}, "Big-GPUs"),
        ({"config.defaults.maxRestarts": "-2"}, "maxRestarts"),
        # access rules (operator/access_rules.py)
        ({"config.access.default.registerTo[0]": "main"}, "registerTo"),
        ({"config.access.namespaces.Team_A.registerTo[0]": "main.x"}, "Team_A"),
        ({"config.access.namespaces.team-a.typo[0]": "x"}, "typo"),
        ({"config.access.everyone": "true"}, "everyone"),
        # metrics (operator/metrics.py)
        ({"metrics.port": "80"}, "port"),
        ({"metrics.port": "8080"}, "port"),  # the liveness port
        ({"metrics.serviceMonitor.interval": "often"}, "interval"),
        ({"metrics.serviceMonitor.enabeld": "true"}, "enabeld"),
        ({"metrics.grafanaDashboard.namespace": "Monitoring"}, "namespace"),
        ({"config.images.pullPolicy": "Sometimes"}, "pullPolicy"),
        ({"config.checkpoints.mountPath": "relative/path"}, "mountPath"),
        ({"config.kueue.queue": "typo"}, "queue"),
        ({"watchNamespaces[0]": "Team_A"}, "watchNamespaces"),
        ({"replicas": "3"}, "replicas"),
        ({"config.reconcile.resyncIntervalSeconds": "0"}, "resyncIntervalSeconds"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_bad_values_fail_with_the_schema_message(render, override, message):
    with pytest.raises(HelmError) as failure:
        render(set={key: value.strip('"') if value == '""' else value for key, value in override.items()})
    text = str(failure.value)
    assert "values don't meet the specifications of the schema" in text
    assert message in text


def test_default_pool_must_be_configured(render):
    with pytest.raises(HelmError, match=r'config.defaults.pool "h100" is not one of the configured pools \(config.pools: gpu\)'):
        render(set={"config.defaults.pool": "h100"})


def _schema_fields(node: dict) -> set[str]:
    node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[-1]] if "$ref" in node else node
    return set(node.get("properties", {}))


def _pydantic_fields(model) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


@pytest.mark.parametrize("section", ["defaults", "images", "mlflow", "checkpoints", "kueue", "reconcile"])
def test_schema_allows_every_operator_config_field(section):
    """A field the operator engineer adds to OperatorConfig must be settable through values."""
    model = OperatorConfig.model_fields[section].annotation
    assert _schema_fields(SCHEMA["properties"]["config"]["properties"][section]) == _pydantic_fields(model)


def test_schema_allows_every_pool_field():
    pool_model = OperatorConfig.model_fields["pools"].annotation.__args__[1]
    assert _schema_fields(SCHEMA["definitions"]["pool"]) == _pydantic_fields(pool_model)
    toleration_model = pool_model.model_fields["tolerations"].annotation.__args__[0]
    assert _schema_fields(SCHEMA["definitions"]["toleration"]) == _pydantic_fields(toleration_model)


def test_schema_config_sections_match_operator_config():
    # `namespaces` comes from watchNamespaces, so the file and the --namespace flags agree.
    assert _schema_fields(SCHEMA["properties"]["config"]) | {"namespaces"} == _pydantic_fields(OperatorConfig)
