"""The chart's `config.access` values: the shipped default is the operator's own safe default, a per-namespace
rule reaches the operator's configuration, and malformed rules are refused by the values schema."""

from __future__ import annotations

import json

import yaml

from helpers.helm import CHART, RELEASE_NAMESPACE, one
from kubetune.operator.access_rules import Access, AccessRule

SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def rendered_access(objects: list[dict]) -> Access:
    from kubetune.operator.config import OperatorConfig

    configmap = one(objects, "ConfigMap", "kt-kubetune-config", RELEASE_NAMESPACE)
    return OperatorConfig.model_validate(yaml.safe_load(configmap["data"]["config.yaml"])).access


def test_the_default_values_are_the_operators_default(render):
    assert rendered_access(render()) == Access()


def test_a_namespace_rule_reaches_the_operator(render, tmp_path):
    values = tmp_path / "access.yaml"
    values.write_text(yaml.safe_dump({"config": {"access": {"namespaces": {"team-a": {
        "registerTo": ["main.team_a", "main.shared_models"]}}}}}))
    access = rendered_access(render(values))
    assert access.register_to_for("team-a") == (["main.team_a", "main.shared_models"], "access.namespaces.team-a.registerTo")
    assert access.experiment_paths_for("team-a")[1] == "access.default.experimentPaths"
    assert access.default == AccessRule()


def test_schema_allows_every_access_field():
    def fields(model) -> set[str]:
        return {field.alias or name for name, field in model.model_fields.items()}

    section = SCHEMA["properties"]["config"]["properties"]["access"]
    assert set(section["properties"]) == fields(Access)
    assert set(SCHEMA["definitions"]["accessRule"]["properties"]) == fields(AccessRule)
