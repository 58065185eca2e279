"""The chart's `logFormat` becomes the operator's `--log-format` (docs/operator-guide.md, "Logs")."""

from __future__ import annotations

import json

import pytest

from helpers.helm import CHART, HelmError, one
from kubetune.operator.logs import LOG_FORMATS


def operator_args(objects: list[dict]) -> list[str]:
    return one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]


def test_json_by_default_text_when_set(render):
    assert "--log-format=json" in operator_args(render())
    assert "--log-format=text" in operator_args(render(set={"logFormat": "text"}))


def test_the_schema_allows_exactly_the_operators_formats(render):
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert tuple(schema["properties"]["logFormat"]["enum"]) == LOG_FORMATS
    with pytest.raises(HelmError, match="logFormat"):
        render(set={"logFormat": "xml"})
