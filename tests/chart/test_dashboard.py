"""The chart's Grafana dashboard queries only metrics the operator registers (kubetune.operator.metrics)."""

from __future__ import annotations

import json
import re

import pytest

from helpers.helm import CHART
from kubetune.operator.metrics import OperatorMetrics

DASHBOARD = json.loads((CHART / "dashboards" / "kubetune.json").read_text())
# What a PromQL expression holds besides metric names: label matchers, grouping clauses, ranges, strings,
# Grafana variables, numbers; functions and aggregations are the names followed by "(".
_STRIPPED = [
    r'"(?:[^"\\]|\\.)*"',  # strings
    r"\{[^}]*\}",  # label matchers
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",  # grouping clauses
    r"\[[^\]]*\]",  # ranges
    r"\$\{?\w+\}?",  # Grafana variables
]
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}
_NAME = re.compile(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    for pattern in _STRIPPED:
        expr = re.sub(pattern, " ", expr)
    return {name for name in _NAME.findall(expr) if name.lower() not in _KEYWORDS}


def exported_names() -> set[str]:
    """Every series name the operator's registry can export (a counter's _total, a histogram's _bucket …)."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    return {
        family.name + suffix
        for family in OperatorMetrics().registry.collect()
        for suffix in suffixes[family.type]
    }


def expressions() -> list[str]:
    found = [target["expr"] for panel in DASHBOARD["panels"] for target in panel.get("targets", [])]
    for variable in DASHBOARD["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            found.append(re.sub(r"^label_values\((\w+),.*$", r"\1", query["query"]))
    return found


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le, pool) (rate(a_bucket{namespace=~"$namespace"}[$__rate_interval]))', {"a_bucket"}),
        ("histogram_quantile(0.95, sum by (le) (rate(b_sum[5m]))) / c", {"b_sum", "c"}),
        ('increase(d_total{x="y"}[$__range]) / 3600', {"d_total"}),
    ],
)
def test_metric_names_are_read_from_promql(expr, names):
    assert metric_names(expr) == names


def test_every_panel_queries_something():
    assert DASHBOARD["panels"] and all(p.get("targets") for p in DASHBOARD["panels"])


@pytest.mark.parametrize("expr", expressions())
def test_dashboard_queries_only_exported_metrics(expr):
    names = metric_names(expr)
    assert names, f"no metric in {expr!r}"
    assert names <= exported_names(), f"{expr!r} queries {sorted(names - exported_names())}, which the operator does not export"


def test_every_exported_metric_is_on_the_dashboard():
    used = set().union(*(metric_names(e) for e in expressions()))
    families = {name.removesuffix("_total") for name in used}
    families |= {re.sub(r"_(bucket|count|sum)$", "", name) for name in used}
    registered = {f.name for f in OperatorMetrics().registry.collect()}
    assert registered <= families
