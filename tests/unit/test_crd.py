"""The committed CRDs are exactly what `kubetune crd` generates, and the schema is structural."""

from pathlib import Path

import yaml

from kubetune.api.crd import CRD_PATHS, build_crd, render_crd
from kubetune.api.supported_models import SUPPORTED_MODELS
from kubetune.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def test_committed_crds_match_the_generator():
    expected = render_crd()
    for relative in CRD_PATHS:
        assert (ROOT / relative).read_text() == expected, f"{relative} is stale: run `make crd` (kubetune crd --write)"


def test_crd_command_prints_the_same_yaml(capsys):
    assert main(["crd"]) == 0
    assert capsys.readouterr().out == render_crd()


def test_crd_command_writes_both_copies(tmp_path):
    assert main(["crd", "--write", "--root", str(tmp_path)]) == 0
    assert [(tmp_path / p).read_text() for p in CRD_PATHS] == [render_crd()] * 2


def _walk(node, path="$"):
    yield path, node
    for key in ("properties",):
        for name, child in node.get(key, {}).items():
            yield from _walk(child, f"{path}.{name}")
    if "items" in node:
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):  # a map's values
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_schema_is_structural():
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        # The structural exceptions: int-or-string, and an untyped value kept as sent (a number or a string).
        assert "type" in node or node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields"), f"{path} has no type"
        for banned in ("$ref", "anyOf", "allOf", "oneOf", "title", "const"):
            assert banned not in node, f"{path} uses {banned}"
        assert isinstance(node.get("additionalProperties", {}), dict), f"{path}: additionalProperties only as a map's schema"
        assert node.get("default", "") is not None


def test_crd_shape():
    crd = yaml.safe_load(render_crd())
    version = crd["spec"]["versions"][0]
    assert crd["metadata"]["name"] == "finetuneruns.kubetune.io"
    assert crd["spec"]["names"]["shortNames"] == ["ftr"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase" and columns["Progress"] == ".status.progress.display"
    assert columns["Loss"] == ".status.metrics.trainLoss" and columns["Model"] == ".spec.model"
    assert columns["Age"] == ".metadata.creationTimestamp"
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == ["model", "trainDataPath", "registerTo"]
    assert spec["properties"]["taskType"]["default"] == "CHAT_COMPLETION"
    assert "x-kubernetes-preserve-unknown-fields" not in spec["properties"]["compute"]["properties"]["podTemplate"]
    rules = {r.get("fieldPath"): r["rule"] for r in spec["x-kubernetes-validations"]}
    assert rules[".model"].startswith("self.model == oldSelf.model") or "oldSelf" in rules[".registerTo"]
    assert ".suspend" not in rules  # cancelling is the one change allowed after creation
    assert all("oldSelf" in r["rule"] for r in spec["x-kubernetes-validations"] if r["reason"] == "FieldValueForbidden")


def test_models_command_lists_the_table(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:] if line.strip() and "/" in line.split()[0]}
    assert rows["mistralai/Mistral-7B-Instruct-v0.2"] == ["32768", "5e-06", "no"]
    assert rows["Qwen/Qwen2.5-7B-Instruct"] == ["32768", "1e-05", "yes"]
    assert len(rows) == len(SUPPORTED_MODELS)
