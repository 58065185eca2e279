"""The chart's metrics: the port and flag on the Deployment, the Service, the optional ServiceMonitor and Grafana
dashboard ConfigMap, and their values schema."""

from __future__ import annotations

import json

import pytest

from helpers.helm import CHART, RELEASE_NAMESPACE, HelmError, find, one
from kubetune.operator.metrics import parse_endpoint

FULLNAME = "kt-kubetune"
DASHBOARD = CHART / "dashboards" / "kubetune.json"


def container(objects: list[dict]) -> dict:
    return one(objects, "Deployment", FULLNAME)["spec"]["template"]["spec"]["containers"][0]


def test_metrics_are_served_on_their_port_and_exposed_by_a_service(render):
    objects = render(set={"metrics.port": "9191"})
    operator = container(objects)
    flag = next(a for a in operator["args"] if a.startswith("--metrics="))
    assert parse_endpoint(flag.removeprefix("--metrics=")) == ("0.0.0.0", 9191)
    assert {"name": "metrics", "containerPort": 9191, "protocol": "TCP"} in operator["ports"]
    service = one(objects, "Service", f"{FULLNAME}-metrics", RELEASE_NAMESPACE)
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9191, "targetPort": "metrics", "protocol": "TCP"}]
    pod_labels = one(objects, "Deployment", FULLNAME)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert not find(objects, "ServiceMonitor") and not find(objects, "ConfigMap", f"{FULLNAME}-dashboard")


def test_metrics_can_be_turned_off(render):
    objects = render(set={"metrics.enabled": "false", "metrics.serviceMonitor.enabled": "true"})
    assert not any(a.startswith("--metrics") for a in container(objects)["args"])
    assert [p["name"] for p in container(objects)["ports"]] == ["health"]
    assert not find(objects, "Service") and not find(objects, "ServiceMonitor")


def test_service_monitor_scrapes_the_metrics_service(render):
    objects = render(set={"metrics.serviceMonitor.enabled": "true", "metrics.serviceMonitor.labels.release": "prom"})
    monitor = one(objects, "ServiceMonitor", FULLNAME, RELEASE_NAMESPACE)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [RELEASE_NAMESPACE]}
    service = one(objects, "Service", f"{FULLNAME}-metrics")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def test_grafana_dashboard_config_map_carries_the_dashboard(render):
    objects = render(set={"metrics.grafanaDashboard.enabled": "true", "metrics.grafanaDashboard.namespace": "monitoring"})
    config_map = one(objects, "ConfigMap", f"{FULLNAME}-dashboard", "monitoring")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["kubetune.json"]) == json.loads(DASHBOARD.read_text())


def test_pool_price_reaches_the_operator_config(render, tmp_path):
    import yaml

    from kubetune.operator.config import OperatorConfig

    values = tmp_path / "price.yaml"
    values.write_text(yaml.safe_dump({"config": {"pools": {"gpu": {"pricePerGpuHour": 2.5}}}}))
    config_map = one(render(values), "ConfigMap", f"{FULLNAME}-config")
    config = OperatorConfig.model_validate(yaml.safe_load(config_map["data"]["config.yaml"]))
    assert config.pools["gpu"].price_per_gpu_hour == 2.5
    with pytest.raises(HelmError, match="pricePerGpuHour"):
        render(set={"config.pools.gpu.pricePerGpuHour": "-1"})
